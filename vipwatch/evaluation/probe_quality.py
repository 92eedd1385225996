"""What a probe's face looks like beside its embedding: head yaw and inter-ocular distance, from the
five landmarks of a keypoint detector. Used to say what the identification misses are (and
whether a quality floor would remove them), not by the crawl.

Pose is a property of the image, not of the pack under test, so one detector measures it for
every pack (the ONNX pack's SCRFD: it finds profile faces, which dlib's frontal HOG does not).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from core import storage
from core.config import DecodeConfig, StorageConfig
from core.schema import STATUS_OK
from operators.decode import ImageDecoder, pixels_of
from operators.packs import ModelPack
from vipwatch.evaluation.face_embeddings import main_face_index

# |nose x - eye midpoint x| / inter-ocular distance. With the nose tip ~0.6 inter-ocular
# distances in front of the eyes, 0.35 is a head turned ~30 degrees: the usual "near-frontal" bound.
NEAR_FRONTAL_YAW = 0.35
# An aligned 112x112 crop is padded by half its size so the detector sees a whole face with margin.
ALIGNED_PADDING = 56
CHUNK = 64


@dataclass
class ProbePose:
    """Per image, in the order given; NaN where the keypoint detector found no face."""
    yaw: np.ndarray
    inter_ocular_px: np.ndarray

    def near_frontal(self, max_yaw: float = NEAR_FRONTAL_YAW) -> np.ndarray:
        """True where the pose was measured and within ``max_yaw``; unmeasured faces fail the floor."""
        return np.nan_to_num(self.yaw, nan=np.inf) <= max_yaw


def yaw_proxy(landmarks: np.ndarray) -> float:
    """Landmarks (5, 2): eye, eye, nose, mouth, mouth. 0 for a frontal face, ~1 and more in profile."""
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    inter_ocular = float(np.linalg.norm(points[1] - points[0]))
    if inter_ocular <= 0:
        return float("inf")
    return float(abs(points[2, 0] - (points[0, 0] + points[1, 0]) / 2.0) / inter_ocular)


def _pose_of(rgb: np.ndarray, pack: ModelPack, aligned: bool, scale: float) -> tuple[float, float]:
    if aligned:
        rgb = np.pad(rgb, ((ALIGNED_PADDING, ALIGNED_PADDING), (ALIGNED_PADDING, ALIGNED_PADDING), (0, 0)))
    detections = pack.detect(rgb)
    if not detections:
        return float("nan"), float("nan")
    height, width = rgb.shape[:2]
    face = detections[main_face_index(np.stack([d.bbox for d in detections]), width, height)]
    points = np.asarray(face.landmarks, np.float64).reshape(5, 2)
    return yaw_proxy(points), float(np.linalg.norm(points[1] - points[0])) * scale


def probe_pose(uris: list[str], pack: ModelPack, aligned: bool,
               storage_config: Optional[StorageConfig] = None) -> ProbePose:
    """Yaw and inter-ocular px (original pixels; for aligned crops, px of the 112 crop) of each image's main face."""
    decoder = ImageDecoder(DecodeConfig())
    yaw = np.full(len(uris), np.nan)
    inter_ocular = np.full(len(uris), np.nan)
    for start in range(0, len(uris), CHUNK):
        chunk = uris[start:start + CHUNK]
        decoded = decoder(pd.DataFrame({"path": chunk, "bytes": [storage.read_bytes(u, storage_config) for u in chunk]}))
        position = {uri: start + i for i, uri in enumerate(chunk)}
        for record in decoded.to_pylist():
            if record["status"] != STATUS_OK:
                continue
            rgb = pixels_of(record)
            if aligned and rgb.shape[:2] != (112, 112):
                continue  # not an aligned crop: no pose rather than a wrong one
            row = position[record["image_uri"]]
            yaw[row], inter_ocular[row] = _pose_of(rgb, pack, aligned, float(record["image_width"]) / rgb.shape[1])
    return ProbePose(yaw, inter_ocular)
