"""Training data for the SBI detector: real faces as 224 context crops (the crawl's own framing),
their identities for a held-out-by-identity split, and (real, self-blended) training pairs."""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from operators.align import crop_from_aligned_input
from operators.decode import DecodeError, ImageDecoder, decode_image
from operators.forgery.sbi import CONTEXT_LANDMARKS, self_blend
from operators.forgery.sbi_model import model_inputs
from core import storage
from core.config import DecodeConfig, ModelPackConfig, StorageConfig
from core.schema import STATUS_OK
from operators.face_analyzer import FaceAnalyzer

log = logging.getLogger(__name__)
BATCH = 16


@dataclass
class FaceSet:
    source: str
    faces: np.ndarray                 # (N, 224, 224, 3) uint8 context crops
    identities: list[Optional[str]]   # per face; None when the layout has no identity folders
    images: int = 0                   # input files listed
    skipped: list[str] = field(default_factory=list)  # "uri: reason"

    def subset(self, indices) -> "FaceSet":
        indices = list(indices)
        return FaceSet(self.source, self.faces[indices], [self.identities[i] for i in indices], len(indices))

    def describe(self) -> dict:
        names = sorted({i for i in self.identities if i is not None})
        return {"source": self.source, "faces": int(len(self.faces)), "identities": names,
                "identity_count": len(names), "images_listed": self.images, "skipped": len(self.skipped)}


def identity_of(root: str, uri: str) -> Optional[str]:
    relative = uri[len(root):].lstrip("/")
    return relative.split("/", 1)[0] if "/" in relative else None


def list_images(root: str, storage_config: Optional[StorageConfig] = None,
                max_per_identity: Optional[int] = None) -> list[str]:
    root = storage.normalise(root)
    by_identity: dict[Optional[str], list[str]] = {}
    for uri in storage.list_files(root, storage.IMAGE_EXTENSIONS, storage_config):
        by_identity.setdefault(identity_of(root, uri), []).append(uri)
    return [uri for key in sorted(by_identity, key=str) for uri in sorted(by_identity[key])[:max_per_identity]]


def _padded_png(data: bytes, pad_fraction: float) -> bytes:
    """Tight face crops (MesoNet's samples) leave the detector no margin. Edge replication,
    not reflection: a mirrored border holds mirrored faces that the detector would find too."""
    rgb = decode_image(data, DecodeConfig())
    pad = int(round(max(rgb.shape[:2]) * pad_fraction))
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    buffer = io.BytesIO()
    Image.fromarray(padded).save(buffer, format="PNG")
    return buffer.getvalue()


def load_faces(root: str, aligned: bool = False, model: Optional[ModelPackConfig] = None,
               storage_config: Optional[StorageConfig] = None, max_per_identity: Optional[int] = None,
               pad_fraction: float = 0.0, analyzer=None) -> FaceSet:
    """Every face under ``root`` as a context crop. ``aligned``: inputs are 112 template crops
    (padded as the crawl pads them); otherwise the crawl's ImageDecoder + FaceAnalyzer find them."""
    root = storage.normalise(root)
    uris = list_images(root, storage_config, max_per_identity)
    faces, identities, skipped = [], [], []
    if aligned:
        for uri in uris:
            try:
                rgb = decode_image(storage.read_bytes(uri, storage_config), DecodeConfig())
            except DecodeError as exc:
                skipped.append(f"{uri}: {exc}")
                continue
            faces.append(crop_from_aligned_input(rgb)[1])
            identities.append(identity_of(root, uri))
    else:
        analyzer = analyzer or FaceAnalyzer(model or ModelPackConfig(), storage=storage_config)
        decoder = ImageDecoder(DecodeConfig())
        for start in range(0, len(uris), BATCH):
            chunk = uris[start:start + BATCH]
            data = [storage.read_bytes(u, storage_config) for u in chunk]
            if pad_fraction:
                data = [_padded_png(d, pad_fraction) for d in data]
            rows = analyzer(decoder(pd.DataFrame({"path": chunk, "bytes": data})))
            for row in rows.select(["image_uri", "status", "error", "context_face"]).to_pylist():
                if row["status"] != STATUS_OK:
                    skipped.append(f"{row['image_uri']}: {row['status']} {row['error'] or ''}".strip())
                    continue
                faces.append(np.frombuffer(row["context_face"], np.uint8).reshape(224, 224, 3))
                identities.append(identity_of(root, row["image_uri"]))
    for item in skipped:
        log.warning("skipped %s", item)
    array = np.stack(faces) if faces else np.zeros((0, 224, 224, 3), np.uint8)
    return FaceSet(root, array, identities, len(uris), skipped)


def split_by_identity(face_set: FaceSet, val_fraction: float, seed: int) -> tuple[list[int], list[int], str]:
    """(train indices, validation indices, how). Whole identities go to validation, so the
    metric measures faces the network never saw; without identity folders, whole images."""
    rng = np.random.default_rng(seed)
    names = sorted({i for i in face_set.identities if i is not None})
    if len(names) >= 2 and None not in face_set.identities:
        held = set(rng.permutation(names)[:max(1, int(round(len(names) * val_fraction)))].tolist())
        val = [i for i, name in enumerate(face_set.identities) if name in held]
        return [i for i, name in enumerate(face_set.identities) if name not in held], val, "by_identity"
    order = rng.permutation(len(face_set.faces))
    cut = max(1, int(round(len(order) * val_fraction)))
    return sorted(order[cut:].tolist()), sorted(order[:cut].tolist()), "by_image"


def training_batch(context_faces: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each real face and its self-blend, both flipped alike half the time: (2B, size, size, 3)
    uint8 inputs and (2B,) labels. Pairs keep the only difference between classes the blend."""
    reals, fakes = [], []
    for face in context_faces:
        fake = self_blend(face, CONTEXT_LANDMARKS, rng).image
        if rng.random() < 0.5:
            face, fake = face[:, ::-1], fake[:, ::-1]
        reals.append(face)
        fakes.append(fake)
    inputs = model_inputs(reals + fakes, size)
    labels = np.concatenate([np.zeros(len(reals)), np.ones(len(fakes))]).astype(np.float32)
    return inputs, labels


def validation_pairs(context_faces: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out reals and one fixed (seeded) self-blend of each: the same set every epoch."""
    rng = np.random.default_rng(seed)
    fakes = [self_blend(face, CONTEXT_LANDMARKS, rng).image for face in context_faces]
    return model_inputs(list(context_faces), size), model_inputs(fakes, size)
