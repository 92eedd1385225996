"""Score the benchmark corpus with the crawl's own operators (decode -> analyse -> match ->
forgery), keeping per face what the benchmark needs: the label of the face (in a fake photo only
the manipulated face is forged; its other faces are dropped), size, VIP candidate, signals."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from core.config import DecodeConfig
from core.schema import STATUS_OK
from operators.decode import ImageDecoder
from vipwatch.enrol import embed_images, enroll
from index.gallery import Gallery

log = logging.getLogger(__name__)
CHUNK = 64


def ensure_gallery(cache_dir: Path, aligned_root: Path, analyzer, enrolled: int) -> str:
    """The VIP gallery: the first ``enrolled`` crops of each identity, built once per embedder."""
    root = Path(cache_dir) / f"gallery-{analyzer.pack.embedder_id.replace('@', '-')}-{enrolled}"
    if not (root / "LATEST").exists():
        enrolment = enroll(str(aligned_root), analyzer.model_config, aligned=True, max_per_identity=enrolled,
                           analyzer=analyzer)
        enrolment.gallery.save(str(root))
    Gallery.load(str(root))
    return str(root)


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score_corpus(labels: list[dict], analyzer, matcher, scorer, decode: DecodeConfig | None = None) -> pd.DataFrame:
    decoder = ImageDecoder(decode or DecodeConfig())
    by_uri = {row["uri"]: row for row in labels}
    uris = list(by_uri)
    frames = []
    for start in range(0, len(uris), CHUNK):
        rows = embed_images(uris[start:start + CHUNK], analyzer, decoder)
        scored = scorer(matcher(rows))
        faces = scored.filter(pa.compute.equal(scored.column("status"), STATUS_OK))
        part = faces.select(["image_uri", "media_type", "frame_index", "face_index", "bbox", "landmarks",
                             "identity_id", "match_score", "forgery_score", "verdict", "forgery_identity_id",
                             "forgery_model"]).to_pandas()
        signals = [{s["name"]: s["value"] for s in (r or [])} for r in faces.column("forgery_signals").to_pylist()]
        part = pd.concat([part, pd.DataFrame(signals, index=part.index)], axis=1)
        part["reasons"] = [" | ".join(r or []) for r in faces.column("reasons").to_pylist()]
        frames.append(part)
        log.info("scored %d / %d inputs", min(start + CHUNK, len(uris)), len(uris))
    frame = pd.concat(frames, ignore_index=True)
    keep = []
    for k, row in frame.iterrows():
        meta = by_uri[row["image_uri"]]
        if int(meta["label"]) == 1:
            # The forged face is the one at the generator's recorded box; other faces of the photo
            # are authentic bystanders: not counted on either side.
            box = json.loads(meta["face_box"])
            keep.append(box_iou(row["bbox"], box) >= 0.3)
        else:
            keep.append(True)
    frame = frame[np.asarray(keep, bool)].copy()
    if frame["image_uri"].duplicated().any():
        fakes = frame[[int(by_uri[u]["label"]) == 1 for u in frame["image_uri"]]]
        frame = frame.drop(fakes[fakes["image_uri"].duplicated()].index)
    for column in ("label", "family", "identity", "side", "groups"):
        frame[column] = [by_uri[u][column] for u in frame["image_uri"]]
    frame["label"] = frame["label"].astype(int)
    frame["group"] = frame["identity"]
    landmarks = np.stack(frame["landmarks"].to_numpy()).reshape(-1, 5, 2)
    frame["inter_ocular_px"] = np.linalg.norm(landmarks[:, 1] - landmarks[:, 0], axis=1)
    frame["vip"] = frame["forgery_identity_id"].notna()
    frame.attrs["inputs"] = len(uris)
    frame.attrs["faceless_inputs"] = len(set(uris) - set(frame["image_uri"]))
    # bbox stays: video verdicts link faces into tracks by it.
    return frame.drop(columns=["landmarks"]).reset_index(drop=True)
