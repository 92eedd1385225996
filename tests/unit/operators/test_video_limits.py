"""Video upload caps in the decode path: frame size, frame count and length are read from the
container before any frame is decoded, and a video past one becomes an error row whose reason
names the cap (Serve turns it into a 413). On the real FaceForensics++ clip (1280x720, 338
frames at 25 fps = 13.5 s)."""
from __future__ import annotations

import pyarrow as pa
import pytest

from core.config import DecodeConfig
from operators.decode import ImageDecoder
from tests.support.shared_data import DATA

CLIP = DATA / "deepfakes" / "ffpp" / "original" / "634.mp4"


def decode(config: DecodeConfig) -> list[dict]:
    table = ImageDecoder(config)(pa.table({"path": [str(CLIP)], "bytes": pa.array([CLIP.read_bytes()], pa.binary())}))
    return table.drop_columns(["pixels"]).to_pylist()


def test_a_clip_within_the_caps_is_sampled():
    rows = decode(DecodeConfig(video_max_frames=3))
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert [r["frame_index"] for r in rows] == [0, 25, 50]
    assert rows[0]["image_width"] == 1280 and rows[0]["media_type"] == "video"


@pytest.mark.parametrize("cap, reason", [
    ({"video_max_pixels_per_frame": 1280 * 720 - 1}, "video too large: frames of 1280x720 = 921600 pixels"),
    ({"video_max_source_frames": 337}, "video too many frames: 338 > limit 337"),
    ({"video_max_duration_s": 13.0}, "video too long: 13.5 s > limit 13 s"),
])
def test_a_clip_past_a_cap_is_refused_with_the_cap_named(cap, reason):
    rows = decode(DecodeConfig(**cap))
    assert len(rows) == 1 and rows[0]["status"] == "error"
    assert rows[0]["error"].startswith(reason), rows[0]["error"]
    # At the cap exactly it passes: the limits are inclusive.
    exact = {key: (value + 1 if isinstance(value, int) else 13.52) for key, value in cap.items()}
    assert decode(DecodeConfig(video_max_frames=1, **exact))[0]["status"] == "ok"
