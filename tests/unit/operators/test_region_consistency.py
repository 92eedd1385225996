"""Region consistency (operators/forgery/region_consistency.py): the shipped dlib heads, trained
on LFW people only, read real faces_aligned crops of the 14 VIPs (never trained on) and classical
swaps of them; the scorer adds the signal to every judged face, VIP or not, and names it in
forgery_model."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.config import ForgeryConfig
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.fusion import ARTEFACTS_DIR, FusionModel, Head
from operators.forgery.identity_signal import region_embeddings
from operators.forgery.region_consistency import SIGNAL, resolve, shipped_for
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from operators.packs import load_model_pack
from tests.support.shared_data import DATA, DLIB_PACK, FACES_ALIGNED
from vipwatch.enrol import embed_images


@pytest.fixture(scope="module")
def dlib_pack():
    return load_model_pack(DLIB_PACK)


@pytest.fixture(scope="module")
def heads(dlib_pack):
    return resolve("shipped", dlib_pack.embedder_id)


def _crops(paths):
    import cv2

    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


def test_shipped_heads_match_their_embedder(heads, dlib_pack, tmp_path):
    assert heads is not None and heads.embedder_id == dlib_pack.embedder_id
    assert shipped_for("no_such_embedder@00000000") is None
    assert resolve("off", dlib_pack.embedder_id) is None
    # The VIPs' people were left out of training: the unit tests below read unseen faces.
    trained_on = set(heads.manifest["training_data"]["identities"])
    assert not trained_on & {"Barack_Obama", "Keanu_Reeves", "Halle_Berry"}
    with pytest.raises(ValueError, match="trained on"):
        resolve(shipped_for(dlib_pack.embedder_id), "mobilefacenet_128@85cdeb73")


def test_own_regions_agree_more_than_two_peoples(heads, dlib_pack):
    people = sorted(p for p in FACES_ALIGNED.iterdir() if p.is_dir())
    paths = [image for person in people for image in sorted(person.iterdir())[20:24]]
    owners = np.array([p.parent.name for p in paths])
    inner, outer = region_embeddings(dlib_pack, _crops(paths))
    a, b = heads.mapped(inner, outer)
    cosines = a @ b.T
    other = owners[:, None] != owners[None, :]
    own = np.diag(cosines)
    auc = roc_auc_score(np.r_[np.ones(len(own)), np.zeros(int(other.sum()))], np.r_[own, cosines[other]])
    raw = inner @ outer.T
    raw_auc = roc_auc_score(np.r_[np.ones(len(own)), np.zeros(int(other.sum()))], np.r_[np.diag(raw), raw[other]])
    assert auc > 0.8 and auc > raw_auc + 0.05, (auc, raw_auc)


def test_swaps_read_as_less_consistent(heads, dlib_pack, swap_dir):
    real = sorted((swap_dir / "real").glob("*/*"))
    fake = sorted((swap_dir / "fake").glob("*/*"))
    values = heads.inconsistency(*region_embeddings(dlib_pack, _crops(real + fake)))
    labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    assert roc_auc_score(labels, values) > 0.7


@pytest.fixture(scope="module")
def scored_rows(dlib_gallery, swap_dir, dlib_pack):
    matcher = GalleryMatcher(dlib_gallery)
    uris = sorted(str(p) for p in swap_dir.glob("*/*/*"))
    rows = matcher(embed_images(uris, FaceAnalyzer(DLIB_PACK, aligned=True, pack=dlib_pack), ImageDecoder()))
    # A fusion that does not weigh the signal (the dlib default before it did): the heads change
    # nothing but the signal list.
    ignores = ForgeryConfig(fusion_model=str(ARTEFACTS_DIR / "fusion-lr-a6815dc5"))
    with_it = ForgeryScorer(gallery=matcher.gallery, pack=dlib_pack, detectors=[], forgery=ignores)
    without = ForgeryScorer(gallery=matcher.gallery, pack=dlib_pack, detectors=[],
                            forgery=ignores.model_copy(update={"region_consistency": "off"}))
    return rows, with_it, without


def _signals(row) -> dict:
    return {s["name"]: s["value"] for s in row["forgery_signals"] or []}


def test_scorer_adds_the_signal_to_every_judged_face(scored_rows, heads):
    rows, with_it, without = scored_rows
    on, off = with_it(rows).to_pylist(), without(rows).to_pylist()
    faces = [(a, b) for a, b in zip(on, off) if a["status"] == "ok"]
    assert faces
    for a, b in faces:
        signals = _signals(a)
        judged = signals["quality:inter_ocular_px"] >= 32 and signals["quality:sharpness"] >= 50
        assert (SIGNAL in signals) == judged
        assert {k: v for k, v in signals.items() if k != SIGNAL} == _signals(b)
        # A fusion that does not weigh the signal: same score, and no reason names it.
        assert a["forgery_score"] == b["forgery_score"]
        assert not any("different people" in r for r in a["reasons"])
        assert f"consistency={heads.version}" in a["forgery_model"]
        assert "consistency=" not in b["forgery_model"]


def test_a_fusion_that_weighs_it_scores_and_explains_with_it(scored_rows):
    rows, with_it, _ = scored_rows
    head = dict(features=[SIGNAL], coef=[2.0], intercept=-4.0, threshold=0.5, fill=[0.0])
    fusion = FusionModel(heads={"vip": Head(**head), "generic": Head(**head)}, version="fusion-test",
                         metadata={"prior": 0.01})
    scorer = ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, detectors=[], fusion=fusion)
    out = [r for r in scorer(rows).to_pylist() if r["status"] == "ok"]
    judged = [r for r in out if SIGNAL in _signals(r)]
    assert judged
    for row in judged:
        value = _signals(row)[SIGNAL]
        assert row["forgery_score"] == pytest.approx(1 / (1 + np.exp(-(2.0 * value - 4.0))), rel=1e-4)
        assert (row["verdict"] == "suspected_forgery") == (value >= 2.0)
        assert any("different people" in why for why in row["reasons"]) == (value >= 3.0)


def test_a_fusion_that_weighs_it_is_refused_without_the_heads(scored_rows):
    _, with_it, _ = scored_rows
    fusion = FusionModel(heads={"vip": Head(features=[SIGNAL], coef=[1.0], intercept=0.0, threshold=0.5, fill=[0.0])},
                         version="fusion-test", metadata={"prior": 0.01})
    with pytest.raises(ValueError, match="consistency:inner_outer"):
        ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, detectors=[], fusion=fusion,
                      forgery=ForgeryConfig(region_consistency="off"))


def test_a_stranger_under_a_vip_only_fusion_is_unscored_and_its_reason_says_so(scored_rows, dlib_pack):
    """Both shipped defaults have a vip head only. A stranger's face still gets its generic
    signals computed; its reason must not claim there were none."""
    _, with_it, _ = scored_rows
    head = Head(features=[SIGNAL], coef=[2.0], intercept=-4.0, threshold=0.5, fill=[0.0])
    vip_only = ForgeryScorer(gallery=with_it.gallery, pack=dlib_pack, detectors=[],
                             fusion=FusionModel(heads={"vip": head}, version="fusion-test", metadata={"prior": 0.01}))
    photos = sorted(str(p) for p in (DATA / "photos/facenet_pytorch/test_images").glob("*/1.jpg"))
    rows = GalleryMatcher(gallery=with_it.gallery)(
        embed_images(photos, FaceAnalyzer(DLIB_PACK, aligned=True, pack=dlib_pack), ImageDecoder()))
    strangers = [r for r in vip_only(rows).to_pylist() if r["status"] == "ok" and r["forgery_identity_id"] is None]
    assert any(SIGNAL in _signals(r) for r in strangers), "no stranger carries a generic signal: test is vacuous"
    for row in strangers:
        assert row["verdict"] == "unverified" and row["forgery_score"] is None
        says_vip_only = any("fusion-test judges VIP candidates only" in why for why in row["reasons"])
        assert says_vip_only == (SIGNAL in _signals(row))
        assert any("no generic signal" in why for why in row["reasons"]) == (not says_vip_only)


def _blurred_rows(gallery, dlib_pack, swap_dir, tmp_path):
    import cv2

    for k, path in enumerate(sorted((swap_dir / "real").glob("*/*"))[:3]):
        cv2.imwrite(str(tmp_path / f"blurred{k}.png"), cv2.GaussianBlur(cv2.imread(str(path)), (0, 0), 4))
    return GalleryMatcher(gallery=gallery)(embed_images(sorted(str(p) for p in tmp_path.glob("*.png")),
                                                        FaceAnalyzer(DLIB_PACK, aligned=True, pack=dlib_pack),
                                                        ImageDecoder()))


def test_gated_faces_say_why_only_when_the_signal_counts(scored_rows, dlib_pack, swap_dir, tmp_path):
    _, with_it, _ = scored_rows
    rows = _blurred_rows(with_it.gallery, dlib_pack, swap_dir, tmp_path)
    head = dict(features=[SIGNAL], coef=[2.0], intercept=-4.0, threshold=0.5, fill=[0.0])
    weighs = ForgeryScorer(gallery=with_it.gallery, pack=dlib_pack, detectors=[],
                           fusion=FusionModel(heads={"vip": Head(**head)}, version="fusion-test",
                                              metadata={"prior": 0.01}))
    blurred = [r for r in with_it(rows).to_pylist() if r["status"] == "ok"]
    explained = [r for r in weighs(rows).to_pylist() if r["status"] == "ok"]
    assert blurred and all(_signals(r)["quality:sharpness"] < 50 for r in blurred)
    for default_row, weighed_row in zip(blurred, explained):
        assert SIGNAL not in _signals(default_row) and SIGNAL not in _signals(weighed_row)
        assert not any(r.startswith("face too blurred") for r in default_row["reasons"])
        assert any(r.startswith("face too blurred") and "region-consistency" in r for r in weighed_row["reasons"])


def test_the_identity_gate_judges_blurred_faces_and_a_fusion_fitted_so_brings_it(scored_rows, dlib_pack, swap_dir,
                                                                                  tmp_path):
    """consistency_gate "identity": blurred faces the artefact gate withholds still get region
    consistency, their reasons no longer say it is withheld, forgery_model names the gate, and a
    fusion whose signals_model names it brings it (floor included); an older fusion keeps the
    artefact gate. Faces under the floor are withheld, and say so."""
    _, with_it, _ = scored_rows
    rows = _blurred_rows(with_it.gallery, dlib_pack, swap_dir, tmp_path)
    head = Head(features=[SIGNAL], coef=[2.0], intercept=-4.0, threshold=0.5, fill=[0.0])

    def fusion(signals_model: str) -> FusionModel:
        return FusionModel(heads={"vip": head}, version="fusion-test",
                           metadata={"prior": 0.01, "scorer": {"signals_model": signals_model}})

    legacy = "fusion-x;consistency=region-consistency-dlib-v1"
    gated = ForgeryScorer(gallery=with_it.gallery, pack=dlib_pack, detectors=[], fusion=fusion(legacy))
    own = ForgeryScorer(gallery=with_it.gallery, pack=dlib_pack, detectors=[],
                        fusion=fusion(legacy + ";consistency-gate=identity@20px"))
    assert gated.config.consistency_gate == "artefact" and "consistency-gate" not in gated.model_version
    assert own.config.consistency_gate == "identity" and own.config.consistency_min_inter_ocular_px == 20
    assert own.model_version.endswith(";consistency-gate=identity@20px")
    explicit = ForgeryScorer(gallery=with_it.gallery, pack=dlib_pack, detectors=[], fusion=fusion(legacy),
                             forgery=ForgeryConfig(consistency_gate="identity"))
    assert explicit.model_version == own.model_version
    before = [r for r in gated(rows).to_pylist() if r["status"] == "ok"]
    after = [r for r in own(rows).to_pylist() if r["status"] == "ok"]
    assert before and len(before) == len(after)
    for old, new in zip(before, after):
        assert _signals(new)["quality:sharpness"] < 50 and _signals(new)["quality:inter_ocular_px"] >= 20
        assert SIGNAL not in _signals(old) and SIGNAL in _signals(new)
        assert any(r.startswith("face too blurred") for r in old["reasons"])
        assert not any(r.startswith("face too") for r in new["reasons"])
        if new["forgery_identity_id"] is not None:
            value = _signals(new)[SIGNAL]
            assert new["forgery_score"] == pytest.approx(1 / (1 + np.exp(-(2.0 * value - 4.0))), rel=1e-4)
    # A floor above these faces' eye distance withholds the signal again, and says why.
    iod = min(_signals(r)["quality:inter_ocular_px"] for r in after)
    strict = ForgeryScorer(gallery=with_it.gallery, pack=dlib_pack, detectors=[],
                           fusion=fusion(legacy + f";consistency-gate=identity@{iod + 1:.0f}px"))
    for row in (r for r in strict(rows).to_pylist() if r["status"] == "ok"):
        assert SIGNAL not in _signals(row)
        assert any(r.startswith("face too small to judge") and "(region-consistency signals need" in r
                   for r in row["reasons"])
    # With an artefact detector the artefact gate still speaks, for the detector alone.
    from operators.forgery.detectors import load_detectors

    with_sbi = ForgeryScorer(gallery=with_it.gallery, pack=dlib_pack, detectors=load_detectors(["sbi:sbi-mfn-v6"]),
                             fusion=fusion(legacy + ";consistency-gate=identity@20px"))
    for row in (r for r in with_sbi(rows).to_pylist() if r["status"] == "ok"):
        assert "artefact:sbi" not in _signals(row) and SIGNAL in _signals(row)
        assert any(r.startswith("face too blurred") and "(variance of the Laplacian; artefact signals need" in r
                   for r in row["reasons"])


def _pinned_fusion(version: str) -> FusionModel:
    head = Head(features=[SIGNAL], coef=[1.0], intercept=-4.0, threshold=0.5, fill=[0.0])
    return FusionModel(heads={"vip": head}, version="fusion-test",
                       metadata={"prior": 0.01, "scorer": {"signals_model": f"fusion-x;consistency={version}"}})


def test_a_fusion_keeps_the_heads_version_it_was_fitted_on(scored_rows, heads, tmp_path):
    """A fusion reads the signal on the scale of the heads it was fitted with: shipped heads are
    taken at the fusion's version, and other heads are refused rather than silently misread."""
    import json
    import shutil

    _, with_it, _ = scored_rows
    pinned = ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, detectors=[],
                           fusion=_pinned_fusion(heads.version))
    assert f"consistency={heads.version}" in pinned.model_version
    with pytest.raises(ValueError, match="fitted on region-consistency heads region-consistency-dlib-v0"):
        ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, detectors=[],
                      fusion=_pinned_fusion("region-consistency-dlib-v0"))
    other = tmp_path / "other-heads"
    shutil.copytree(shipped_for(heads.embedder_id), other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "version": "region-consistency-dlib-test"}))
    with pytest.raises(ValueError, match=f"fitted on region-consistency heads {heads.version}"):
        ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, detectors=[], fusion=_pinned_fusion(heads.version),
                      forgery=ForgeryConfig(region_consistency=str(other)))
    # A fusion that does not weigh the signal pins nothing.
    unpinned = ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, detectors=[],
                             forgery=ForgeryConfig(region_consistency=str(other),
                                                   fusion_model=str(ARTEFACTS_DIR / "fusion-lr-a6815dc5")))
    assert "consistency=region-consistency-dlib-test" in unpinned.model_version


def test_the_dlib_default_weighs_it_with_the_heads_rate_and_detector_it_was_fitted_with(scored_rows, heads):
    """DEFAULT.dlib (fusion-lr@fccced6e) weighs region consistency and SBI in its vip head at
    candidate rate 0.5: the default scorer takes all three from it, and refuses the heads off."""
    from operators.forgery.fusion import shipped_fusion_dir

    rows, with_it, _ = scored_rows
    default = ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack)
    assert shipped_fusion_dir("dlib").name == "fusion-lr-fccced6e"
    assert {SIGNAL, "artefact:sbi"} <= set(default.fusion.head(True).features) and default.fusion.head(False) is None
    assert default.config.weak_match_fpir == 0.5 and "/weak0.5/" in default.model_version
    assert f"consistency={heads.version}" in default.model_version and "sbi=sbi-mfn-v6" in default.model_version
    out = [r for r in default(rows).to_pylist() if r["status"] == "ok"]
    # Only faces with a VIP candidate get a verdict; others stay unverified.
    assert all((r["verdict"] == "unverified") == (r["forgery_identity_id"] is None) for r in out)
    with pytest.raises(ValueError, match="consistency:inner_outer"):
        ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, forgery=ForgeryConfig(region_consistency="off"))


def test_an_sbi_fusion_brings_its_detector(scored_rows):
    """fusion-lr@3f7d1a9d was fitted with sbi:sbi-mfn-v6: naming the fusion is enough, and the
    same recipe without SBI (c1eea7a0) brings none."""
    rows, with_it, _ = scored_rows
    fusion = str(ARTEFACTS_DIR / "fusion-lr-3f7d1a9d")
    scorer = ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack, forgery=ForgeryConfig(fusion_model=fusion))
    assert [d.name for d in scorer.detectors] == ["sbi"] and "sbi=sbi-mfn-v6" in scorer.model_version
    assert scorer.config.weak_match_fpir == 0.3
    with pytest.raises(ValueError, match="artefact:sbi"):
        ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack,
                      forgery=ForgeryConfig(fusion_model=fusion, detectors=[]))
    without = ForgeryScorer(gallery=with_it.gallery, pack=with_it.pack,
                            forgery=ForgeryConfig(fusion_model=str(ARTEFACTS_DIR / "fusion-lr-c1eea7a0")))
    assert without.detectors == [] and without.config.weak_match_fpir == 0.3
