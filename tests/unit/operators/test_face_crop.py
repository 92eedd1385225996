"""The SBI detector's crop from native-resolution pixels: the crawl's alignment geometry, and
area interpolation when the face is larger than the template (no aliasing)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from operators.align import align_face
from operators.forgery.face_crop import SBI_WINDOW, alignment_matrix, matrix_scale, native_crop
from tests.support.shared_data import DATA

LFW_IMAGE = sorted((DATA / "lfw" / "lfw-deepfunneled").glob("*/*_0001.jpg"))[40]


@pytest.fixture(scope="module")
def lfw_face(onnx_analyzer):
    """An LFW photo and the crawl's own 5 landmarks (SCRFD) for its face."""
    rgb = np.asarray(Image.open(LFW_IMAGE).convert("RGB"))
    detections = onnx_analyzer.pack.detect(rgb)
    assert detections
    best = max(detections, key=lambda d: (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]))
    return rgb, np.asarray(best.landmarks, np.float32).reshape(5, 2)


def test_same_window_as_the_crawls_context_crop(lfw_face):
    """At native scale ~1 the crop is the crawl's context crop cut to the window."""
    rgb, landmarks = lfw_face
    x0, y0, x1, y1 = SBI_WINDOW
    _, context = align_face(rgb, landmarks)
    crop = native_crop(rgb, landmarks, x1 - x0)
    assert crop.shape == (x1 - x0, y1 - y0, 3) and crop.dtype == np.uint8
    assert np.abs(crop.astype(float) - context[y0:y1, x0:x1]).mean() < 4.0


def test_large_face_is_area_shrunk_to_the_same_crop(lfw_face):
    """The same photo enlarged 3x (landmarks too) gives the same crop: the area path recovers the
    pixels rather than sampling a few of them."""
    rgb, landmarks = lfw_face
    size = SBI_WINDOW[2] - SBI_WINDOW[0]
    big = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] * 3, rgb.shape[0] * 3), Image.NEAREST))
    big_landmarks = (landmarks + 0.5) * 3 - 0.5
    assert matrix_scale(alignment_matrix(big_landmarks)) < 0.5
    diff = np.abs(native_crop(big, big_landmarks, size).astype(float) - native_crop(rgb, landmarks, size))
    assert diff.mean() < 2.0


def test_area_interpolation_does_not_alias():
    """A 1-pixel checkerboard face shrunk 3x must become flat grey; a bilinear warp would keep a
    high-contrast pattern (aliasing)."""
    import cv2

    board = ((np.indices((900, 900)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.repeat(board[..., None], 3, axis=2)
    template_like = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]], np.float32)
    landmarks = template_like * 3 + 300
    crop = native_crop(image, landmarks, 128)
    bilinear = cv2.warpAffine(image, alignment_matrix(landmarks, size=128), (128, 128), flags=cv2.INTER_LINEAR)
    assert abs(crop.mean() - 127.5) < 10 and crop.std() < 20
    assert bilinear.std() > 2 * crop.std()


def test_size_rescales_the_same_window(lfw_face):
    rgb, landmarks = lfw_face
    full = native_crop(rgb, landmarks, 128)
    half = native_crop(rgb, landmarks, 64)
    assert half.shape == (64, 64, 3)
    shrunk = np.asarray(Image.fromarray(full).resize((64, 64), Image.BOX))
    assert np.abs(half.astype(float) - shrunk).mean() < 6.0
