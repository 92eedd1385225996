"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): a pseudo-fake made from one real face
by blending a perturbed copy of the face into itself inside a mask drawn from its 68 dense
landmarks (dlib / iBUG order). A detector trained on (target, blend) pairs learns blending
boundaries and colour / resolution mismatches, which face swaps share, without ever seeing a
real deepfake.

As in the paper: one of source and target (chosen at random) gets a colour and a frequency
perturbation, the source is slightly scaled and shifted together with the mask, the mask is one
of several landmark hulls, elastically deformed, blurred twice at random kernel sizes around a
hard threshold, and scaled by a blend ratio drawn from {0.25, 0.5, 0.75, 1, 1, 1}. The real
sample of the pair is the (possibly perturbed) target, so a global colour shift is no cue: the
two images differ only inside the mask. Everything is done at the image's own resolution;
kernel sizes and shifts scale with the face.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
# dlib 68-point groups.
JAW, BROWS, NOSE = np.arange(0, 17), np.arange(17, 27), np.arange(27, 36)
LEFT_EYE, RIGHT_EYE, MOUTH = np.arange(36, 42), np.arange(42, 48), np.arange(48, 68)
HULL_KINDS = ("full", "extended", "inner", "components")


@dataclass
class BlendPair:
    real: np.ndarray   # HxWx3 uint8: the target, perturbed or not
    fake: np.ndarray   # HxWx3 uint8: equal to ``real`` wherever ``mask`` is 0
    mask: np.ndarray   # HxW float32 in [0, 1]: blend weight of the source
    hull: str          # which landmark hull the mask started from


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """ArcFace-order 5 points (eyes, nose tip, mouth corners) from the 68."""
    points = np.asarray(landmarks68, np.float32).reshape(68, 2)
    return np.stack([points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0), points[30], points[48], points[54]])


def face_size(landmarks68: np.ndarray) -> float:
    """Jaw width (points 0..16 span), a scale for kernels and shifts."""
    points = np.asarray(landmarks68, np.float32).reshape(68, 2)
    return float(max(np.linalg.norm(points[16] - points[0]), 1.0))


def hull_mask(shape: tuple[int, int], landmarks68: np.ndarray, kind: str) -> np.ndarray:
    """Binary (0/1 float32) mask of one landmark hull kind."""
    points = np.asarray(landmarks68, np.float32).reshape(68, 2)
    mask = np.zeros(shape, np.float32)
    if kind == "full":
        groups = [np.arange(68)]
    elif kind == "inner":
        groups = [np.arange(17, 68)]
    elif kind == "components":
        groups = [np.concatenate([LEFT_EYE, BROWS[:5]]), np.concatenate([RIGHT_EYE, BROWS[5:]]), NOSE, MOUTH]
    elif kind == "extended":
        # Brows raised toward the hairline by 0.6 nose lengths, so the boundary crosses the
        # forehead, as the paper's 81-point hulls do.
        raised = points[BROWS] - 0.6 * (points[[30]] - points[[27]])
        points = np.concatenate([points, raised])
        groups = [np.arange(len(points))]
    else:
        raise ValueError(f"unknown hull kind {kind!r}")
    for group in groups:
        cv2.fillConvexPoly(mask, np.round(cv2.convexHull(points[group])).astype(np.int32), 1.0)
    return mask


def _odd(value: float) -> int:
    return 2 * max(1, int(round(value / 2))) + 1


def _elastic(mask: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    height, width = mask.shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    sigma, amplitude = size / 10, size * rng.uniform(0.01, 0.05)
    fields = []
    for _ in range(2):
        noise = cv2.GaussianBlur(rng.uniform(-1, 1, mask.shape).astype(np.float32), (0, 0), sigma)
        fields.append(noise / max(float(np.abs(noise).max()), 1e-6) * amplitude)
    return cv2.remap(mask, grid_x + fields[0], grid_y + fields[1], cv2.INTER_LINEAR, borderValue=0.0)


def _dynamic_blur(mask: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    """The paper's blend-mask: blur, keep only the fully covered core (hard threshold), blur again;
    both kernels random, so edges range from sharp to very soft."""
    blurred = cv2.GaussianBlur(mask, (_odd(size * rng.uniform(0.02, 0.12)),) * 2, 0)
    core = (blurred >= 1.0 - 1e-6).astype(np.float32)
    if core.sum() < 0.3 * (mask > 0.5).sum():
        # Small parts (the eye / mouth components) would vanish: keep the unblurred region.
        core = (mask > 0.5).astype(np.float32)
    return cv2.GaussianBlur(core, (_odd(size * rng.uniform(0.02, 0.12)),) * 2, 0)


def colour_perturb(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB shift, hue / saturation / value, brightness / contrast (the paper's colour set)."""
    out = image.astype(np.float32) + rng.uniform(-20, 20, size=3)
    out = np.clip(out, 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5, 5)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.2), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.85, 1.15), 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    out = (out - out.mean()) * rng.uniform(0.9, 1.1) + out.mean() * rng.uniform(0.9, 1.1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def frequency_perturb(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Either a down-then-up resample (lost detail) or a sharpen (boosted detail)."""
    height, width = image.shape[:2]
    if rng.random() < 0.5:
        factor = rng.uniform(0.4, 0.85)
        small = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0)
    amount = rng.uniform(0.2, 0.8)
    return np.clip(image.astype(np.float32) * (1 + amount) - blurred.astype(np.float32) * amount,
                   0, 255).astype(np.uint8)


def perturb(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return frequency_perturb(colour_perturb(image, rng), rng)


def source_affine(landmarks68: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """2x3 matrix: scale 0.95..1.05 about the face centre, shift up to 3% of the face size."""
    points = np.asarray(landmarks68, np.float32).reshape(68, 2)
    centre = points.mean(axis=0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, float(rng.uniform(0.95, 1.05)))
    matrix[:, 2] += rng.uniform(-0.03, 0.03, size=2) * face_size(points)
    return matrix


def blend_mask(shape: tuple[int, int], landmarks68: np.ndarray, rng: np.random.Generator,
               kind: str | None = None) -> tuple[np.ndarray, str]:
    kind = kind or HULL_KINDS[int(rng.integers(len(HULL_KINDS)))]
    size = face_size(landmarks68)
    mask = _elastic(hull_mask(shape, landmarks68, kind), size, rng)
    return _dynamic_blur(mask, size, rng), kind


def self_blend(image: np.ndarray, landmarks68: np.ndarray, rng: np.random.Generator,
               kind: str | None = None) -> BlendPair:
    """A (real, pseudo-fake) pair from ``image`` (RGB uint8) whose face has 68 ``landmarks68``."""
    height, width = image.shape[:2]
    target, source = image, image
    if rng.random() < 0.5:
        source = perturb(image, rng)
    else:
        target = perturb(image, rng)
    mask, kind = blend_mask((height, width), landmarks68, rng, kind)
    matrix = source_affine(landmarks68, rng)
    source = cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
    mask = np.clip(mask, 0.0, 1.0) * BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))]
    weight = mask[..., None]
    fake = np.clip(np.rint(source.astype(np.float32) * weight + target.astype(np.float32) * (1.0 - weight)),
                   0, 255).astype(np.uint8)
    # Bit-exact outside the mask: only the pasted region may carry evidence.
    fake = np.where(weight > 0, fake, target)
    return BlendPair(real=np.ascontiguousarray(target), fake=fake, mask=mask.astype(np.float32), hull=kind)
