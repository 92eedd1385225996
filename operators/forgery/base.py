"""The contract every identity-agnostic artefact detector follows, so the scorer can fuse any."""
from __future__ import annotations

from typing import Protocol

import numpy as np

ARTEFACT_PREFIX = "artefact:"
# Name prefix of a second model pack's signals (ForgeryConfig.second_pack).
SECOND_PACK_PREFIX = "pack2:"
# Signals any face can carry, VIP candidate or not (artefact detectors, region consistency):
# the generic head fuses them.
GENERIC_PREFIXES = (ARTEFACT_PREFIX, "consistency:")


def is_generic(name: str) -> bool:
    return name.removeprefix(SECOND_PACK_PREFIX).startswith(GENERIC_PREFIXES)


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
