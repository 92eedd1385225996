"""A second model pack's identity signals (ForgeryConfig.second_pack): the dlib embedder reads
the ONNX pack's aligned crops of real faces_aligned photos and of classical swaps, against a
gallery of the same identities enrolled with dlib. The first pack's signals must not change."""
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from core.config import ForgeryConfig
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.pack_identity import SECOND_PACK_PREFIX
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from tests.support.fusions import ONNX_IDENTITY_ONLY
from tests.support.shared_data import DLIB_PACK, ONNX_PACK
from vipwatch.enrol import embed_images
from vipwatch.evaluation import fusion_fit

DLIB_EMBEDDER_PREFIX = "dlib_resnet_v1@"


def _signals(row) -> dict:
    return {s["name"]: s["value"] for s in row["forgery_signals"] or []}


@pytest.fixture(scope="module")
def scored(onnx_gallery, onnx_analyzer, swap_dir, dlib_gallery):
    matcher = GalleryMatcher(onnx_gallery)
    uris = sorted(str(p) for p in (swap_dir / "real").glob("*/*")) + sorted(str(p) for p in (swap_dir / "fake").glob("*/*"))
    labels = np.array([int("/fake/" in u) for u in uris])
    rows = matcher(embed_images(uris, FaceAnalyzer(ONNX_PACK, aligned=True, pack=onnx_analyzer.pack), ImageDecoder()))
    one = ForgeryScorer(gallery=matcher.gallery, pack=onnx_analyzer.pack, detectors=[],
                        forgery=ForgeryConfig(fusion_model=ONNX_IDENTITY_ONLY))
    two = ForgeryScorer(gallery=matcher.gallery, pack=onnx_analyzer.pack, detectors=[],
                        forgery=ForgeryConfig(second_pack=DLIB_PACK, second_gallery=dlib_gallery,
                                              fusion_model=ONNX_IDENTITY_ONLY))
    return labels, one, two, one(rows).to_pylist(), two(rows).to_pylist()


def test_second_pack_adds_its_signals_and_leaves_the_first_alone(scored):
    labels, one, two, first, both = scored
    assert len(first) == len(both) == len(labels)
    for a, b in zip(first, both):
        own = {k: v for k, v in _signals(b).items() if not k.startswith(SECOND_PACK_PREFIX)}
        assert own == _signals(a)
        assert b["forgery_identity_id"] == a["forgery_identity_id"] or a["forgery_identity_id"] is None
    second = [{k[len(SECOND_PACK_PREFIX):]: v for k, v in _signals(r).items() if k.startswith(SECOND_PACK_PREFIX)}
              for r in both]
    # dlib matches authentic faces_aligned crops of the enrolled VIPs: each gets the full set.
    reals = [s for s, label in zip(second, labels) if label == 0]
    assert sum("identity_deficit" in s for s in reals) >= 0.8 * len(reals)
    # A swap shows X's inner face on another head: by dlib too its inner face is more X than the rest.
    gap = np.array([s.get("inner_whole_gap", np.nan) for s in second])
    known = np.isfinite(gap)
    assert known[labels == 1].mean() >= 0.8
    fake_gap, real_gap = gap[known & (labels == 1)], gap[known & (labels == 0)]
    assert (fake_gap[:, None] > real_gap[None, :]).mean() > 0.7
    assert any(reason.startswith("second pack (dlib_resnet_v1@") for r in both for reason in r["reasons"])
    assert f"pack2=regions-v1/{DLIB_EMBEDDER_PREFIX}" in two.model_version and "pack2=" not in one.model_version
    assert two.available_features(True) - one.available_features(True) == \
        {SECOND_PACK_PREFIX + name for name in one.available_features(True)}


def test_fitted_fusion_takes_the_second_packs_signals(scored):
    labels, _, two, _, both = scored

    frame = pd.DataFrame([{**_signals(r), "label": label, "group": r["forgery_identity_id"] or r["image_uri"],
                           "vip": r["forgery_identity_id"] is not None} for r, label in zip(both, labels)])
    names = fusion_fit.identity_features(frame)
    assert any(n.startswith(SECOND_PACK_PREFIX) for n in names) and any(not n.startswith(SECOND_PACK_PREFIX)
                                                                         for n in names)
    fusion = fusion_fit.fit_fusion(frame, prior=0.5)
    assert any(f.startswith(SECOND_PACK_PREFIX) for f in fusion.head(True).features)
    # The scorer that computes those signals accepts the fusion; one without the second pack does not.
    ForgeryScorer(gallery=two.gallery, pack=two.pack, detectors=[], fusion=fusion,
                  forgery=two.config, second_pack=two.second.pack)
    with pytest.raises(ValueError, match="pack2:"):
        ForgeryScorer(gallery=two.gallery, pack=two.pack, detectors=[], fusion=fusion)


def test_second_pack_needs_its_own_gallery(scored, onnx_gallery):
    _, _, two, _, _ = scored
    with pytest.raises(ValidationError):
        ForgeryConfig(second_pack=DLIB_PACK)
    # A gallery enrolled with the first pack's embedder cannot serve the second pack.
    with pytest.raises(ValueError, match="forgery references come from"):
        ForgeryScorer(gallery=two.gallery, pack=two.pack, detectors=[], second_pack=two.second.pack,
                      forgery=ForgeryConfig(second_pack=DLIB_PACK, second_gallery=onnx_gallery,
                                            fusion_model=ONNX_IDENTITY_ONLY))


@pytest.mark.parametrize("name", ["fusion-lr-f7a5c86e", "fusion-lr-6fe30eb5", "fusion-lr-e9dbbc2a",
                                  "fusion-lr-7900bca8", "fusion-lr-7ba1f626"])
def test_shipped_two_pack_fusions_name_their_second_embedder(name):
    """Fitted on the dlib pack with MobileFaceNet as the second pack (6fe30eb5: with both packs'
    region consistency, vip head only; e9dbbc2a: the same plus the SBI detector, at candidate rate 0.3;
    7900bca8: the same with region consistency through its own 20 px gate; 7ba1f626: through 14 px)."""
    import json

    from operators.forgery.fusion import ARTEFACTS_DIR, load_fusion

    manifest = json.loads((ARTEFACTS_DIR / name / "manifest.json").read_text())
    embedder = manifest["ships_with"]["second_pack_embedder_id"]
    assert f"pack2=regions-v1/{embedder}/" in manifest["scorer"]["signals_model"]
    assert manifest["scorer"]["model_pack"].startswith("dlib")
    fusion = load_fusion(str(ARTEFACTS_DIR / name))
    assert {f for f in fusion.head(True).features if f.startswith(SECOND_PACK_PREFIX)}
    for version in manifest["ships_with"].get("region_consistency", []):
        assert f"consistency={version}" in manifest["scorer"]["signals_model"]
        assert (ARTEFACTS_DIR / version / "manifest.json").is_file()
    # Only the pointer for their own pair of embedders may name them: a scorer without the second
    # pack never loads one.
    pointers = {p.name for p in ARTEFACTS_DIR.glob("DEFAULT*") if p.read_text().strip() == name}
    assert pointers <= {f"DEFAULT.dlib+{embedder}"}
    if "consistency_gate" in manifest["ships_with"]:
        assert f"consistency-gate={manifest['ships_with']['consistency_gate']}" in manifest["scorer"]["signals_model"]


def test_a_consistency_uri_is_for_the_first_pack_and_the_second_keeps_its_shipped_heads(scored, dlib_gallery):
    from operators.forgery.region_consistency import shipped_for

    _, one, two, _, _ = scored
    own_heads = shipped_for(one.pack.embedder_id)
    scorer = ForgeryScorer(gallery=one.gallery, pack=one.pack, detectors=[], second_pack=two.second.pack,
                           forgery=ForgeryConfig(second_pack=DLIB_PACK, second_gallery=dlib_gallery,
                                                 region_consistency=own_heads, fusion_model=ONNX_IDENTITY_ONLY))
    assert scorer.identity.consistency.embedder_id == one.pack.embedder_id
    assert scorer.second.consistency.embedder_id == two.second.pack.embedder_id
    with pytest.raises(ValueError, match="trained on"):
        ForgeryScorer(gallery=one.gallery, pack=one.pack, detectors=[],
                      forgery=ForgeryConfig(region_consistency=shipped_for(two.second.pack.embedder_id),
                                            fusion_model=ONNX_IDENTITY_ONLY))


def test_the_shipped_fusion_follows_the_second_pack(dlib_gallery, onnx_gallery):
    """With MobileFaceNet as the second pack of the dlib pack, "shipped" is the fusion fitted with
    both (DEFAULT.dlib+<embedder>: fusion-lr@7ba1f626), with its rate, gate and detector; a pair
    no shipped fusion was fitted with is refused by name, not scored by a fusion that ignores it."""
    from operators.forgery.fusion import ARTEFACTS_DIR, shipped_fusion_dir

    scorer = ForgeryScorer(gallery_uri=dlib_gallery, model=DLIB_PACK,
                           forgery=ForgeryConfig(second_pack=ONNX_PACK, second_gallery=onnx_gallery))
    embedder = scorer.second.pack.embedder_id
    assert shipped_fusion_dir("dlib", embedder) == ARTEFACTS_DIR / "fusion-lr-7ba1f626"
    assert scorer.fusion.version == "fusion-lr@7ba1f626"
    assert any(f.startswith(SECOND_PACK_PREFIX) for f in scorer.fusion.head(True).features)
    assert scorer.config.weak_match_fpir == 0.3 and scorer.config.consistency_gate == "identity"
    assert [d.name for d in scorer.detectors] == ["sbi"]
    assert f"pack2=regions-v1/{embedder}/" in scorer.model_version
    # Without the second pack the dlib default is unchanged.
    assert ForgeryScorer(gallery_uri=dlib_gallery, model=DLIB_PACK).fusion.version == "fusion-lr@fccced6e"
    with pytest.raises(ValueError, match=f"no shipped fusion was fitted on the onnx pack with {DLIB_EMBEDDER_PREFIX}"):
        ForgeryScorer(gallery_uri=onnx_gallery, model=ONNX_PACK,
                      forgery=ForgeryConfig(second_pack=DLIB_PACK, second_gallery=dlib_gallery))
