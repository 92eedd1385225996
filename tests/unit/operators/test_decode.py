"""ImageDecoder on hostile and odd inputs (generated from real photos by tests/support/hostile_inputs.py):
nothing raises, every input gives at least one row, readable images are read (and the face
in them is found), unreadable ones say why."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.support.hostile_inputs import ERROR, READ_FACE, READ_NO_FACE, exif_rotated_jpeg, make_cases
from operators.decode import ImageDecoder, decode_image, looks_like_video, pixels_of
from core.config import DecodeConfig
from core.schema import STATUS_ERROR, STATUS_OK

CASES = make_cases()


@pytest.fixture(scope="module")
def decoded():
    """All cases through one decoder batch, as the crawl runs it."""
    decoder = ImageDecoder(DecodeConfig())
    batch = pd.DataFrame({"path": [c.name for c in CASES], "bytes": [c.data for c in CASES]})
    table = decoder(batch)
    rows: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        rows.setdefault(row["image_uri"], []).append(row)
    return rows


def test_every_input_has_a_row_and_no_other_rows(decoded):
    assert set(decoded) == {c.name for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(case, decoded, onnx_analyzer):
    rows = decoded[case.name]
    assert all(r["media_type"] == case.media_type for r in rows)
    if case.expect == ERROR:
        assert len(rows) == 1
        assert rows[0]["status"] == STATUS_ERROR
        assert rows[0]["pixels"] is None
        assert case.reason in rows[0]["error"].lower(), rows[0]["error"]
        return
    assert all(r["status"] == STATUS_OK and r["error"] is None for r in rows), rows[0]["error"]
    for row in rows:
        rgb = pixels_of(row)
        assert rgb.shape == (row["pixel_height"], row["pixel_width"], 3)
        faces = onnx_analyzer.pack.detect(rgb)
        if case.expect == READ_FACE:
            assert len(faces) >= 1, f"{case.name}: decoded but no face found"
        elif case.expect == READ_NO_FACE:
            assert faces == []


def test_exif_orientation_is_applied_and_matters(onnx_analyzer):
    """The stored pixels are sideways; the face must be found upright after EXIF is applied,
    and the raw stored pixels are what a decoder ignoring EXIF would give."""
    case = next(c for c in CASES if c.name == "exif_rotated.jpg")
    stored = Image.open(io.BytesIO(case.data))
    upright = decode_image(case.data, DecodeConfig())
    assert upright.shape[:2] == (stored.size[0], stored.size[1])  # width and height swapped back
    faces = onnx_analyzer.pack.detect(upright)
    assert len(faces) >= 1
    # Eyes above the mouth: the face is upright, not merely detected.
    landmarks = max(faces, key=lambda d: d.score).landmarks
    assert landmarks[:2, 1].mean() < landmarks[3:, 1].mean()
    sideways = np.asarray(stored.convert("RGB"))
    sideways_faces = onnx_analyzer.pack.detect(sideways)
    if sideways_faces:
        best = max(sideways_faces, key=lambda d: d.score).landmarks
        # Detected sideways, the eyes and mouth sit side by side instead of one above the other.
        assert abs(best[:2, 1].mean() - best[3:, 1].mean()) < abs(best[:2, 0].mean() - best[3:, 0].mean())


def test_broken_exif_still_reads_pixels():
    photo = Image.new("RGB", (40, 30), (120, 60, 30))
    data = bytearray(exif_rotated_jpeg(photo))
    at = data.find(b"Exif\x00\x00")
    data[at + 6:at + 14] = b"\xde\xad\xbe\xef" * 2  # TIFF header of the EXIF block destroyed
    rgb = decode_image(bytes(data), DecodeConfig())
    assert rgb.shape[2] == 3 and rgb.size > 0


def test_pixel_limit_is_configurable():
    """The bomb guard is the declared size against DecodeConfig, not a fixed constant."""
    image = io.BytesIO()
    Image.new("RGB", (300, 200)).save(image, format="PNG")
    with pytest.raises(ValueError, match="image too large"):
        decode_image(image.getvalue(), DecodeConfig(max_decode_pixels=300 * 200 - 1))
    assert decode_image(image.getvalue(), DecodeConfig(max_decode_pixels=300 * 200)).shape == (200, 300, 3)


def test_downscale_keeps_original_size_for_box_mapping():
    image = io.BytesIO()
    Image.new("RGB", (3000, 1000), (1, 2, 3)).save(image, format="PNG")
    row = ImageDecoder(DecodeConfig(max_side=600)).decode_one("wide.png", image.getvalue())[0]
    assert (row["image_width"], row["image_height"]) == (3000, 1000)
    assert (row["pixel_width"], row["pixel_height"]) == (600, 200)


def test_content_beats_extension():
    jpeg = next(c for c in CASES if c.name == "jpeg_named.png").data
    assert not looks_like_video("photo.mp4", jpeg)
    assert looks_like_video("clip.bin", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16)
    assert looks_like_video("clip.mkv", b"garbage")


def test_file_size_limit():
    row = ImageDecoder(DecodeConfig(max_bytes=10)).decode_one("big.jpg", b"\xff\xd8\xff" + b"\x00" * 20)[0]
    assert row["status"] == STATUS_ERROR and row["error"].startswith("file too large")
