"""Alignment to the ArcFace 5-point template with insightface's face_align."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
from insightface.utils import face_align

from core.schema import ALIGNED_SIZE, CONTEXT_SIZE

# Template landmarks of a 112x112 crop, for inputs that are already aligned.
ARCFACE_TEMPLATE = np.asarray(face_align.arcface_dst, dtype=np.float32)


def align_face(image_rgb: np.ndarray, landmarks: np.ndarray,
               context: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the 112x112 aligned crop and a 224x224 crop with the same scale and centre,
    i.e. twice the field of view (hair, ears, head outline) for the identity-context signal
    (None when ``context`` is False)."""
    landmarks = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    with warnings.catch_warnings():
        # scikit-image 0.26 deprecates SimilarityTransform.estimate, which face_align still calls.
        warnings.simplefilter("ignore", FutureWarning)
        matrix = face_align.estimate_norm(landmarks, ALIGNED_SIZE, mode="arcface")
    aligned = cv2.warpAffine(image_rgb, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), borderValue=0.0)
    if not context:
        return aligned, None
    context_matrix = matrix.copy()
    context_matrix[:, 2] += (CONTEXT_SIZE - ALIGNED_SIZE) / 2
    context_crop = cv2.warpAffine(image_rgb, context_matrix, (CONTEXT_SIZE, CONTEXT_SIZE),
                                  borderMode=cv2.BORDER_REPLICATE)
    return aligned, context_crop


def crop_from_aligned_input(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For --aligned inputs (already 112x112 template crops): no wider view exists, so the
    context crop is the aligned crop padded by edge replication."""
    if image_rgb.shape[:2] != (ALIGNED_SIZE, ALIGNED_SIZE):
        image_rgb = cv2.resize(image_rgb, (ALIGNED_SIZE, ALIGNED_SIZE), interpolation=cv2.INTER_AREA)
    pad = (CONTEXT_SIZE - ALIGNED_SIZE) // 2
    context = cv2.copyMakeBorder(image_rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(image_rgb), context
