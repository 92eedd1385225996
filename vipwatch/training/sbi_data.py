"""SBI training samples from cached native-resolution faces (vipwatch/training/sbi_faces.py):
a self-blend at native resolution, the web's laundering (downscale, JPEG) applied alike to both
images of the pair, then the network's input window cut with area interpolation; and the
identity split."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from operators.forgery.face_crop import SBI_WINDOW, alignment_matrix, native_crop
from operators.forgery.sbi import five_points, self_blend
from vipwatch.training.sbi_faces import decode_png


@dataclass(frozen=True)
class Augment:
    """Pair-level augmentation (same draw for the real and its blend)."""
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 100)
    downscale_p: float = 0.3
    downscale: tuple[float, float] = (0.3, 0.9)
    crop_scale: tuple[float, float] = (0.93, 1.07)
    crop_shift_px: float = 4.0
    flip_p: float = 0.5


NO_AUGMENT = Augment(jpeg_p=0.0, downscale_p=0.0, crop_scale=(1.0, 1.0), crop_shift_px=0.0, flip_p=0.0)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _downscaled(image: np.ndarray, factor: float) -> np.ndarray:
    """The image as if published this much smaller (area), shown back at its size."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(8, round(width * factor)), max(8, round(height * factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def jittered_matrix(landmarks68: np.ndarray, augment: Augment, rng: np.random.Generator, size: int,
                    window: tuple[int, int, int, int] = SBI_WINDOW) -> np.ndarray:
    """The crawl's alignment from the 5 points, slightly rescaled / shifted about the window
    centre (detectors disagree by a few pixels)."""
    matrix = alignment_matrix(five_points(landmarks68), window, size)
    scale = rng.uniform(*augment.crop_scale)
    centre = np.array([size / 2, size / 2])
    jitter = np.array([[scale, 0, (1 - scale) * centre[0]], [0, scale, (1 - scale) * centre[1]]])
    jitter[:, 2] += rng.uniform(-augment.crop_shift_px, augment.crop_shift_px, size=2)
    return np.concatenate([jitter[:, :2] @ matrix[:, :2], (jitter[:, :2] @ matrix[:, 2] + jitter[:, 2])[:, None]], axis=1)


def training_pair(region: np.ndarray, landmarks68: np.ndarray, rng: np.random.Generator, size: int,
                  augment: Augment = Augment(), window: tuple[int, int, int, int] = SBI_WINDOW
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) network inputs, each (size, size, 3) uint8, from one cached face."""
    pair = self_blend(region, landmarks68, rng)
    real, fake = pair.real, pair.fake
    if rng.random() < augment.downscale_p:
        factor = rng.uniform(*augment.downscale)
        real, fake = _downscaled(real, factor), _downscaled(fake, factor)
    if rng.random() < augment.jpeg_p:
        quality = int(rng.integers(augment.jpeg_quality[0], augment.jpeg_quality[1] + 1))
        real, fake = _jpeg(real, quality), _jpeg(fake, quality)
    matrix = jittered_matrix(landmarks68, augment, rng, size, window)
    real, fake = native_crop(real, None, size, window, matrix), native_crop(fake, None, size, window, matrix)
    if rng.random() < augment.flip_p:
        real, fake = real[:, ::-1], fake[:, ::-1]
    return np.ascontiguousarray(real), np.ascontiguousarray(fake)


def pairs_from_rows(regions: list[bytes], landmarks: list, rng: np.random.Generator, size: int,
                    augment: Augment = Augment(), window: tuple[int, int, int, int] = SBI_WINDOW
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cache rows -> (2B, h, w, 3) uint8 inputs (reals then fakes) and (2B,) float32 labels."""
    reals, fakes = [], []
    for data, points in zip(regions, landmarks):
        real, fake = training_pair(decode_png(data), np.asarray(points, np.float32).reshape(68, 2), rng, size,
                                   augment, window)
        reals.append(real)
        fakes.append(fake)
    images = np.stack(reals + fakes)
    labels = np.concatenate([np.zeros(len(reals)), np.ones(len(fakes))]).astype(np.float32)
    return images, labels


class PairMaker:
    """Ray Data batch callable: cache rows -> training samples, a fresh blend every epoch."""

    def __init__(self, size: int, augment: Augment = Augment(), window: tuple[int, int, int, int] = SBI_WINDOW):
        self.rng = np.random.default_rng()
        self.size, self.augment, self.window = size, augment, window

    def __call__(self, batch: dict) -> dict:
        images, labels = pairs_from_rows(list(batch["region"]), list(batch["landmarks"]), self.rng, self.size,
                                         self.augment, self.window)
        return {"image": images, "label": labels}


def split_by_identity(identities: list[str], sources: list[str], val_source: str, val_fraction: float,
                      seed: int) -> tuple[set[str], set[str]]:
    """(train identities, validation identities): a share of ``val_source``'s identities is held
    out whole; every other source trains."""
    held_candidates = sorted({i for i, s in zip(identities, sources) if s == val_source})
    if len(held_candidates) < 2:
        raise ValueError(f"validation source {val_source!r} has {len(held_candidates)} identities; need 2+")
    rng = np.random.default_rng(seed)
    count = min(len(held_candidates) - 1, max(1, int(round(len(held_candidates) * val_fraction))))
    held = set(rng.permutation(held_candidates)[:count].tolist())
    return set(identities) - held, held
