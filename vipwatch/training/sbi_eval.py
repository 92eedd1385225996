"""Held-out evaluation of artefact detectors (the SBI artefact, optionally others to compare),
through the crawl's own face path (ImageDecoder + FaceAnalyzer context crops -> detector.score):

- FF++ ``634`` (real frames) vs ``634_660`` (FaceSwap of 660 onto 634): frame AUC with a
  bootstrap over 1-second blocks of frames (frames within a second are near duplicates);
- the 4 MesoNet sample crops (2 real, 2 deepfake): scores and direction;
- authentic LFW photos of identities the SBI run held out, vs self-blends of the same photos made
  at native resolution: AUC with a bootstrap over identities, plain and web-laundered (0.5x
  downscale + JPEG 70 of both).

Nothing here was trained on: FF++ and MesoNet were never training sources, and the LFW people
are the run's validation identities (manifest ``training_data.validation.identities``).
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from core import storage
from core.config import SHARED_DIR, DecodeConfig, ModelPackConfig, StorageConfig
from core.schema import STATUS_OK
from operators.decode import ImageDecoder, decode_image
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.sbi import self_blend
from operators.forgery.sbi_model import MANIFEST_FILE
from vipwatch.evaluation.forgery_metrics import report
from vipwatch.training.sbi_faces import Landmarker

log = logging.getLogger(__name__)
FFPP = SHARED_DIR / "data" / "deepfakes" / "ffpp"
MESONET_SAMPLES = SHARED_DIR / "data" / "deepfakes" / "mesonet"
LFW = SHARED_DIR / "data" / "lfw" / "lfw-deepfunneled"
BATCH = 16


@dataclass
class FaceSet:
    source: str
    faces: np.ndarray  # (N, 224, 224, 3) uint8 context crops
    images: int = 0
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"source": self.source, "faces": int(len(self.faces)), "images_listed": self.images,
                "skipped": len(self.skipped)}


def padded_png(data: bytes, pad_fraction: float) -> bytes:
    """Tight face crops (MesoNet's samples) leave the detector no margin. Edge replication,
    not reflection: a mirrored border holds mirrored faces that the detector would find too."""
    rgb = decode_image(data, DecodeConfig())
    pad = int(round(max(rgb.shape[:2]) * pad_fraction))
    return _png(cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE))


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, rounds: int = 1000,
                  seed: int = 0) -> Optional[list[float]]:
    """95% interval of the AUC when whole groups (identities, blocks of frames) are resampled
    with replacement, real-only and fake-only groups each within their own class."""
    from sklearn.metrics import roc_auc_score

    labels, scores, groups = np.asarray(labels), np.asarray(scores, np.float64), np.asarray(groups)
    unique = np.unique(groups)
    members = {g: np.flatnonzero(groups == g) for g in unique}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        picked = np.concatenate([members[g] for g in rng.choice(unique, size=len(unique), replace=True)])
        if labels[picked].min() == labels[picked].max():
            continue
        values.append(roc_auc_score(labels[picked], scores[picked]))
    if not values:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def context_crops(named: list[tuple[str, bytes]], analyzer, decode: DecodeConfig = DecodeConfig()
                  ) -> tuple[list[dict], np.ndarray, list[str]]:
    """The largest face of every image / video frame as the crawl crops it: (keys with image_uri,
    frame_index and eye distance, (N, 224, 224, 3) context crops, skipped inputs)."""
    decoder = ImageDecoder(decode)
    keys, crops, skipped = [], [], []
    for start in range(0, len(named), BATCH):
        rows = analyzer(decoder(pd.DataFrame({"path": [n for n, _ in named[start:start + BATCH]],
                                               "bytes": [b for _, b in named[start:start + BATCH]]})))
        best: dict[tuple, tuple[float, dict, np.ndarray]] = {}
        for row in rows.select(["image_uri", "frame_index", "timestamp_s", "status", "error", "bbox", "landmarks",
                                "context_face"]).to_pylist():
            if row["status"] != STATUS_OK:
                skipped.append(f"{row['image_uri']}#{row['frame_index']}: {row['status']} {row['error'] or ''}")
                continue
            box = row["bbox"]
            area = float((box[2] - box[0]) * (box[3] - box[1]))
            key = (row["image_uri"], row["frame_index"])
            eyes = np.asarray(row["landmarks"], np.float32).reshape(5, 2)
            if key not in best or area > best[key][0]:
                best[key] = (area, {"image_uri": key[0], "frame_index": key[1], "timestamp_s": row["timestamp_s"],
                                    "eye_distance_px": float(np.linalg.norm(eyes[1] - eyes[0]))},
                             np.frombuffer(row["context_face"], np.uint8).reshape(224, 224, 3))
        for _, meta, crop in sorted(best.values(), key=lambda v: (v[1]["image_uri"], v[1]["frame_index"] or 0)):
            keys.append(meta)
            crops.append(crop)
    return keys, (np.stack(crops) if crops else np.zeros((0, 224, 224, 3), np.uint8)), skipped


def _scores(detectors: list, crops: np.ndarray) -> dict[str, np.ndarray]:
    return {d.name: d.score(list(crops)) for d in detectors}


def _summary(labels, scores, groups, rounds: int) -> dict:
    out = report(labels, scores, probability=True)
    out["auc_95ci"] = bootstrap_auc(labels, scores, groups, rounds) if out["auc"] is not None else None
    out["mean_score_real"] = float(np.mean(np.asarray(scores)[np.asarray(labels) == 0]))
    out["mean_score_fake"] = float(np.mean(np.asarray(scores)[np.asarray(labels) == 1]))
    return out


def ffpp_pair(detectors: list, analyzer, frame_interval_s: float = 0.2, block_s: float = 1.0,
              rounds: int = 1000) -> dict:
    decode = DecodeConfig(video_frame_interval_s=frame_interval_s, video_max_frames=10_000)
    videos = {"real": FFPP / "original" / "634.mp4", "fake": FFPP / "FaceSwap" / "634_660.mp4"}
    keys, crops, labels, groups, skipped = [], [], [], [], []
    for label, (kind, path) in enumerate(videos.items()):
        k, c, s = context_crops([(str(path), path.read_bytes())], analyzer, decode)
        keys += k
        crops.append(c)
        skipped += s
        labels += [label] * len(k)
        groups += [f"{kind}:{int((m['timestamp_s'] or 0.0) // block_s)}" for m in k]
    crops = np.concatenate(crops)
    out = {"videos": {k: str(v) for k, v in videos.items()}, "frame_interval_s": frame_interval_s,
           "bootstrap": f"{block_s:g}-s blocks of frames, per class", "skipped": skipped,
           "frames": {"real": labels.count(0), "fake": labels.count(1)}, "blocks": len(set(groups)),
           "median_eye_distance_px": float(np.median([m["eye_distance_px"] for m in keys])), "detectors": {}}
    for name, scores in _scores(detectors, crops).items():
        out["detectors"][name] = _summary(labels, scores, groups, rounds)
        # Per video (one track each): the mean frame score, the verdict an aggregate would give.
        out["detectors"][name]["video_mean"] = {
            kind: float(np.mean(scores[np.asarray(labels) == label])) for label, kind in enumerate(videos)}
    return out


def mesonet_samples(detectors: list, analyzer, pad_fraction: float = 0.5) -> dict:
    named = [(str(path), padded_png(path.read_bytes(), pad_fraction))
             for kind in ("real", "df") for path in sorted((MESONET_SAMPLES / kind).iterdir())]
    keys, crops, skipped = context_crops(named, analyzer)
    labels = [int(m["image_uri"].rsplit("/", 2)[-2] == "df") for m in keys]
    out = {"images": len(named), "faces": len(keys), "skipped": skipped, "detectors": {}}
    for name, scores in _scores(detectors, crops).items():
        per_image = {m["image_uri"].rsplit("/", 2)[-2] + "/" + m["image_uri"].rsplit("/", 1)[-1]: float(s)
                     for m, s in zip(keys, scores)}
        reals = [s for s, label in zip(scores, labels) if label == 0]
        fakes = [s for s, label in zip(scores, labels) if label == 1]
        out["detectors"][name] = {"scores": per_image, **report(labels, scores, probability=True),
                                  "right_way_round": bool(reals and fakes and min(fakes) > max(reals))}
    return out


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _laundered(rgb: np.ndarray, factor: float = 0.5, quality: int = 70) -> bytes:
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def lfw_held_out(detectors: list, analyzer, identities: list[str], max_images: int = 300, seed: int = 0,
                 rounds: int = 1000) -> dict:
    """Authentic photos of held-out LFW people vs their self-blends (68 dlib landmarks, native
    resolution, one seeded blend each), both as the crawl would see them."""
    landmarker = Landmarker()
    rng = np.random.default_rng(seed)
    people = sorted(name.split("/", 1)[1] for name in identities if name.startswith("lfw/"))
    paths = [p for person in people for p in sorted((LFW / person).glob("*.jpg"))][:max_images]
    variants = {"plain": ([], []), "laundered": ([], [])}
    owners = []
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        found = landmarker.faces(rgb, one_face=True)
        if not found:
            continue
        pair = self_blend(rgb, found[0], rng)
        owners.append(path.parent.name)
        for label, image in enumerate((pair.real, pair.fake)):
            variants["plain"][label].append((f"{path}#{label}", _png(image)))
            variants["laundered"][label].append((f"{path}#{label}", _laundered(image)))
    out = {"identities": len(set(owners)), "photos": len(owners), "bootstrap": "identities", "variants": {}}
    for variant, (reals, fakes) in variants.items():
        keys, crops, skipped = context_crops(reals + fakes, analyzer)
        owner_of = {name: owner for (name, _), owner in zip(reals + fakes, owners + owners)}
        labels = [int(m["image_uri"].endswith("#1")) for m in keys]
        groups = [owner_of[m["image_uri"]] for m in keys]
        result = {"faces": {"real": labels.count(0), "fake": labels.count(1)}, "skipped": len(skipped),
                  "median_eye_distance_px": float(np.median([m["eye_distance_px"] for m in keys])), "detectors": {}}
        for name, scores in _scores(detectors, crops).items():
            result["detectors"][name] = _summary(labels, scores, groups, rounds)
        out["variants"][variant] = result
    return out


def load_faces(root: str, model: Optional[ModelPackConfig] = None, storage_config: Optional[StorageConfig] = None,
               pad_fraction: float = 0.0, analyzer=None) -> FaceSet:
    """Every image under ``root`` through the crawl's face path, one (largest) face each."""
    root = storage.normalise(root)
    uris = sorted(storage.list_files(root, storage.IMAGE_EXTENSIONS, storage_config))
    data = [storage.read_bytes(u, storage_config) for u in uris]
    if pad_fraction:
        data = [padded_png(d, pad_fraction) for d in data]
    analyzer = analyzer or FaceAnalyzer(model or ModelPackConfig(), storage=storage_config)
    _, faces, skipped = context_crops(list(zip(uris, data)), analyzer)
    for item in skipped:
        log.warning("skipped %s", item)
    return FaceSet(root, faces, len(uris), skipped)


def held_out_identities(artifact_uri: str) -> list[str]:
    manifest = json.loads(storage.read_bytes(storage.join(artifact_uri, MANIFEST_FILE)))
    return list(manifest["training_data"]["validation"]["identities"])
