"""Identity signal by candidate kind (issue 14 item 4): authentic strangers who are only weak or
inner-face candidates of a VIP get no deficit against that VIP; swaps of an enrolled VIP's inner
face onto strangers' heads keep their inner-vs-outer signals. Real LFW photos, real faces_aligned
crops, the ONNX pack and its gallery of the 14 faces_aligned identities."""
import cv2
import numpy as np
import pyarrow.compute as pc
import pytest

from index.cohort import Cohort, embedder_directory

from operators.decode import ImageDecoder
from operators.forgery.face_swap import swap_face
from operators.forgery.identity_signal import CANDIDATE_SIGNALS
from operators.forgery.scorer import ForgeryScorer
from tests.support.fusions import ONNX_IDENTITY_ONLY
from operators.matcher import GalleryMatcher
from tests.support.shared_data import DATA, ENROLLED_PER_IDENTITY, FACES_ALIGNED
from vipwatch.enrol import embed_images

DEFICITS = {"identity_deficit", "context_deficit", "identity_similarity", "inner_deficit"}


def _signals(row) -> dict:
    return {s["name"]: s["value"] for s in row["forgery_signals"]}


@pytest.fixture(scope="module")
def scorer(onnx_gallery, onnx_analyzer):
    from core.config import ForgeryConfig

    matcher = GalleryMatcher(onnx_gallery)
    return matcher, ForgeryScorer(gallery=matcher.gallery, pack=onnx_analyzer.pack,
                                  forgery=ForgeryConfig(fusion_model=ONNX_IDENTITY_ONLY))


@pytest.fixture(scope="module")
def strangers(scorer, onnx_analyzer):
    """One LFW photo each of 120 people who are none of the 14 VIPs (matched by name)."""
    matcher, forgery = scorer
    vips = {d.name.replace("_", "").lower() for d in FACES_ALIGNED.iterdir()}
    people = [p for p in sorted((DATA / "lfw" / "lfw-deepfunneled").iterdir()) if p.is_dir()
              and p.name.replace("_", "").lower() not in vips]
    uris = [str(sorted(p.iterdir())[0]) for p in people[::40][:120]]
    rows = matcher(embed_images(uris, onnx_analyzer, ImageDecoder()))
    return rows, forgery(rows).to_pylist()


def test_weak_or_inner_candidate_strangers_get_no_deficit(scorer, strangers):
    _, forgery = scorer
    _, rows = strangers
    candidates = [r for r in rows if r["status"] == "ok" and r["identity_id"] is None and r["forgery_identity_id"]]
    assert len(candidates) >= 5, "too few candidate strangers for the check to mean anything"
    read_as_match = []
    for r in candidates:
        signals = _signals(r)
        assert set(CANDIDATE_SIGNALS) <= set(signals) and not DEFICITS & set(signals)
        assert any("candidate of" in reason and "inner-vs-outer" in reason for reason in r["reasons"])
        assert not any("5th percentile" in reason for reason in r["reasons"])
        # What the old logic (deficits against X for any candidate) would have seen.
        whole = np.asarray(r["embedding"], np.float32)
        s = forgery.references.stats[r["forgery_identity_id"]]
        sim = float(forgery.references.nearest("whole", r["forgery_identity_id"], whole)[0])
        read_as_match.append((s["whole_median"] - sim) / s["whole_spread"])
    # They are far from X: read as X's authentic photos they would be 2+ spreads "too unlike X".
    assert np.median(read_as_match) > 2.0


def test_swaps_onto_strangers_keep_inner_vs_outer_signal(scorer, strangers, onnx_aligned_analyzer, tmp_path):
    matcher, forgery = scorer
    stranger_rows, stranger_out = strangers
    heads = [np.frombuffer(raw, np.uint8).reshape(112, 112, 3)
             for raw, status in zip(stranger_rows.column("aligned_face").to_pylist(),
                                    stranger_rows.column("status").to_pylist()) if status == "ok"][:28]
    vips = sorted(d.name for d in FACES_ALIGNED.iterdir())
    rng = np.random.default_rng(3)
    uris, truth = [], []
    for k, head in enumerate(heads):
        vip = vips[k % len(vips)]
        # X's held-out crops (never enrolled) give the inner face.
        source = sorted((FACES_ALIGNED / vip).iterdir())[ENROLLED_PER_IDENTITY + k % 4]
        fake = swap_face(cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB), head,
                         ("poisson", "feather")[k % 2], rng)
        path = tmp_path / f"{vip}__{k}.png"
        cv2.imwrite(str(path), cv2.cvtColor(fake, cv2.COLOR_RGB2BGR))
        uris.append(str(path))
        truth.append(vip)
    out = forgery(matcher(embed_images(uris, onnx_aligned_analyzer, ImageDecoder()))).to_pylist()
    checked = [(r, vip) for r, vip in zip(out, truth) if r["forgery_identity_id"] == vip]
    # Most swaps are checked against the VIP whose inner face they carry.
    assert len(checked) >= len(out) // 2
    for r, _ in checked:
        assert set(CANDIDATE_SIGNALS) <= set(_signals(r))
    swap_z = [_signals(r)["inner_cohort_z"] for r, _ in checked if r["identity_id"] is None]
    stranger_z = [_signals(r)["inner_cohort_z"] for r in stranger_out
                  if r["status"] == "ok" and r["identity_id"] is None and r["forgery_identity_id"]]
    assert len(swap_z) >= 5
    # The swap's inner face IS X's: it sits further above X's impostor cohort than a stranger's
    # chance resemblance does (measured AUC 0.85 on 42 swaps / 26 strangers).
    wins = np.mean([a > b for a in swap_z for b in stranger_z])
    assert wins > 0.65


def test_reference_side_uses_nearest_references_and_cohort(scorer):
    _, forgery = scorer
    refs = forgery.references
    for identity, rows in refs.rows_of.items():
        s = refs.stats[identity]
        # X's own photos resemble X's nearest references more than X's impostor cohort does.
        assert s["whole_median"] > s["whole_cohort_mean"] + s["whole_cohort_spread"]
        assert s["inner_median"] > s["inner_cohort_mean"]
        probe = refs.vectors["whole"][rows[0]]
        others = refs.vectors["whole"][rows[1:]]
        expected = np.sort(others @ probe)[-refs.top_k:].mean()
        # A reference's leave-one-out reading equals the top-k mean over the identity's others.
        assert abs(refs._leave_one_out("whole", rows)[0] - expected) < 1e-5
    assert refs.cohort_size["whole"] >= 100


def test_non_vip_cohort_joins_the_whole_face_impostors(scorer, strangers, onnx_analyzer, tmp_path, monkeypatch):
    matcher, _ = scorer
    rows, _ = strangers
    # The baseline has no non-VIP cohort at all (the repo ships one for this embedder in
    # models/cohorts, which the module's scorer already uses).
    monkeypatch.setenv("VIPWATCH_COHORTS", str(tmp_path / "no-cohorts"))
    without = ForgeryScorer(gallery=matcher.gallery, pack=onnx_analyzer.pack)
    assert without.cohort_version is None
    faces = rows.filter(pc.equal(rows.column("status"), "ok"))
    labels = [f"lfw:{uri.rsplit('/', 2)[-2]}" for uri in faces.column("image_uri").to_pylist()]
    cohort = Cohort.create(np.asarray(faces.column("embedding").to_pylist(), np.float32), labels,
                           onnx_analyzer.pack.embedder_id, "onnx", {"lfw": len(labels)}, "research use")
    cohort.save(str(tmp_path / embedder_directory(onnx_analyzer.pack.embedder_id)))
    monkeypatch.setenv("VIPWATCH_COHORTS", str(tmp_path))
    with_cohort = ForgeryScorer(gallery=matcher.gallery, pack=onnx_analyzer.pack)
    assert f"cohort={cohort.version}" in with_cohort.model_version
    assert with_cohort.references.cohort_size["whole"] == without.references.cohort_size["whole"] + len(labels)
    # Every VIP's whole-face impostor statistics now include the non-VIP faces.
    changed = [with_cohort.references.stats[i]["whole_cohort_mean"] != without.references.stats[i]["whole_cohort_mean"]
               for i in without.references.row_of]
    assert all(changed)


def test_candidate_rate_widens_the_check_and_is_recorded(scorer, strangers):
    """``weak_match_fpir`` sets how many non-matching faces are checked against their nearest VIP:
    the default checks a minority of strangers, 1.0 every one; the rate is part of forgery_model
    because it changes which faces get a VIP verdict."""
    from core.config import ForgeryConfig

    matcher, default = scorer
    rows, scored = strangers
    everyone = ForgeryScorer(gallery=matcher.gallery, pack=default.pack, detectors=[],
                             forgery=ForgeryConfig(weak_match_fpir=1.0, fusion_model=ONNX_IDENTITY_ONLY))
    wide = everyone(rows).to_pylist()
    faces = [k for k, r in enumerate(scored) if r["status"] == "ok" and r["identity_id"] is None]
    checked_default = {k for k in faces if scored[k]["forgery_identity_id"]}
    checked_wide = {k for k in faces if wide[k]["forgery_identity_id"]}
    assert checked_wide == set(faces)
    assert checked_default < checked_wide and len(checked_default) < len(faces) / 2
    assert "/weak0.1/" in default.model_version and "/weak1/" in everyone.model_version
    with pytest.raises(ValueError):
        ForgeryConfig(weak_match_fpir=0.0)


def test_a_fusion_brings_the_candidate_rate_it_was_fitted_at(scorer):
    """Which faces are candidates changes what a fusion's threshold promises: without an explicit
    rate the scorer takes the one in the fusion's signals_model; an explicit rate still wins."""
    from core.config import ForgeryConfig
    from operators.forgery.fusion import FusionModel, Head

    matcher, default = scorer
    head = Head(features=["identity_deficit"], coef=[1.0], intercept=-4.0, threshold=0.5, fill=[0.0])
    fitted_at = FusionModel(heads={"vip": head}, version="fusion-test", metadata={
        "prior": 0.01, "scorer": {"signals_model": "fusion-x;identity=regions-v1/e@1/top3/weak0.3/cohort=c"}})
    taken = ForgeryScorer(gallery=matcher.gallery, pack=default.pack, detectors=[], fusion=fitted_at)
    assert taken.config.weak_match_fpir == 0.3 and "/weak0.3/" in taken.model_version
    assert taken.identity.weak_floor < default.identity.weak_floor
    explicit = ForgeryScorer(gallery=matcher.gallery, pack=default.pack, detectors=[], fusion=fitted_at,
                             forgery=ForgeryConfig(weak_match_fpir=0.1))
    assert "/weak0.1/" in explicit.model_version
    assert ForgeryConfig().weak_match_fpir is None and "/weak0.1/" in default.model_version
