"""Self-Blended Images on real aligned faces: where pixels change, labels, determinism."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from operators.align import crop_from_aligned_input
from operators.forgery.sbi import CONTEXT_LANDMARKS, face_hull, self_blend, training_sample
from tests.support.shared_data import FACES_ALIGNED


def context_faces(count: int) -> list[np.ndarray]:
    paths = sorted(FACES_ALIGNED.glob("*/*.png"))[::97][:count]
    assert len(paths) == count
    return [crop_from_aligned_input(np.asarray(Image.open(p).convert("RGB")))[1] for p in paths]


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    return context_faces(6)


def test_changes_only_inside_mask(faces):
    hull_mask = np.zeros((224, 224), np.uint8)
    cv2.fillConvexPoly(hull_mask, np.round(face_hull(CONTEXT_LANDMARKS)).astype(np.int32), 1)
    for seed, face in enumerate(faces):
        result = self_blend(face, CONTEXT_LANDMARKS, np.random.default_rng(seed))
        assert result.image.shape == face.shape and result.image.dtype == np.uint8
        changed = np.any(result.image != face, axis=2)
        assert not changed[result.mask == 0].any(), "pixels changed outside the blend mask"
        # The mask stays around the face: nothing beyond a dilated landmark hull.
        dilated = cv2.dilate(hull_mask, np.ones((31, 31), np.uint8))
        assert (result.mask[dilated == 0] == 0).all()
        # ...and it covers the face core (eyes to mouth), where the paste is visible.
        core = cv2.erode(hull_mask, np.ones((21, 21), np.uint8)).astype(bool)
        assert (result.mask[core] > 0.2).all()
        diff = np.abs(result.image.astype(int) - face.astype(int)).mean(axis=2)
        assert diff[core].mean() > 1.0
        assert 0.0 <= result.mask.min() and result.mask.max() <= 1.0


def test_labels(faces):
    rng = np.random.default_rng(0)
    real = training_sample(faces[0], CONTEXT_LANDMARKS, fake=False, rng=rng)
    fake = training_sample(faces[0], CONTEXT_LANDMARKS, fake=True, rng=rng)
    assert real.label == 0 and np.array_equal(real.image, faces[0]) and not real.mask.any()
    assert fake.label == 1 and fake.mask.max() > 0 and not np.array_equal(fake.image, faces[0])


def test_deterministic_with_seed(faces):
    first = self_blend(faces[1], CONTEXT_LANDMARKS, np.random.default_rng(42))
    again = self_blend(faces[1], CONTEXT_LANDMARKS, np.random.default_rng(42))
    other = self_blend(faces[1], CONTEXT_LANDMARKS, np.random.default_rng(43))
    assert np.array_equal(first.image, again.image) and np.array_equal(first.mask, again.mask)
    assert not np.array_equal(first.image, other.image)


def test_hull_follows_landmarks():
    """The hull is built from face-relative vectors: a similarity transform of the landmarks
    moves the hull the same way."""
    angle, scale, shift = np.deg2rad(20), 1.7, np.array([13.0, -8.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = CONTEXT_LANDMARKS @ rotation.T + shift
    expected = face_hull(CONTEXT_LANDMARKS) @ rotation.T + shift
    got = face_hull(moved)
    assert len(got) == len(expected)
    distances = np.linalg.norm(got[:, None] - expected[None], axis=2).min(axis=1)
    assert distances.max() < 1e-3
