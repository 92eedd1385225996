"""Self-Blended Images from dense (dlib 68-point) landmarks on real LFW photos: the mask covers
the face and stays on it, the blend changes pixels only inside the mask, determinism."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from operators.forgery.sbi import HULL_KINDS, five_points, hull_mask, self_blend
from tests.support.shared_data import DATA

LFW = DATA / "lfw" / "lfw-deepfunneled"


@pytest.fixture(scope="module")
def faces() -> list[tuple[np.ndarray, np.ndarray]]:
    from vipwatch.training.sbi_faces import Landmarker

    landmarker = Landmarker()
    out = []
    for path in sorted(LFW.glob("*/*_0001.jpg"))[::700][:5]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        found = landmarker.faces(rgb, one_face=True)
        assert len(found) == 1, path
        out.append((rgb, found[0]))
    return out


def _hull(shape, landmarks) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(cv2.convexHull(landmarks)).astype(np.int32), 1)
    return mask


def test_landmarks_are_a_face(faces):
    for rgb, landmarks in faces:
        assert landmarks.shape == (68, 2)
        left_eye, right_eye, nose, mouth_left, mouth_right = five_points(landmarks)
        assert left_eye[0] < nose[0] < right_eye[0] and max(left_eye[1], right_eye[1]) < nose[1] < mouth_left[1]
        # LFW deep-funneled: the face sits in the middle, ~110-130 px wide.
        assert 80 < landmarks[16, 0] - landmarks[0, 0] < 160 and abs(nose[0] - rgb.shape[1] / 2) < 30


def test_full_hull_mask_covers_the_face(faces):
    for rgb, landmarks in faces:
        mask = hull_mask(rgb.shape[:2], landmarks, "full")
        assert mask[_hull(rgb.shape[:2], landmarks) == 1].mean() > 0.99
        # every landmark (eyes, nose, mouth, jaw) inside or on the mask
        for x, y in np.round(landmarks).astype(int):
            assert mask[max(0, y - 1):y + 2, max(0, x - 1):x + 2].max() == 1.0


def test_blend_changes_pixels_only_inside_the_mask(faces):
    for seed, (rgb, landmarks) in enumerate(faces):
        for kind in HULL_KINDS:
            pair = self_blend(rgb, landmarks, np.random.default_rng(seed), kind=kind)
            assert pair.real.shape == pair.fake.shape == rgb.shape and pair.fake.dtype == np.uint8
            assert pair.hull == kind and 0.0 <= pair.mask.min() and pair.mask.max() <= 1.0
            changed = np.any(pair.fake != pair.real, axis=2)
            assert not changed[pair.mask == 0].any(), "pixels changed outside the blend mask"
            assert changed.sum() > 200, kind
            # Deformation, shift and blur keep the mask near its hull: nothing beyond it grown by
            # a sixth of the face size each way.
            size = int(landmarks[16, 0] - landmarks[0, 0])
            grown = cv2.dilate(hull_mask(rgb.shape[:2], landmarks, kind), np.ones((size // 3, size // 3), np.uint8))
            assert (pair.mask[grown == 0] == 0).all(), kind
            assert pair.mask[grown > 0].max() > 0.2, kind


def test_target_perturbation_keeps_the_pair_aligned(faces):
    """Whichever image is perturbed, the real of the pair is the target: half of the draws give
    a real that differs from the photo (colour / frequency) and the fake still equals it outside."""
    rgb, landmarks = faces[0]
    perturbed_targets = 0
    for seed in range(8):
        pair = self_blend(rgb, landmarks, np.random.default_rng(seed))
        perturbed_targets += not np.array_equal(pair.real, rgb)
        assert np.array_equal(pair.fake[pair.mask == 0], pair.real[pair.mask == 0])
    assert 1 <= perturbed_targets <= 7


def test_deterministic_with_seed(faces):
    rgb, landmarks = faces[1]
    first = self_blend(rgb, landmarks, np.random.default_rng(42))
    again = self_blend(rgb, landmarks, np.random.default_rng(42))
    other = self_blend(rgb, landmarks, np.random.default_rng(43))
    assert np.array_equal(first.fake, again.fake) and np.array_equal(first.mask, again.mask)
    assert not np.array_equal(first.fake, other.fake)
