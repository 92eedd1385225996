"""ForgeryScorer as an operator and inside a real crawl (local Ray cluster, ONNX pack)."""
import shutil

import pyarrow.dataset as ds

from vipwatch.enrol import embed_images
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from operators.stages import face_stages
from tests.support.shared_data import DATA, DLIB_PACK, MODELS, ONNX_PACK
from operators.forgery.fusion import ARTEFACTS_DIR
from core.config import CrawlConfig, ForgeryConfig

# MesoNet is no longer a default detector (issue 14); these tests still check that an artefact
# detector's signal reaches the rows, so they name it.
MESONET_DF = f"mesonet:{MODELS / 'mesonet' / 'Meso4_DF.h5'}"


def test_scores_vip_faces_and_leaves_others_unverified(onnx_gallery, onnx_analyzer, swap_dir):
    uris = sorted(str(p) for p in (swap_dir / "real" / "keanu_reeves").iterdir())[:2]
    uris += sorted(str(p) for p in (swap_dir / "fake" / "keanu_reeves").iterdir())
    analyzer = FaceAnalyzer(ONNX_PACK, aligned=True, pack=onnx_analyzer.pack)
    matcher = GalleryMatcher(onnx_gallery)
    # The hand-made ranking, named explicitly (the default is the calibrated shipped fusion).
    scorer = ForgeryScorer(gallery=matcher.gallery, forgery=ForgeryConfig(detectors=[MESONET_DF], fusion_model="uncalibrated"),
                           pack=onnx_analyzer.pack)
    out = scorer(matcher(embed_images(uris, analyzer, ImageDecoder()))).to_pylist()
    assert all(r["forgery_model"].startswith("fusion-uncalibrated-v1;mesonet_meso4_df=Meso4_DF@") for r in out)
    reals, fakes = out[:2], out[2:]
    assert all(r["verdict"] == "authentic" and r["identity_id"] == "keanu_reeves" for r in reals)
    assert all(r["verdict"] == "suspected_forgery" for r in fakes)
    assert all(any("keanu_reeves" in reason for reason in r["reasons"]) for r in fakes)
    names = {s["name"] for s in fakes[0]["forgery_signals"]}
    assert {"inner_whole_gap", "inner_outer_gap", "artefact:mesonet_meso4_df"} <= names
    # Deficits against X only for a face that matches X as a whole (not for weak / inner candidates).
    assert ("identity_deficit" in names) == (fakes[0]["identity_id"] == "keanu_reeves")
    assert max(r["forgery_score"] for r in reals) < min(r["forgery_score"] for r in fakes)

    # Faces of people outside the gallery: the generic score only, unless a VIP candidate was
    # found for them (then the identity signals were computed and the verdict is a VIP one).
    photos = sorted(str(p) for p in (DATA / "photos/facenet_pytorch/test_images").glob("*/1.jpg"))
    strangers = [r for r in scorer(matcher(embed_images(photos, onnx_analyzer, ImageDecoder()))).to_pylist()
                 if r["status"] == "ok"]
    assert any(r["verdict"] == "unverified" for r in strangers)
    for r in strangers:
        checked = any(s["name"] == "inner_whole_gap" for s in r["forgery_signals"])
        assert (r["verdict"] == "unverified") == (not checked)
        # A face the size gate kept from the artefact detector has no generic score at all.
        gated = any(reason.startswith("face too") for reason in r["reasons"])
        assert (r["forgery_score"] is None) == (gated and not checked)
        assert r["forgery_score"] is None or 0 <= r["forgery_score"] <= 1


def test_crawl_rows_carry_forgery_fields(ray_cluster, onnx_gallery, swap_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted((swap_dir / "real" / "halle_berry").iterdir())[:2] + sorted((swap_dir / "fake" / "halle_berry").iterdir()):
        shutil.copy(path, inputs / f"{path.parent.parent.name}_{path.name}")
    (inputs / "broken.png").write_bytes(b"not an image")
    from vipwatch.crawl.run import run_crawl

    config = CrawlConfig(input=str(inputs), gallery=onnx_gallery, output=str(tmp_path / "out"), aligned=True,
                         model=ONNX_PACK, forgery=ForgeryConfig(detectors=[MESONET_DF], fusion_model="uncalibrated"))
    run_crawl(config)
    rows = ds.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()
    assert len(rows) == 5
    faces = [r for r in rows if r["status"] == "ok"]
    assert len(faces) == 4
    for r in faces:
        assert r["forgery_model"] and "mesonet" in r["forgery_model"] and "identity=" in r["forgery_model"]
        assert 0 <= r["forgery_score"] <= 1 and r["verdict"] in ("authentic", "suspected_forgery", "unverified")
        assert r["reasons"] and r["forgery_signals"]
    fakes = [r for r in faces if "fake_" in r["image_uri"]]
    assert fakes, "no fake image reached the scorer: the verdict check below would pass vacuously"
    assert all(r["verdict"] == "suspected_forgery" for r in fakes)
    assert [r for r in rows if r["status"] == "error"][0]["forgery_score"] is None


def test_a_fusion_without_a_detector_needs_no_context_crops_and_scores_the_same(onnx_gallery, onnx_analyzer,
                                                                               swap_dir):
    """A fusion fitted without an artefact detector (fusion-lr@3d8ba041, the ONNX default until
    session 29) makes the face stage skip the 224 px context crop, and the scorer's output is what
    it is with the crops; the shipped defaults, fitted with SBI, bring it and so the crops."""
    shipped = CrawlConfig(input="unused", output="unused", gallery=onnx_gallery, model=ONNX_PACK, aligned=True)
    assert shipped.forgery.detectors is None  # the fusion's
    assert face_stages(shipped)[0].kwargs["context_crops"] is True
    no_detector = ForgeryConfig(fusion_model=str(ARTEFACTS_DIR / "fusion-lr-3d8ba041"))
    without = shipped.model_copy(update={"forgery": no_detector})
    assert face_stages(without)[0].kwargs["context_crops"] is False
    with_detector = without.model_copy(update={"forgery": ForgeryConfig(detectors=[MESONET_DF])})
    assert face_stages(with_detector)[0].kwargs["context_crops"] is True
    # An opt-in fusion fitted with SBI brings that detector (and so the context crops); "none" wins.
    sbi_fusion = str(ARTEFACTS_DIR / "fusion-lr-3f7d1a9d")
    brings = shipped.model_copy(update={"model": DLIB_PACK, "forgery": ForgeryConfig(fusion_model=sbi_fusion)})
    assert face_stages(brings)[0].kwargs["context_crops"] is True
    refused = brings.model_copy(update={"forgery": ForgeryConfig(fusion_model=sbi_fusion, detectors=[])})
    assert face_stages(refused)[0].kwargs["context_crops"] is False

    uris = sorted(str(p) for p in (swap_dir / "real").glob("*/*"))[:4]
    uris += sorted(str(p) for p in (swap_dir / "fake").glob("*/*"))[:4]
    matcher = GalleryMatcher(onnx_gallery)
    scorer = ForgeryScorer(gallery=matcher.gallery, forgery=without.forgery, pack=onnx_analyzer.pack)
    assert scorer.detectors == []
    columns = ("forgery_score", "verdict", "reasons", "forgery_signals", "forgery_identity_id", "forgery_model")
    outputs = []
    for context_crops in (True, False):
        analyzer = FaceAnalyzer(ONNX_PACK, aligned=True, pack=onnx_analyzer.pack, context_crops=context_crops)
        faces = matcher(embed_images(uris, analyzer, ImageDecoder()))
        assert faces.column("context_face").null_count == (0 if context_crops else faces.num_rows)
        outputs.append(scorer(faces).select(columns).to_pylist())
    assert outputs[0] == outputs[1]
    assert sum(r["verdict"] is not None for r in outputs[0]) == len(uris)
