"""The shared forgery options: what a job's ForgeryConfig becomes."""
import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from vipwatch.cli import add_forgery_args, forgery_config


def _config(argv):
    parser = argparse.ArgumentParser()
    add_forgery_args(parser)
    return forgery_config(parser.parse_args(argv))


def test_a_local_fusion_path_goes_absolute_for_workers_in_another_directory(tmp_path, monkeypatch):
    (tmp_path / "fusion-x").mkdir()
    monkeypatch.chdir(tmp_path)
    config = _config(["--forgery-fusion", "fusion-x", "--forgery-detector", "sbi:sbi-mfn-v4"])
    assert config.fusion_model == str(tmp_path.resolve() / "fusion-x") and Path(config.fusion_model).is_absolute()
    assert config.detectors == ["sbi:sbi-mfn-v4"]


def test_uris_names_and_defaults_pass_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _config(["--forgery-fusion", "s3://bucket/fusion"]).fusion_model == "s3://bucket/fusion"
    assert _config(["--forgery-fusion", "uncalibrated"]).fusion_model == "uncalibrated"
    default = _config([])
    # No detector named: the fusion's own (none for the shipped defaults).
    assert default.fusion_model == "shipped" and default.detectors is None
    assert _config(["--forgery-detector", "none"]).detectors == []


def test_second_pack_options_need_each_other_and_go_absolute(tmp_path, monkeypatch):
    (tmp_path / "onnx-pack").mkdir()
    (tmp_path / "gallery-2").mkdir()
    monkeypatch.chdir(tmp_path)
    config = _config(["--second-pack", "onnx-pack", "--second-embedder-file", "mobilefacenet_128.onnx",
                      "--second-gallery", "gallery-2", "--weak-match-fpir", "0.3"])
    assert config.second_pack.pack == str(tmp_path.resolve() / "onnx-pack")
    assert config.second_pack.embedder_file == "mobilefacenet_128.onnx"
    assert config.second_gallery == str(tmp_path.resolve() / "gallery-2") and config.weak_match_fpir == 0.3
    assert _config(["--second-pack", "dlib", "--second-gallery", "s3://g/two"]).second_pack.pack == "dlib"
    assert _config([]).second_pack is None
    with pytest.raises(ValidationError):
        _config(["--second-pack", "dlib"])


def test_region_consistency_option(tmp_path, monkeypatch):
    (tmp_path / "heads").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _config([]).region_consistency == "shipped"
    assert _config(["--region-consistency", "off"]).region_consistency == "off"
    assert _config(["--region-consistency", "heads"]).region_consistency == str(tmp_path.resolve() / "heads")
