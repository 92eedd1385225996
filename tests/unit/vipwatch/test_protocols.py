"""Downscaled probe trees: the same people and files, each side times the scale."""
from __future__ import annotations

import shutil

from PIL import Image

from tests.support.shared_data import DATA, FACES_ALIGNED
from vipwatch.evaluation.protocols import write_downscaled


def test_write_downscaled_keeps_the_tree_and_scales_each_side(tmp_path):
    source = tmp_path / "probes"
    (source / "barack_obama").mkdir(parents=True)
    (source / "Aaron_Eckhart").mkdir()
    shutil.copy(FACES_ALIGNED / "barack_obama" / "010.png", source / "barack_obama" / "010.png")
    shutil.copy(DATA / "lfw" / "lfw-deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg",
                source / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    (source / "notes.txt").write_text("not an image, not in an identity folder")
    assert write_downscaled(source, tmp_path / "small", 0.33) == 2
    with Image.open(tmp_path / "small" / "barack_obama" / "010.png") as crop:
        assert crop.size == (37, 37) and crop.format == "PNG"  # 112 x 0.33 = 36.96
    with Image.open(tmp_path / "small" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg") as photo:
        assert photo.size == (82, 82) and photo.format == "JPEG"  # 250 x 0.33 = 82.5
    assert not (tmp_path / "small" / "notes.txt").exists()
