"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): a pseudo-fake made from one real face,
by blending a perturbed copy of the face into itself inside a landmark-derived mask. A detector
trained on these learns blending boundaries and colour / resolution mismatches, which face swaps
share, without ever seeing a real deepfake.

Departure from the paper: only the source (the pasted copy) is perturbed, never the target, so a
pseudo-fake differs from its real image inside the mask only. The real sample is the untouched
image, and the detector cannot learn a global colour shift as the cue.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from operators.align import ARCFACE_TEMPLATE
from core.schema import ALIGNED_SIZE, CONTEXT_SIZE

# The 5 template landmarks in the 224 context frame (same scale, centre shifted by 56).
CONTEXT_LANDMARKS = ARCFACE_TEMPLATE + (CONTEXT_SIZE - ALIGNED_SIZE) / 2
# The paper draws the blend ratio from this set: full pastes half the time, partial otherwise.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


@dataclass
class BlendResult:
    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray   # HxW float32 in [0, 1]: the blend weight of the perturbed copy
    label: int         # 1 = pseudo-fake, 0 = the real image untouched


def face_hull(landmarks: np.ndarray) -> np.ndarray:
    """Convex hull (K, 2) covering the face, from 5 ArcFace-order landmarks.

    Five points span only eyes-to-mouth; the paper's hull (68/81 points) reaches the jaw and
    forehead. We extend the five with points built from two face-relative vectors, so the hull
    follows the face under any similarity transform: ``across`` (eye to eye, ~35 px at the 112
    template) and ``down`` (eye centre to mouth centre, ~41 px). Forehead 0.75 ``down`` above the
    eyes, temples half an eye distance outside each eye, jaw corners 0.35 ``across`` outside the
    mouth corners, chin 0.4 ``down`` below the mouth. On the template this spans x 20..91,
    y 21..109: brows, cheeks and chin inside, hair and ears outside.
    """
    points = np.asarray(landmarks, np.float32).reshape(5, 2)
    left_eye, right_eye, _, mouth_left, mouth_right = points
    eye_centre, mouth_centre = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    across, down = right_eye - left_eye, mouth_centre - eye_centre
    extra = np.stack([
        eye_centre - 0.75 * down,
        left_eye - 0.35 * across - 0.55 * down, right_eye + 0.35 * across - 0.55 * down,
        left_eye - 0.5 * across, right_eye + 0.5 * across,
        mouth_left - 0.35 * across + 0.1 * down, mouth_right + 0.35 * across + 0.1 * down,
        mouth_centre + 0.4 * down,
    ])
    return cv2.convexHull(np.concatenate([points, extra]).astype(np.float32)).reshape(-1, 2)


def _face_size(landmarks: np.ndarray) -> float:
    points = np.asarray(landmarks, np.float32).reshape(5, 2)
    return float(np.linalg.norm((points[3] + points[4]) / 2 - (points[0] + points[1]) / 2)) * 2.5


def _smooth_field(shape: tuple[int, int], sigma: float, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.uniform(-1, 1, shape).astype(np.float32), (0, 0), sigma)
    return noise / max(float(np.abs(noise).max()), 1e-6) * amplitude


def blend_mask(shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft mask: the hull randomly rescaled about its centre, elastically deformed, blurred."""
    height, width = shape
    size = _face_size(landmarks)
    hull = face_hull(landmarks)
    centre = hull.mean(axis=0)
    hull = centre + (hull - centre) * rng.uniform(0.85, 1.05, size=2)
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1.0)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    sigma, amplitude = size / 8, size * rng.uniform(0.02, 0.06)
    mask = cv2.remap(mask, grid_x + _smooth_field(shape, sigma, amplitude, rng),
                     grid_y + _smooth_field(shape, sigma, amplitude, rng), cv2.INTER_LINEAR, borderValue=0.0)
    kernel = 2 * int(rng.integers(1, max(2, int(size / 10)))) + 1
    mask = cv2.GaussianBlur((mask > 0.5).astype(np.float32), (kernel, kernel), 0)
    return np.clip(mask, 0.0, 1.0)


def perturb_source(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The copy to paste: colour-jittered, sometimes resolution-degraded, slightly scaled and
    shifted about the face centre (so the pasted face is a little misregistered)."""
    source = image.astype(np.float32)
    source = source * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15) + rng.uniform(-15, 15, size=3)
    hsv = cv2.cvtColor(np.clip(source, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.2), 0, 255)
    source = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    height, width = source.shape[:2]
    if rng.random() < 0.3:
        factor = rng.uniform(0.4, 0.8)
        small = cv2.resize(source, (max(1, int(width * factor)), max(1, int(height * factor))),
                           interpolation=cv2.INTER_AREA)
        source = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    size = _face_size(landmarks)
    centre = np.asarray(landmarks, np.float32).reshape(5, 2).mean(axis=0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, rng.uniform(0.95, 1.05))
    matrix[:, 2] += rng.uniform(-0.03, 0.03, size=2) * size
    return cv2.warpAffine(source, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> BlendResult:
    """A pseudo-fake of ``image`` (RGB uint8) whose face has 5 ArcFace-order ``landmarks``."""
    mask = blend_mask(image.shape[:2], landmarks, rng) * BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))]
    source = perturb_source(image, landmarks, rng).astype(np.float32)
    weight = mask[..., None]
    blended = np.clip(np.rint(source * weight + image.astype(np.float32) * (1.0 - weight)), 0, 255).astype(np.uint8)
    # Bit-exact outside the mask: only the pasted region may carry evidence.
    blended = np.where(weight > 0, blended, image)
    return BlendResult(image=blended, mask=mask.astype(np.float32), label=1)


def training_sample(image: np.ndarray, landmarks: np.ndarray, fake: bool, rng: np.random.Generator) -> BlendResult:
    if fake:
        return self_blend(image, landmarks, rng)
    return BlendResult(image=image, mask=np.zeros(image.shape[:2], np.float32), label=0)
