"""Per-video verdicts from face tracks: a real two-person video (FF++ original 634 beside its
FaceSwap 634_660, frame by frame) through the crawl's decoder, analyzer and matcher."""
import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.schema import WORK_SCHEMA, to_output

from operators.decode import ImageDecoder
from operators.matcher import GalleryMatcher
from tests.support.shared_data import DATA
from vipwatch.crawl.summary import media_verdicts
from vipwatch.enrol import embed_images
from vipwatch.evaluation.video_verdicts import link_tracks, track_verdicts, video_verdicts

SECONDS = 8


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory, onnx_analyzer, onnx_gallery):
    """Face rows of a 1-fps video whose left half is 634 (authentic) and right half 634_660 (fake)."""
    ffpp = DATA / "deepfakes" / "ffpp"
    left, right = (cv2.VideoCapture(str(ffpp / sub)) for sub in ("original/634.mp4", "FaceSwap/634_660.mp4"))
    path = tmp_path_factory.mktemp("video") / "pair.mp4"
    writer = None
    for second in range(SECONDS):
        frames = []
        for capture in (left, right):
            capture.set(cv2.CAP_PROP_POS_FRAMES, second * 25)
            ok, frame = capture.read()
            assert ok
            frames.append(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA))
        frame = np.hstack(frames)
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1.0, frame.shape[1::-1])
        writer.write(frame)
    writer.release()
    rows = GalleryMatcher(onnx_gallery)(embed_images([str(path)], onnx_analyzer, ImageDecoder()))
    faces = rows.to_pandas()
    faces = faces[faces["status"] == "ok"].reset_index(drop=True)
    faces["fake"] = [(b[0] + b[2]) / 2 > 640 for b in faces["bbox"]]
    return faces


def test_tracks_follow_each_person(side_by_side):
    faces = side_by_side
    assert faces["frame_index"].nunique() == SECONDS and faces["fake"].sum() >= SECONDS - 1
    tracks = link_tracks(faces)
    for track in np.unique(tracks):
        # A track never mixes the authentic person (left) and the swapped one (right).
        assert faces["fake"][tracks == track].nunique() == 1
    sizes = pd.Series(tracks).value_counts()
    # Two people, each followed over (nearly) the whole video.
    assert sizes.iloc[0] >= SECONDS - 1 and sizes.iloc[1] >= SECONDS - 1


def test_one_forged_track_flags_the_video_that_frame_majority_missed(side_by_side):
    faces = side_by_side.assign(media_type="video", forgery_score=0.1, verdict="authentic")
    fake_rows = np.flatnonzero(faces["fake"].to_numpy())
    # The swapped person is flagged in a majority of their frames, the authentic one in none:
    # under half of all faces are flagged, which frame-level voting read as an authentic video.
    flagged = fake_rows[: len(fake_rows) // 2 + 1]
    faces.loc[flagged, ["verdict", "forgery_score"]] = ["suspected_forgery", 0.9]
    assert len(flagged) < 0.5 * len(faces)
    per_video = video_verdicts(faces).iloc[0]
    assert per_video["verdict"] == "suspected_forgery"
    assert per_video["flagged_tracks"] == 1 and per_video["judged_tracks"] >= 2
    per_track = track_verdicts(faces)
    assert set(per_track[per_track["verdict"] == "suspected_forgery"]["track"]) == {
        int(link_tracks(faces)[fake_rows[0]])}

    # One odd flagged frame does not flag the person, nor the video.
    faces["verdict"], faces["forgery_score"] = "authentic", 0.1
    faces.loc[fake_rows[:1], "verdict"] = "suspected_forgery"
    assert video_verdicts(faces).iloc[0]["verdict"] == "authentic"


def test_crawl_output_gives_per_video_verdicts(side_by_side, tmp_path):
    """media_verdicts (what jobs.demo and jobs.report show) reads a crawl's Parquet and links tracks."""
    faces = side_by_side.assign(verdict="authentic", forgery_score=0.1)
    fake_rows = np.flatnonzero(faces["fake"].to_numpy())
    faces.loc[fake_rows, ["verdict", "forgery_score"]] = ["suspected_forgery", 0.9]
    table = to_output(pa.Table.from_pandas(faces.drop(columns=["fake"]), preserve_index=False)
                      .select(WORK_SCHEMA.names).cast(WORK_SCHEMA))
    pq.write_table(table, tmp_path / "part-0.parquet")
    verdicts = media_verdicts(str(tmp_path))
    assert verdicts["image_faces"] == 0
    [video] = verdicts["videos"]
    assert video["verdict"] == "suspected_forgery" and video["flagged_tracks"] == 1 and video["judged_tracks"] == 2
