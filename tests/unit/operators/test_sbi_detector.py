"""The SBI artefact shipped in the package (operators/forgery/artefacts/sbi-mfn-v1): loads
through the detector registry as ``sbi:shipped``, its sha256 is checked, its manifest says what
it saw, and it scores crawl context crops."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from operators.forgery.detectors import load_detectors
from operators.forgery.sbi_detector import SHIPPED as ARTEFACT
from operators.forgery.sbi_detector import ARTEFACTS, SBIDetector, resolve_artifact
from tests.support.shared_data import DATA


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((ARTEFACT / "manifest.json").read_text())


def test_manifest_records_data_recipe_metrics_and_terms(manifest):
    assert manifest["kind"] == "sbi" and manifest["version"] == "sbi-mfn-v1" and manifest["backbone"] == "mfn"
    cache = manifest["training_data"]["cache"]
    assert cache["lfw"]["faces"] > 13_000 and cache["faces_aligned"]["faces"] > 1_000 and cache["photos"]["faces"] > 0
    train, held = manifest["training_data"]["train"], manifest["training_data"]["validation"]
    assert train["faces"] + held["faces_held_out"] == sum(source["faces"] for source in cache.values())
    assert held["identities"] and all(name.startswith("lfw/") for name in held["identities"])
    assert manifest["recipe"]["steps"] > 0 and manifest["timing"]["train_seconds"] > 0
    assert 0.0 <= manifest["metrics"]["held_out_real_vs_sbi"]["auc"] <= 1.0
    terms = manifest["licences"]
    assert "Research use only" in terms["data"]["lfw"] and "non-commercial" in terms["data"]["faces_aligned"]
    assert "Apache-2.0" in terms["backbone"] and "MS1M" in terms["backbone"]
    assert (ARTEFACT / "model.pt").stat().st_size < 10 * 2**20


def test_loads_from_a_detector_spec_and_scores_crawl_crops(manifest):
    from operators.align import align_face
    from operators.forgery.sbi import five_points
    from vipwatch.training.sbi_faces import Landmarker

    (detector,) = load_detectors(["sbi:shipped"])
    assert detector.name == "sbi" and detector.version == manifest["version"]
    landmarker = Landmarker()
    lfw = DATA / "lfw" / "lfw-deepfunneled"
    people = [name.split("/", 1)[1] for name in manifest["training_data"]["validation"]["identities"][:3]]
    contexts = []
    for person in people:
        rgb = np.asarray(Image.open(sorted((lfw / person).glob("*.jpg"))[0]).convert("RGB"))
        contexts.append(align_face(rgb, five_points(landmarker.faces(rgb, one_face=True)[0]))[1])
    scores = detector.score(contexts)
    assert scores.shape == (3,) and scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    assert detector.score([]).shape == (0,)


def test_refuses_a_model_that_does_not_match_its_manifest(tmp_path):
    shutil.copy(ARTEFACT / "manifest.json", tmp_path / "manifest.json")
    model = bytearray((ARTEFACT / "model.pt").read_bytes())
    model[len(model) // 2] ^= 0xFF
    (tmp_path / "model.pt").write_bytes(bytes(model))
    with pytest.raises(ValueError, match="sha256"):
        SBIDetector(str(tmp_path))


def test_v2_continues_v1_on_the_same_held_out_people_and_loads_by_name(manifest):
    v2 = json.loads((ARTEFACTS / "sbi-mfn-v2" / "manifest.json").read_text())
    assert v2["version"] == "sbi-mfn-v2"
    assert v2["init_from"]["version"] == "sbi-mfn-v1" and v2["init_from"]["model_sha256"] == manifest["model_sha256"]
    # Continuing must not have trained on the people v1 held out (they are the evaluation's).
    assert v2["training_data"]["validation"]["identities"] == manifest["training_data"]["validation"]["identities"]
    assert v2["recipe"]["total_steps"] == manifest["recipe"]["steps"] + v2["recipe"]["steps"]
    assert v2["timing"]["total_train_seconds"] > manifest["timing"]["train_seconds"]
    assert resolve_artifact("sbi-mfn-v2") == str(ARTEFACTS / "sbi-mfn-v2")
    assert resolve_artifact("no-such-artefact") == "no-such-artefact"  # left to read_artifact's error
    (detector,) = load_detectors(["sbi:sbi-mfn-v2"])
    assert detector.version == "sbi-mfn-v2"


@pytest.mark.parametrize("earlier, later", [("sbi-mfn-v2", "sbi-mfn-v3"), ("sbi-mfn-v3", "sbi-mfn-v4"),
                                            ("sbi-mfn-v4", "sbi-mfn-v5"), ("sbi-mfn-v5", "sbi-mfn-v6")])
def test_each_continuation_starts_from_the_last_on_the_same_held_out_people(manifest, earlier, later):
    before = json.loads((ARTEFACTS / earlier / "manifest.json").read_text())
    after = json.loads((ARTEFACTS / later / "manifest.json").read_text())
    assert after["init_from"]["version"] == earlier and after["init_from"]["model_sha256"] == before["model_sha256"]
    assert after["training_data"]["validation"]["identities"] == manifest["training_data"]["validation"]["identities"]
    assert after["recipe"]["total_steps"] == before["recipe"]["total_steps"] + after["recipe"]["steps"]
    assert after["timing"]["train_seconds"] > 1200  # each continuation trained for at least 20 minutes
    assert after["timing"]["total_train_seconds"] == pytest.approx(
        before["timing"]["total_train_seconds"] + after["timing"]["train_seconds"], abs=1.0)
    (detector,) = load_detectors([f"sbi:{later}"])
    assert detector.version == later


@pytest.mark.parametrize("fusion, model", [("fusion-lr-947e9bc4", "sbi-mfn-v4"), ("fusion-lr-802b6ca2", "sbi-mfn-v5"),
                                          ("fusion-lr-e244e060", "sbi-mfn-v6"), ("fusion-lr-e9dbbc2a", "sbi-mfn-v6"),
                                          ("fusion-lr-3f7d1a9d", "sbi-mfn-v6"), ("fusion-lr-f1402113", "sbi-mfn-v6"),
                                          ("fusion-lr-7900bca8", "sbi-mfn-v6"), ("fusion-lr-dfd5903e", "sbi-mfn-v6"),
                                          ("fusion-lr-7ba1f626", "sbi-mfn-v6"), ("fusion-lr-fccced6e", "sbi-mfn-v6")])
def test_each_opt_in_fusion_names_the_model_it_was_fitted_with(fusion, model):
    fusion_manifest = json.loads((ARTEFACTS / fusion / "manifest.json").read_text())
    detector = json.loads((ARTEFACTS / model / "manifest.json").read_text())
    assert fusion_manifest["ships_with"]["model_sha256"] == detector["model_sha256"]
    assert fusion_manifest["ships_with"]["detector"] == f"sbi:{model}"
    assert "artefact:sbi" in (fusion_manifest["signals"].get("generic") or fusion_manifest["signals"]["vip"])
    defaults = {p.read_text().strip() for p in ARTEFACTS.glob("DEFAULT*")}
    # opt-in, except the dlib default, the ONNX default and the dlib + MobileFaceNet default
    assert fusion not in defaults or fusion in ("fusion-lr-fccced6e", "fusion-lr-dfd5903e", "fusion-lr-7ba1f626")
