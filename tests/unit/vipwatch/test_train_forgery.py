"""jobs.train_forgery: a tiny real SBI training run through Ray Train on the local cluster,
writing its artefact to the S3 server; SBIDetector loads and scores with it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from operators.align import crop_from_aligned_input
from vipwatch.training.sbi_data import FaceSet, split_by_identity
from tests.support.shared_data import DATA, FACES_ALIGNED, MODELS

IDENTITIES = sorted(p.name for p in FACES_ALIGNED.iterdir())[:2]
PER_IDENTITY = 6


@pytest.fixture(scope="module")
def tiny_real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    for identity in IDENTITIES:
        (root / identity).mkdir()
        for image in sorted((FACES_ALIGNED / identity).iterdir())[:PER_IDENTITY]:
            shutil.copy(image, root / identity / image.name)
    return root


def test_split_holds_out_whole_identities():
    identities = [f"id{i % 5}" for i in range(40)]
    faces = FaceSet("x", np.zeros((40, 1, 1, 3), np.uint8), identities)
    train, val, how = split_by_identity(faces, 0.4, seed=3)
    assert how == "by_identity" and sorted(train + val) == list(range(40))
    assert not {identities[i] for i in train} & {identities[i] for i in val}
    assert len({identities[i] for i in val}) == 2
    flat = FaceSet("x", np.zeros((10, 1, 1, 3), np.uint8), [None] * 10)
    train, val, how = split_by_identity(flat, 0.3, seed=3)
    assert how == "by_image" and len(val) == 3 and not set(train) & set(val)


def test_tiny_training_run_writes_loadable_artefact(ray_cluster, s3_server, tiny_real):
    from jobs.train_forgery import main
    from operators.forgery.sbi_detector import SBIDetector
    from core import storage

    s3_server.create_bucket("sbi-models")
    out = "s3://sbi-models/tiny"
    mesonet = DATA / "deepfakes" / "mesonet"
    summary = main(["--real", str(tiny_real), "--aligned", "--out", out, "--epochs", "1", "--image-size", "64",
                    "--backbone", "tiny", "--batch-size", "8", "--val-fraction", "0.5", "--cpus-per-worker", "0.5",
                    "--val-real", str(mesonet / "real"), "--val-fake", str(mesonet / "df"),
                    "--model-pack", str(MODELS), "--detector-file", "scrfd_500m_kps.onnx",
                    "--embedder-file", "mobilefacenet_128.onnx"])

    manifest = json.loads(storage.read_bytes(storage.join(out, "manifest.json")))
    assert manifest["version"] == summary["version"]
    data = manifest["training_data"]
    assert data["split"] == "by_identity" and data["real"]["faces"] == 2 * PER_IDENTITY
    assert sorted(data["train"]["identities"] + data["validation"]["identities"]) == IDENTITIES
    held_out = manifest["metrics"]["held_out_real_vs_sbi"]
    assert held_out["real"] == held_out["fake"] == PER_IDENTITY and 0.0 <= held_out["auc"] <= 1.0
    external = manifest["metrics"]["external"]
    assert external["real_data"]["faces"] == 2 and external["fake_data"]["faces"] == 2 and 0.0 <= external["auc"] <= 1.0
    assert [h["epoch"] for h in manifest["history"]] == [1]
    assert manifest["history"][0]["train_images"] == 2 * PER_IDENTITY  # each real and its blend
    assert manifest["input"]["size"] == 64 and manifest["epochs"] == 1

    detector = SBIDetector(out)
    assert detector.version == manifest["version"] and detector.name == "sbi"
    held_identity = data["validation"]["identities"][0]
    contexts = [crop_from_aligned_input(np.asarray(Image.open(p).convert("RGB")))[1]
                for p in sorted((tiny_real / held_identity).iterdir())]
    scores = detector.score(contexts)
    assert scores.shape == (PER_IDENTITY,) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    # The detector's own preprocessing reproduces what training measured on the same faces.
    assert float(scores.mean()) == pytest.approx(held_out["mean_score_real"], abs=1e-5)


def test_detector_refuses_tampered_model(ray_cluster, s3_server, tmp_path):
    """Depends on the artefact of the previous test (same module, same S3 server)."""
    from operators.forgery.sbi_detector import SBIDetector
    from core import storage

    source = "s3://sbi-models/tiny"
    if not storage.exists(storage.join(source, "manifest.json")):
        pytest.skip("needs the artefact written by test_tiny_training_run_writes_loadable_artefact")
    storage.write_bytes(str(tmp_path / "manifest.json"), storage.read_bytes(storage.join(source, "manifest.json")))
    model = bytearray(storage.read_bytes(storage.join(source, "model.pt")))
    model[-1] ^= 0xFF
    storage.write_bytes(str(tmp_path / "model.pt"), bytes(model))
    with pytest.raises(ValueError, match="sha256"):
        SBIDetector(str(tmp_path))
