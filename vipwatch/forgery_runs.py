"""Run the crawl's own operators (decode -> analyse -> match -> forgery) in-process over a
labelled set (a prefix of real and one of fake images, crops or videos), as calibrate and
evaluate need: the same objects the crawl's actors hold, so the signals are the crawl's."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from vipwatch.enrol import embed_images
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from core import storage
from core.config import DecodeConfig, StorageConfig
from core.schema import STATUS_OK
from core.storage import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS


def labelled_uris(real: str, fake: str, storage_config: StorageConfig | None = None) -> list[tuple[str, int]]:
    extensions = list(IMAGE_EXTENSIONS) + list(VIDEO_EXTENSIONS)
    out = [(u, 0) for u in storage.list_files(real, extensions, storage_config)]
    out += [(u, 1) for u in storage.list_files(fake, extensions, storage_config)]
    if not any(label == 0 for _, label in out) or not any(label == 1 for _, label in out):
        raise ValueError(f"need both real ({real}) and fake ({fake}) inputs")
    return out


def score_labelled(pairs: list[tuple[str, int]], analyzer: FaceAnalyzer, matcher: GalleryMatcher,
                   scorer: ForgeryScorer, decode: DecodeConfig | None = None,
                   storage_config: StorageConfig | None = None) -> pd.DataFrame:
    """One row per face (video: per face per sampled frame) with label, VIP flag, every signal
    as a column, and the scorer's outputs."""
    label_of = dict(pairs)
    rows = embed_images([u for u, _ in pairs], analyzer, ImageDecoder(decode or DecodeConfig()), storage_config)
    scored = scorer(matcher(rows))
    faces = scored.filter(pa.compute.equal(scored.column("status"), STATUS_OK))
    frame = faces.select(["image_uri", "media_type", "frame_index", "timestamp_s", "face_index", "identity_id",
                          "match_score", "forgery_score", "verdict", "forgery_model"]).to_pandas()
    frame["label"] = [label_of[u] for u in frame["image_uri"]]
    signals = [{s["name"]: s["value"] for s in (row or [])} for row in faces.column("forgery_signals").to_pylist()]
    signal_frame = pd.DataFrame(signals, index=frame.index)
    frame = pd.concat([frame, signal_frame], axis=1)
    frame["vip"] = frame["verdict"].isin(["authentic", "suspected_forgery"])
    frame.attrs["inputs"] = len(pairs)
    frame.attrs["faceless_inputs"] = len(set(label_of) - set(frame["image_uri"]))
    return frame


def signal_columns(frame: pd.DataFrame) -> list[str]:
    from operators.forgery.identity_signal import SIGNALS

    return [c for c in frame.columns if c.startswith("artefact:") or c in SIGNALS]


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    from operators.forgery.fusion import feature_value

    return np.array([[feature_value(f, v) for f, v in zip(features, row)] for row in frame[features].to_numpy()],
                    np.float64).reshape(len(frame), len(features))
