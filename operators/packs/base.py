"""What every model pack provides: detection with 5 ArcFace-order landmarks, and embeddings
of 112x112 crops aligned to the ArcFace template. Images are RGB uint8 arrays."""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Detection:
    bbox: np.ndarray       # (4,) x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2): eye (image left), eye (image right), nose, mouth left, mouth right
    score: float


class ModelPack(ABC):
    #: detector + embedder, recorded in every output row
    name: str
    #: the embedding space alone: galleries refuse embeddings from another embedder
    embedder_id: str
    embedding_dim: int
    licence: str

    @abstractmethod
    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        ...

    @abstractmethod
    def embed(self, aligned_faces: list[np.ndarray]) -> np.ndarray:
        """(N, dim) float32, L2-normalised."""


def file_digest(path: str | Path, length: int = 8) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
