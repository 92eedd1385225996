"""Whether a face carries enough pixels for an artefact detector's score to mean anything.

Two measures, both cheap and computed from what every face row already holds:
- ``inter_ocular_px``: distance between the two eye landmarks in ORIGINAL image pixels (the
  row's ``landmarks``). Artefact detectors see the face resampled to a fixed crop; below some
  size that crop is an upscaled blur whose statistics the detector reads as "fake".
- ``sharpness``: variance of the Laplacian of the 112x112 aligned crop (grey): low for a blurred
  or heavily upscaled face.
Thresholds live in ForgeryConfig; docs/forgery.md has the run (jobs.forgery_size_sweep) that
chose them.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import cv2
import numpy as np


def inter_ocular_px(landmarks: Optional[Sequence[float]]) -> float:
    """Eye-to-eye distance of 5 ArcFace-order landmarks (x0, y0, x1, y1, ...); NaN without them."""
    if landmarks is None or len(landmarks) < 4:
        return math.nan
    return float(math.hypot(landmarks[2] - landmarks[0], landmarks[3] - landmarks[1]))


def sharpness(aligned_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned crop's grey image."""
    grey = cv2.cvtColor(np.ascontiguousarray(aligned_rgb), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


# What a gate withholds, as its reason names it (ForgeryConfig.consistency_gate).
GATED_WITH_CONSISTENCY = "artefact and region-consistency signals"
GATED_ARTEFACTS = "artefact signals"
GATED_CONSISTENCY = "region-consistency signals"


def gate_reason(iod_px: float, sharp: float, min_iod_px: float, min_sharpness: float,
                gated: str = GATED_WITH_CONSISTENCY) -> Optional[str]:
    """Why the ``gated`` signals must not be used for this face, or None when they may."""
    if math.isfinite(iod_px) and iod_px < min_iod_px:
        return f"face too small to judge: {iod_px:.0f} px between the eyes ({gated} need >= {min_iod_px:.0f})"
    if sharp < min_sharpness:
        return (f"face too blurred to judge: sharpness {sharp:.0f} (variance of the Laplacian; {gated} need "
                f">= {min_sharpness:.0f})")
    return None
