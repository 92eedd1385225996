"""Classical face swap between two aligned crops: the inner face of a source identity placed on
a target head, colour-corrected and blended. Both crops share the ArcFace template, so the
landmarks already coincide and no warp is needed."""
from __future__ import annotations

import cv2
import numpy as np

from operators.forgery.face_regions import INNER_AXES, INNER_CENTRE, ellipse_mask

BLENDS = ("poisson", "feather")


def swap_mask(rng: np.random.Generator) -> np.ndarray:
    """A jittered inner-face ellipse: swaps in the wild do not follow one exact outline, and a
    detector must not learn the outline of the scoring mask."""
    centre = (INNER_CENTRE[0] + rng.uniform(-2, 2), INNER_CENTRE[1] + rng.uniform(-2, 2))
    axes = (INNER_AXES[0] * rng.uniform(0.95, 1.12), INNER_AXES[1] * rng.uniform(0.95, 1.12))
    return ellipse_mask(1.0, centre=centre, axes=axes)


def reinhard_transfer(source_rgb: np.ndarray, target_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Match the source's LAB mean/std inside the mask to the target's (Reinhard et al. 2001)."""
    inside = mask > 0
    source = cv2.cvtColor(source_rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    target = cv2.cvtColor(target_rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    s_mean, s_std = source[inside].mean(axis=0), source[inside].std(axis=0) + 1e-6
    t_mean, t_std = target[inside].mean(axis=0), target[inside].std(axis=0) + 1e-6
    corrected = (source - s_mean) / s_std * t_std + t_mean
    return cv2.cvtColor(np.clip(corrected, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def swap_face(source_rgb: np.ndarray, target_rgb: np.ndarray, blend: str, rng: np.random.Generator) -> np.ndarray:
    """112x112 RGB: source's inner face on target's head."""
    mask = swap_mask(rng)
    corrected = reinhard_transfer(source_rgb, target_rgb, mask)
    if blend == "poisson":
        ys, xs = np.nonzero(mask)
        centre = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
        out = cv2.seamlessClone(cv2.cvtColor(corrected, cv2.COLOR_RGB2BGR), cv2.cvtColor(target_rgb, cv2.COLOR_RGB2BGR),
                                mask, centre, cv2.NORMAL_CLONE)
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    if blend == "feather":
        alpha = cv2.GaussianBlur(cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(np.float32) / 255.0, (0, 0), 3.0)
        alpha = alpha[:, :, None]
        return np.clip(alpha * corrected + (1 - alpha) * target_rgb, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown blend {blend!r}; expected one of {BLENDS}")
