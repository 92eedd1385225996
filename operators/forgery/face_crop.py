"""Face crops for the SBI detector taken from native-resolution pixels.

The crop is the ArcFace alignment (same similarity transform as operators/align.py) written
into a window of the 224 context frame. When the face is larger than the template scale the
image is first shrunk with area interpolation (every native pixel contributes), then warped at
scale ~1; a plain bilinear warp would sample a few native pixels and alias the very blending
traces the detector looks for. Faces smaller than the template are warped directly (upscaled).
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np

from core.schema import ALIGNED_SIZE, CONTEXT_SIZE

# The part of the 224 context frame the SBI network sees (x0, y0, x1, y1): the 112 aligned
# window plus 16 px each side, so jaw line and brows (where blend boundaries run) stay inside.
SBI_WINDOW = (48, 48, 176, 176)


def alignment_matrix(landmarks5: np.ndarray, window: tuple[int, int, int, int] = SBI_WINDOW,
                     size: int | None = None) -> np.ndarray:
    """2x3 matrix from image pixels to the window's pixels (template scale), or to a ``size``
    square holding the same window."""
    # Imported here: the SBI detector and its training step import this module for SBI_WINDOW
    # only, and so run where torch is the only model library (vipwatch/bench/gpu_torch.py).
    from insightface.utils import face_align

    with warnings.catch_warnings():
        # scikit-image 0.26 deprecates SimilarityTransform.estimate, which face_align still calls.
        warnings.simplefilter("ignore", FutureWarning)
        matrix = face_align.estimate_norm(np.asarray(landmarks5, np.float32).reshape(5, 2), ALIGNED_SIZE,
                                          mode="arcface").astype(np.float64)
    matrix[0, 2] += (CONTEXT_SIZE - ALIGNED_SIZE) / 2 - window[0]
    matrix[1, 2] += (CONTEXT_SIZE - ALIGNED_SIZE) / 2 - window[1]
    return matrix if size is None else matrix * (size / (window[2] - window[0]))


def matrix_scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def native_crop(image: np.ndarray, landmarks5: np.ndarray | None, size: int,
                window: tuple[int, int, int, int] = SBI_WINDOW, matrix: np.ndarray | None = None) -> np.ndarray:
    """(size, size, 3) uint8 crop of ``image`` (RGB uint8) showing ``window`` of the context
    frame; ``matrix`` (image -> output pixels) replaces the one from ``landmarks5`` when given."""
    matrix = alignment_matrix(landmarks5, window, size) if matrix is None else np.asarray(matrix, np.float64)
    scale = matrix_scale(matrix)
    if scale < 1.0:
        height, width = image.shape[:2]
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        step_x, step_y = width / new_w, height / new_h
        # Pixel centres: resized pixel u' covers original (u' + 0.5) * step - 0.5.
        matrix = matrix @ np.array([[step_x, 0, 0.5 * step_x - 0.5], [0, step_y, 0.5 * step_y - 0.5], [0, 0, 1]])
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
