"""jobs.train_forgery end to end on a few real faces: the face cache (dlib landmarks, native
regions), a few Ray Train steps on the local cluster (127.0.0.1) from the MobileFaceNet
backbone, an artefact on the S3 server that SBIDetector loads and scores with."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.support.shared_data import DATA, FACES_ALIGNED
from vipwatch.training.sbi_data import split_by_identity

LFW = DATA / "lfw" / "lfw-deepfunneled"
LFW_PEOPLE = [p.name for p in sorted(LFW.iterdir()) if len(list(p.iterdir())) >= 3][:5]
PER_PERSON = 2


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    for person in LFW_PEOPLE:
        (root / "lfw" / person).mkdir(parents=True)
        for image in sorted((LFW / person).iterdir())[:PER_PERSON]:
            shutil.copy(image, root / "lfw" / person / image.name)
    identity = sorted(FACES_ALIGNED.iterdir())[0]
    (root / "aligned" / identity.name).mkdir(parents=True)
    for image in sorted(identity.iterdir())[:2]:
        shutil.copy(image, root / "aligned" / identity.name / image.name)
    return root


def test_split_holds_out_whole_identities_of_one_source():
    identities = [f"lfw/id{i % 5}" for i in range(40)] + ["photos/a.jpg", "photos/b.jpg"]
    sources = ["lfw"] * 40 + ["photos"] * 2
    train, held = split_by_identity(identities, sources, "lfw", 0.4, seed=3)
    assert len(held) == 2 and not train & held and train | held == set(identities)
    assert {"photos/a.jpg", "photos/b.jpg"} <= train
    with pytest.raises(ValueError, match="identities"):
        split_by_identity(["photos/a.jpg"], ["photos"], "photos", 0.5, seed=0)


def test_few_steps_write_a_loadable_artefact(ray_cluster, s3_server, tiny_sources, tmp_path):
    from core import storage
    from jobs.train_forgery import main
    from operators.align import align_face
    from operators.forgery.sbi_detector import SBIDetector
    from vipwatch.training.sbi_faces import Landmarker
    from operators.forgery.sbi import five_points

    s3_server.create_bucket("sbi-models")
    out = "s3://sbi-models/tiny"
    summary = main(["--real-one-face", f"lfw={tiny_sources / 'lfw'}",
                    "--real-aligned", f"faces_aligned={tiny_sources / 'aligned'}",
                    "--out", out, "--cache", str(tmp_path / "cache"), "--epochs", "1", "--max-steps", "2",
                    "--batch-size", "4", "--val-fraction", "0.4", "--cpus-per-worker", "0.5", "--version", "sbi-test"])

    manifest = json.loads(storage.read_bytes(storage.join(out, "manifest.json")))
    assert manifest["version"] == summary["version"] == "sbi-test" and manifest["backbone"] == "mfn"
    cache = manifest["training_data"]["cache"]
    assert cache["lfw"]["images_listed"] == cache["lfw"]["faces"] == len(LFW_PEOPLE) * PER_PERSON
    assert cache["faces_aligned"]["faces"] == 2
    held = manifest["training_data"]["validation"]["identities"]
    assert len(held) == 2 and all(name.startswith("lfw/") for name in held)
    train = manifest["training_data"]["train"]
    assert train["faces"] == len(LFW_PEOPLE) * PER_PERSON - 2 * PER_PERSON + 2
    assert train["by_source"] == {"lfw": (len(LFW_PEOPLE) - 2) * PER_PERSON, "faces_aligned": 2}
    metric = manifest["metrics"]["held_out_real_vs_sbi"]
    assert metric["real"] == metric["fake"] == 2 * PER_PERSON and 0.0 <= metric["auc"] <= 1.0
    assert manifest["history"][-1]["steps"] == 2 and manifest["recipe"]["steps"] == 2
    assert "Research use only" in manifest["licences"]["data"]["lfw"]
    assert "non-commercial" in manifest["licences"]["data"]["faces_aligned"]
    assert "Apache-2.0" in manifest["licences"]["backbone"]
    assert manifest["input"] == {**manifest["input"], "size": 128, "context_window": [48, 48, 176, 176]}

    # The face cache is reused for the same sources and refused for others.
    from vipwatch.training.sbi_faces import RealSource, build_face_cache

    sources = [RealSource("lfw", str(tiny_sources / "lfw"), one_face=True),
               RealSource("faces_aligned", str(tiny_sources / "aligned"), aligned=True)]
    assert build_face_cache(sources, str(tmp_path / "cache"))["sources"] == cache
    with pytest.raises(ValueError, match="other sources"):
        build_face_cache(sources[:1], str(tmp_path / "cache"))

    detector = SBIDetector(out)
    assert detector.version == "sbi-test" and detector.name == "sbi"
    landmarker = Landmarker()
    contexts = []
    for person in held:
        for path in sorted((tiny_sources / "lfw" / person.split("/", 1)[1]).iterdir()):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            contexts.append(align_face(rgb, five_points(landmarker.faces(rgb, one_face=True)[0]))[1])
    scores = detector.score(contexts[:3])  # a batch size the trace never saw
    assert scores.shape == (3,) and scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()


def test_detector_refuses_tampered_model(ray_cluster, s3_server, tmp_path):
    """Depends on the artefact of the previous test (same module, same S3 server)."""
    from core import storage
    from operators.forgery.sbi_detector import SBIDetector

    source = "s3://sbi-models/tiny"
    if not storage.exists(storage.join(source, "manifest.json")):
        pytest.skip("needs the artefact written by test_few_steps_write_a_loadable_artefact")
    storage.write_bytes(str(tmp_path / "manifest.json"), storage.read_bytes(storage.join(source, "manifest.json")))
    model = bytearray(storage.read_bytes(storage.join(source, "model.pt")))
    model[-1] ^= 0xFF
    storage.write_bytes(str(tmp_path / "model.pt"), bytes(model))
    with pytest.raises(ValueError, match="sha256"):
        SBIDetector(str(tmp_path))


def test_run_continues_from_an_artefact(ray_cluster, s3_server, tiny_sources, tmp_path):
    """Depends on the artefact of test_few_steps_write_a_loadable_artefact (same S3 server)."""
    import io

    import torch

    from core import storage
    from jobs.train_forgery import main
    from operators.forgery.sbi_model import UInt8Scorer, network_state, read_artifact
    from vipwatch.training.sbi_network import build_network

    source = "s3://sbi-models/tiny"
    if not storage.exists(storage.join(source, "manifest.json")):
        pytest.skip("needs the artefact written by test_few_steps_write_a_loadable_artefact")
    first, model_bytes = read_artifact(source)

    # The weights a continued run starts from are the artefact's: same network, same P(fake).
    network = build_network("mfn")
    network.load_state_dict(network_state(model_bytes), strict=True)
    faces = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8))
    with torch.no_grad():
        restored = UInt8Scorer(network).eval()(faces)
        fresh = UInt8Scorer(build_network("mfn")).eval()(faces)
        exported = torch.jit.load(io.BytesIO(model_bytes)).eval()(faces)
    assert torch.allclose(restored, exported, atol=1e-5) and not torch.allclose(fresh, exported, atol=1e-3)

    args = ["--real-one-face", f"lfw={tiny_sources / 'lfw'}",
            "--real-aligned", f"faces_aligned={tiny_sources / 'aligned'}", "--cache", str(tmp_path / "cache"),
            "--epochs", "2", "--max-steps", "1", "--batch-size", "4", "--val-fraction", "0.4",
            "--init-from", source]
    out = str(tmp_path / "continued")
    # lr 0: the step changes nothing (the converted backbone has no batch norm), so the continued
    # artefact scores exactly as its starting point only if the workers loaded its weights.
    main([*args, "--out", out, "--version", "sbi-test-2", "--checkpoint-dir", str(tmp_path / "checkpoints"),
          "--lr", "0"])
    manifest, continued_bytes = read_artifact(out)
    with torch.no_grad():
        continued = torch.jit.load(io.BytesIO(continued_bytes)).eval()(faces)
    assert torch.allclose(continued, exported, atol=1e-6)
    assert manifest["init_from"]["version"] == "sbi-test" and manifest["init_from"]["model_sha256"] == first["model_sha256"]
    assert manifest["recipe"]["steps"] == 1 and manifest["recipe"]["total_steps"] == 1 + first["recipe"]["steps"]
    assert manifest["timing"]["total_train_seconds"] == pytest.approx(
        manifest["timing"]["train_seconds"] + first["timing"]["train_seconds"], abs=0.11)
    assert manifest["training_data"]["validation"]["identities"] == first["training_data"]["validation"]["identities"]
    assert list((tmp_path / "checkpoints").rglob("model.pt")), "the epoch's checkpoint is kept"

    # Another seed holds out other people, whom the starting artefact may have trained on: refused.
    held = set(first["training_data"]["validation"]["identities"])
    identities = [f"lfw/{person}" for person in LFW_PEOPLE]
    other_seed = next(seed for seed in range(1, 100)
                      if split_by_identity(identities, ["lfw"] * len(identities), "lfw", 0.4, seed)[1] != held)
    with pytest.raises(ValueError, match="held out"):
        main([*args, "--out", str(tmp_path / "leaky"), "--seed", str(other_seed)])
    with pytest.raises(ValueError, match="px"):
        main([*args, "--out", str(tmp_path / "other-size"), "--image-size", "96"])
