"""Run the crawl's own operators (decode -> analyse -> match -> forgery) in-process over a
labelled set (a prefix of real and one of fake images, crops or videos), as calibrate and
evaluate need: the same objects the crawl's actors hold, so the signals are the crawl's."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from core import storage
from core.config import CrawlConfig, StorageConfig
from core.schema import STATUS_OK
from core.storage import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from operators.decode import ImageDecoder
from operators.forgery.base import is_generic
from operators.forgery.fusion import feature_value
from operators.forgery.identity_signal import SIGNALS
from operators.runner import ChainRunner
from operators.stages import face_stages


def labelled_chain(config: CrawlConfig) -> ChainRunner:
    """The crawl's face chain (forgery stage included) in this process, onnxruntime's default
    threads. Without ``config.gallery`` there is no match stage: artefact signals only."""
    config = config.model_copy(update={"forgery": config.forgery.model_copy(update={"enabled": True})})
    return ChainRunner.from_stages(face_stages(config), ImageDecoder(config.decode), overrides={"threads": 0},
                                   storage_config=config.storage)


def labelled_uris(real: str, fake: str, storage_config: StorageConfig | None = None) -> list[tuple[str, int]]:
    extensions = list(IMAGE_EXTENSIONS) + list(VIDEO_EXTENSIONS)
    out = [(u, 0) for u in storage.list_files(real, extensions, storage_config)]
    out += [(u, 1) for u in storage.list_files(fake, extensions, storage_config)]
    if not any(label == 0 for _, label in out) or not any(label == 1 for _, label in out):
        raise ValueError(f"need both real ({real}) and fake ({fake}) inputs")
    return out


def score_labelled(pairs: list[tuple[str, int]], runner: ChainRunner) -> pd.DataFrame:
    """One row per face (video: per face per sampled frame) with label, VIP flag, every signal
    as a column, and the scorer's outputs. ``runner`` ends with the forgery scorer."""
    label_of = dict(pairs)
    scored = runner.run_uris([u for u, _ in pairs])
    faces = scored.filter(pa.compute.equal(scored.column("status"), STATUS_OK))
    frame = faces.select(["image_uri", "media_type", "frame_index", "timestamp_s", "face_index", "identity_id",
                          "match_score", "forgery_score", "verdict", "forgery_model", "forgery_identity_id", "bbox",
                          "embedding", "match_threshold"]).to_pandas()
    frame["label"] = [label_of[u] for u in frame["image_uri"]]
    signals = [{s["name"]: s["value"] for s in (row or [])} for row in faces.column("forgery_signals").to_pylist()]
    signal_frame = pd.DataFrame(signals, index=frame.index)
    frame = pd.concat([frame, signal_frame], axis=1)
    # A VIP face: checked against a VIP's references (a calibrated generic head also judges others).
    frame["vip"] = frame["forgery_identity_id"].notna()
    frame.attrs["inputs"] = len(pairs)
    frame.attrs["faceless_inputs"] = len(set(label_of) - set(frame["image_uri"]))
    return frame


def signal_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if is_generic(c) or c in SIGNALS]


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    return np.array([[feature_value(f, v) for f, v in zip(features, row)] for row in frame[features].to_numpy()],
                    np.float64).reshape(len(frame), len(features))
