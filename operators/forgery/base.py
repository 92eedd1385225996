"""The contract every identity-agnostic artefact detector follows, so the scorer can fuse any."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class ArtefactDetector(Protocol):
    #: short signal name used in forgery_signals / reasons, e.g. "mesonet_df", "sbi"
    name: str
    #: recorded in the forgery_model column, e.g. "Meso4_DF@<sha8>"
    version: str

    def score(self, context_faces: list[np.ndarray]) -> np.ndarray:
        """context_faces: 224x224x3 RGB uint8 crops (WORK_SCHEMA ``context_face``: the aligned
        face at the ArcFace scale, field of view doubled). Returns (N,) float32 in [0, 1],
        higher = more likely manipulated."""
        ...
