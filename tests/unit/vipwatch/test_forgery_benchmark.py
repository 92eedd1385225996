"""The forgery benchmark: its manipulation families on real photos, its identity-disjoint
splits, leave-one-family-out, group-bootstrap intervals, the prior shift of the fitted fusion,
and the command end to end at tiny sizes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import SHARED_DIR, ForgeryConfig
from vipwatch.evaluation import face_edits, forgery_benchmark, fusion_fit
from vipwatch.evaluation.forgery_corpus import (FaceLocator, assign_sides, build_corpus, find_sources, lfw_name,
                                                read_rgb)
from vipwatch.evaluation.forgery_families import FAMILIES, make_fake
from vipwatch.evaluation.group_bootstrap import bootstrap

LFW = SHARED_DIR / "data" / "lfw" / "lfw-deepfunneled"
ALIGNED = SHARED_DIR / "data" / "faces_aligned"


@pytest.fixture(scope="module")
def locate(onnx_analyzer):
    return FaceLocator(onnx_analyzer.pack)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_changes_the_face_and_nothing_outside_its_mask(family, locate):
    rng = np.random.default_rng(3)
    vip_photo = locate(LFW / "Keanu_Reeves" / "Keanu_Reeves_0001.jpg")
    donor = locate(LFW / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    crop = read_rgb(ALIGNED / "keanu_reeves" / "040.png")
    for _ in range(4):  # several draws: every mask / colour / blender the family picks
        photo = vip_photo if family == "reenact" else donor
        edit = make_fake(family, rng, crop=crop, photo=photo)
        diff = np.abs(edit.rgb.astype(np.int16) - photo.rgb.astype(np.int16)).max(axis=2) > 0
        x0, y0, x1, y1 = photo.bbox
        w, h = x1 - x0, y1 - y0
        face = np.zeros(diff.shape, bool)
        face[int(y0 + 0.2 * h):int(y1 - 0.1 * h), int(x0 + 0.2 * w):int(x1 - 0.2 * w)] = True
        # Pixels change in the centre of the face ...
        assert diff[face].mean() > 0.3, (family, edit.recipe, diff[face].mean())
        # ... and nowhere outside the region the family says it may change.
        assert not (diff & ~edit.changed).any(), (family, edit.recipe)
        # That region is the face, not the photo: well inside a box 1.6x the detection.
        grown = np.zeros(diff.shape, bool)
        grown[max(0, int(y0 - 0.5 * h)):int(y1 + 0.3 * h), max(0, int(x0 - 0.3 * w)):int(x1 + 0.3 * w)] = True
        assert not (edit.changed & ~grown).any()
        assert edit.changed.mean() < 0.5


def test_laundering_rescales_and_recompresses_without_label():
    rgb = read_rgb(LFW / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    rng = np.random.default_rng(0)
    seen = {(m["scale"], m["up"], m["jpeg_quality"]) for m in (face_edits.launder(rgb, rng)[1] for _ in range(60))}
    assert {s for s, _, _ in seen} == set(face_edits.SCALES)
    assert {q for _, _, q in seen} == set(face_edits.JPEG_QUALITIES)
    assert any(up for _, up, _ in seen) and any(s < 1 and not up for s, up, _ in seen)


def test_assign_sides_keeps_groups_whole_and_balances_weight():
    weights = {f"g{k}": float(k % 5 + 1) for k in range(40)}
    sides = assign_sides(weights, seed=1)
    assert set(sides) == set(weights) and set(sides.values()) == {"A", "B"}
    load = {s: sum(w for g, w in weights.items() if sides[g] == s) for s in "AB"}
    assert abs(load["A"] - load["B"]) <= max(weights.values())
    assert assign_sides(weights, seed=1) == sides and assign_sides(weights, seed=2) != sides


@pytest.fixture(scope="module")
def tiny_corpus(onnx_analyzer, tmp_path_factory):
    root, rows = build_corpus(tmp_path_factory.mktemp("corpus"), onnx_analyzer.pack, per_family=10,
                              authentic_lfw=16, seed=5, max_other_photos=3)
    return root, pd.DataFrame(rows)


def test_corpus_split_never_shares_identity_or_source_across_sides(tiny_corpus):
    _, rows = tiny_corpus
    assert set(rows["family"]) == set(FAMILIES) | {"authentic"}
    side_of = {}
    for _, row in rows.iterrows():
        for group in row["groups"].split("|"):
            assert side_of.setdefault(group, row["side"]) == row["side"], group
    sources = {side: {s for v in rows.loc[rows["side"] == side, "sources"] for s in v.split("|")} for side in "AB"}
    assert sources["A"] and sources["B"] and not sources["A"] & sources["B"]
    # No enrolled (gallery) crop is ever a swap source.
    enrolled = {str(p) for x in ALIGNED.iterdir() for p in sorted(x.glob("*.png"))[:10]}
    assert not enrolled & (sources["A"] | sources["B"])
    # A donor head is never also an authentic probe.
    fakes = rows[rows["label"].astype(int) == 1]
    donors = {g.split("|")[1] for g in fakes["groups"] if "|" in g}
    authentic_people = set(rows.loc[rows["label"].astype(int) == 0, "identity"])
    assert donors and not donors & authentic_people
    # Swaps target VIPs: X's crops, X on the fake's identity.
    vips = {p.name for p in ALIGNED.iterdir()}
    assert set(fakes["identity"]) <= vips


def test_corpus_is_cached_and_images_decode(tiny_corpus, onnx_analyzer, tmp_path_factory):
    root, rows = tiny_corpus
    again_root, again = build_corpus(root.parent, onnx_analyzer.pack, per_family=10, authentic_lfw=16, seed=5,
                                     max_other_photos=3)
    assert again_root == root and len(again) == len(rows)
    fake = rows[rows["label"].astype(int) == 1].iloc[0]
    assert read_rgb(fake["uri"]).ndim == 3
    assert json.loads(fake["laundering"])["jpeg_quality"] in face_edits.JPEG_QUALITIES


def test_lfw_names_of_vips_exist():
    sources = find_sources()
    assert lfw_name("jennifer_aniston") == "Jennifer_Aniston"
    assert len(sources.vip_photos["jennifer_aniston"]) >= 10 and sources.vip_photos["barack_obama"]
    assert not any(name.startswith("lfw:Jennifer_Aniston") for name in sources.lfw_people)


def _frame(rows: pd.DataFrame) -> pd.DataFrame:
    frame = rows.copy()
    frame["label"] = frame["label"].astype(int)
    frame["group"] = frame["identity"]
    return frame


@pytest.mark.parametrize("family", FAMILIES)
def test_leave_one_family_out_holds_the_family_and_the_side_out(tiny_corpus, family):
    frame = _frame(tiny_corpus[1])
    for side in "AB":
        fit, evaluate = forgery_benchmark.lofo_split(frame, family, side)
        assert fit.any() and evaluate.any() and not (fit & evaluate).any()
        assert family not in set(frame.loc[fit, "family"])
        assert set(frame.loc[evaluate, "family"]) <= {family, "authentic"}
        assert set(frame.loc[fit, "side"]) == {"AB".replace(side, "")} and set(frame.loc[evaluate, "side"]) == {side}
        fit_groups = {g for v in frame.loc[fit, "groups"] for g in v.split("|")}
        eval_groups = {g for v in frame.loc[evaluate, "groups"] for g in v.split("|")}
        assert not fit_groups & eval_groups


def test_bootstrap_intervals_contain_the_estimate_and_narrow_with_more_groups():
    rng = np.random.default_rng(0)

    def draw(groups_per_class):
        labels = np.repeat([0, 1], groups_per_class * 5)
        groups = np.concatenate([np.repeat(np.arange(groups_per_class), 5), 1000 + np.repeat(np.arange(groups_per_class), 5)])
        group_shift = rng.normal(0, 0.5, 2000)[groups % 2000]
        scores = labels * 1.0 + group_shift + rng.normal(0, 1, len(labels))
        probabilities = 1 / (1 + np.exp(-scores))
        return bootstrap(labels, scores, probabilities, groups, prior=None, resamples=300)

    small, large = draw(8), draw(80)
    for result in (small, large):
        for name in ("auc", "tpr_at_fpr_1pct", "ece", "ece_even"):
            cell = result[name]
            assert cell["low"] <= cell["value"] <= cell["high"], (name, cell)
    assert large["auc"]["high"] - large["auc"]["low"] < small["auc"]["high"] - small["auc"]["low"]
    assert small["counts"] == {"forged": 40, "authentic": 40, "forged_groups": 8, "authentic_groups": 8}


def test_auc_ceiling_is_what_perfect_scores_on_judged_faces_would_reach():
    from vipwatch.evaluation.forgery_benchmark import NO_ALARM, auc_ceiling

    # 4 forgeries (one unjudged), 4 authentic faces (two unjudged).
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    judged = np.array([1, 1, 1, 0, 1, 1, 0, 0], bool)
    alarm = np.where(judged, [0.1, 0.2, 0.3, 0.0, 0.9, 0.8, 0.0, 0.0], NO_ALARM)
    # Judged forgeries above everything (3 x 4 pairs); the unjudged one ties with the two
    # unjudged authentic faces and loses to the two judged ones: (12 + 2 x 0.5) / 16.
    assert auc_ceiling(labels, alarm, judged) == pytest.approx(13 / 16)
    assert auc_ceiling(labels, alarm, np.ones(8, bool)) == 1.0
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels, alarm) <= auc_ceiling(labels, alarm, judged)


def test_auc_by_size_measures_each_band_on_its_own_faces():
    # Large faces (>= 32 px) are separated perfectly, faces under 20 px the wrong way round, and
    # the 20-32 px band has no forgery: the pooled AUC would hide all three.
    rng = np.random.default_rng(3)
    iod = np.r_[rng.uniform(40, 80, 20), rng.uniform(40, 80, 20), rng.uniform(8, 18, 10), rng.uniform(8, 18, 10),
                rng.uniform(22, 30, 6)]
    labels = np.r_[np.ones(20), np.zeros(20), np.ones(10), np.zeros(10), np.zeros(6)].astype(int)
    alarm = np.r_[rng.uniform(0.6, 1, 20), rng.uniform(0, 0.4, 20), rng.uniform(0, 0.3, 10), rng.uniform(0.5, 0.9, 10),
                  rng.uniform(0, 1, 6)]
    frame = pd.DataFrame({"label": labels, "inter_ocular_px": iod, "group": [f"g{k % 12}" for k in range(len(iod))]})
    bands = forgery_benchmark.auc_by_size(frame, alarm, alarm, 0.01, 50)
    by_band = {b["inter_ocular_px"]: b for b in bands}
    assert list(by_band) == ["0-20", "20-32", "32+", "20+"]
    assert by_band["20+"] == {**by_band["32+"], "inter_ocular_px": "20+", "authentic": 26,
                              "auc": by_band["20+"]["auc"]} and by_band["20+"]["auc"]["value"] == 1.0
    assert (by_band["32+"]["forged"], by_band["32+"]["authentic"]) == (20, 20)
    assert by_band["32+"]["auc"]["value"] == 1.0
    assert by_band["0-20"]["auc"]["value"] == 0.0 and by_band["0-20"]["forged"] == 10
    assert by_band["20-32"]["forged"] == 0 and math.isnan(by_band["20-32"]["auc"]["value"])
    section = {"families": {"swap": {"auc_by_size": bands}}}
    table = forgery_benchmark.markdown(section, "t")
    assert "| swap | 0.000 [0.00, 0.00] (10 v 10) | - (0 v 6) | 1.000 [1.00, 1.00] (20 v 20) | 1.000 [1.00, 1.00] (20 v 26) |" in table


def test_prior_shifts_the_fused_probability_by_the_log_prior_odds():
    rng = np.random.default_rng(1)
    n = 400
    labels = np.repeat([0, 1], n // 2)
    frame = pd.DataFrame({"label": labels, "vip": True,
                          "identity_deficit": rng.normal(labels * 2.0, 1.0),
                          "inner_whole_gap": rng.normal(labels * 1.0, 1.0),
                          "context_deficit": rng.normal(0, 1.0, n),
                          "artefact:x": 1 / (1 + np.exp(-rng.normal(labels * 0.5, 1.0)))})
    even = fusion_fit.fit_fusion(frame, prior=0.5, target_fpr=0.01)
    rare = fusion_fit.fit_fusion(frame, prior=0.01, target_fpr=0.01)
    p_even, _ = fusion_fit.predict(even, frame)
    p_rare, _ = fusion_fit.predict(rare, frame)
    shift = np.log(p_rare / (1 - p_rare)) - np.log(p_even / (1 - p_even))
    assert np.allclose(shift, math.log(0.01 / 0.99), atol=1e-3)
    # Balanced fitting: at prior 0.5 the mean probability of a balanced set sits near one half.
    assert 0.4 < p_even.mean() < 0.6 and p_rare[labels == 0].mean() < 0.02 < p_even[labels == 0].mean()
    # The threshold promise: at most target_fpr of the fitting authentic faces reach it.
    head = rare.head(True)
    assert (p_rare[labels == 0] >= head.threshold).mean() <= 0.01
    assert rare.metadata["prior"] == 0.01 and set(head.features) == {"identity_deficit", "inner_whole_gap",
                                                                     "context_deficit", "artefact:x"}
    # The scorer's row-wise path gives the same numbers, and a missing signal takes its fill value.
    rows = frame[head.features].to_dict("records")
    assert np.allclose(head.predict(rows), p_rare, atol=1e-6)
    assert np.isfinite(head.predict([{k: v for k, v in rows[0].items() if k != "context_deficit"}])).all()


def test_command_end_to_end_at_tiny_sizes(tmp_path, capsys):
    from jobs import forgery_benchmark as job

    out = tmp_path / "out"
    summary = job.main(["--per-family", "8", "--authentic-lfw", "12", "--max-other-photos", "2", "--bootstrap", "20",
                        "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--write-fusion",
                        str(tmp_path / "fusion"), "--unseen-people", "3"])
    printed = capsys.readouterr().out.strip().splitlines()
    assert json.loads(printed[-1]) == json.loads(json.dumps(summary))
    assert any(line.startswith("| swap |") for line in printed)
    report = json.loads((out / "report.json").read_text())
    for section in ("configured", "leave_one_family_out", "fitted"):
        assert set(FAMILIES) <= set(report[section]["families"])
    counts = report["leave_one_family_out"]["families"]["swap"]["counts"]
    assert counts["forged"] >= 6 and counts["authentic"] > 10
    for cell in report["leave_one_family_out"]["families"].values():
        if isinstance(cell, dict) and "auc" in cell:
            assert cell["auc"]["value"] <= cell["auc_ceiling"] + 1e-9
            assert sum(b["forged"] for b in cell["auc_by_size"][:3]) == cell["counts"]["forged"]
    from operators.forgery.fusion import FusionModel

    fusion = FusionModel.load(summary["fusion_artefact"])
    assert fusion.version == summary["fitted_fusion"] and fusion.metadata["prior"] == 0.01
    unseen = report["unseen_authentic"]
    assert unseen["photos"] >= 3 and unseen["faces"] >= 3 and len(unseen["fusions"]) == 2
    assert all(r["faces"] == unseen["faces"] and 1 <= r["groups"] <= 3 for r in unseen["fusions"])
    manifest = json.loads((Path(summary["fusion_artefact"]) / "manifest.json").read_text())
    assert manifest["authentic_false_alarms_unseen_by_detectors"]["faces"] == unseen["faces"]
    assert (tmp_path / "fusion" / "DEFAULT").read_text().strip() == Path(summary["fusion_artefact"]).name
    faces = pd.read_csv(out / "faces.csv")
    assert set(faces["family"]) == set(FAMILIES) | {"authentic"} and faces["inter_ocular_px"].gt(0).all()


def test_fitted_fusion_applied_by_the_benchmark_equals_the_scorer(tiny_corpus, onnx_analyzer, onnx_gallery):
    """A FusionModel: the scorer's forgery_score / verdict on real corpus photos equal
    fusion_fit.apply on the signals the scorer wrote."""
    from operators.forgery.scorer import ForgeryScorer
    from operators.matcher import GalleryMatcher
    from vipwatch.evaluation.forgery_scoring import score_corpus

    _, rows = tiny_corpus
    vips = {p.name for p in ALIGNED.iterdir()}
    authentic_vips = rows[(rows["family"] == "authentic") & rows["identity"].isin(vips)]
    labels = pd.concat([rows[rows["family"] != "authentic"].groupby("family").head(3), authentic_vips.head(8),
                        rows[rows["family"] == "authentic"].head(4)]).to_dict("records")
    matcher = GalleryMatcher(onnx_gallery)
    plain = ForgeryScorer(gallery=matcher.gallery, forgery=ForgeryConfig(fusion_model=None), pack=onnx_analyzer.pack)
    frame = score_corpus(labels, onnx_analyzer, matcher, plain)
    frame["label"] = frame["label"].astype(int)
    fusion = fusion_fit.fit_fusion(frame, prior=0.01, target_fpr=0.2)
    scorer = ForgeryScorer(gallery=matcher.gallery, forgery=ForgeryConfig(), pack=onnx_analyzer.pack, fusion=fusion)
    again = score_corpus(labels, onnx_analyzer, matcher, scorer)
    scores, flagged, judged = fusion_fit.apply(fusion, frame, plain.config)
    assert frame["vip"].any() and judged.any()
    assert np.allclose(scores, again["forgery_score"], atol=1e-5, equal_nan=True)
    # Signals come back as float32 (forgery_signals): a face whose score sits on its threshold
    # (thresholds are set at a fitting face's score) may fall either side; all others agree.
    _, thresholds = fusion_fit.predict(fusion, frame)
    clear = ~(np.abs(scores - thresholds) < 1e-4)
    assert (~clear).sum() <= 2
    assert (flagged == (again["verdict"] == "suspected_forgery"))[clear].all()
    assert (judged == (again["verdict"] != "unverified")).all()
    # And the hand-made ranking the faces were first scored with gives back that run's output.
    scores, flagged, _ = fusion_fit.apply(plain.fusion, frame, plain.config)
    assert np.allclose(scores, frame["forgery_score"], atol=1e-5, equal_nan=True)
    assert (flagged == (frame["verdict"] == "suspected_forgery")).all()


def test_shipped_fusion_is_the_default_loads_and_matches_its_manifest(onnx_gallery, onnx_analyzer, tmp_path):
    import hashlib
    import shutil

    from operators.forgery import fusion as fusion_module
    from operators.forgery.scorer import ForgeryScorer
    from operators.matcher import GalleryMatcher

    assert ForgeryConfig().fusion_model == fusion_module.SHIPPED
    directory = fusion_module.shipped_fusion_dir()
    assert directory.parent == Path(fusion_module.__file__).resolve().parent / "artefacts"
    manifest = json.loads((directory / "manifest.json").read_text())
    raw = (directory / "fusion.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == manifest["fusion_sha256"]
    shipped = fusion_module.load_fusion(fusion_module.SHIPPED)
    assert shipped.calibrated and shipped.version == manifest["version"]
    assert directory.name == shipped.version.replace("@", "-")
    # Stated prior, what it saw and under which terms, and figures on the side it did not see.
    assert 0 < manifest["prior"] < 0.5 and manifest["prior"] == shipped.metadata["prior"]
    assert {"faces_aligned", "lfw", "ffpp"} <= set(manifest["data"]["terms"])
    assert manifest["calibration_side"] in ("A", "B")
    assert all(m["counts"]["forged"] > 0 for m in manifest["metrics_on_other_side"].values())
    assert manifest["authentic_false_alarm_rate_other_side"] <= 0.005
    # The default scorer computes every signal the shipped heads use, and names the fusion.
    matcher = GalleryMatcher(onnx_gallery)
    scorer = ForgeryScorer(gallery=matcher.gallery, forgery=ForgeryConfig(), pack=onnx_analyzer.pack)
    assert scorer.model_version.startswith(shipped.version + ";")
    # It brings what it was fitted with: SBI v6, the candidate rate 0.3 and region consistency
    # through its own 14 px gate (docs/forgery.md "Region consistency on small faces").
    assert [d.version for d in scorer.detectors] == ["sbi-mfn-v6"] and scorer.config.weak_match_fpir == 0.3
    assert scorer.config.consistency_gate == "identity" and scorer.config.consistency_min_inter_ocular_px == 14
    assert scorer.model_version.endswith(";consistency-gate=identity@14px")
    assert {"artefact:sbi", "consistency:inner_outer"} <= set(shipped.head(True).features)
    # A tampered copy is refused.
    copy = tmp_path / directory.name
    shutil.copytree(directory, copy)
    data = json.loads(raw)
    data["heads"]["vip"]["intercept"] += 1.0
    (copy / "fusion.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="sha256"):
        fusion_module.FusionModel.load(str(copy))


def test_fit_keeps_known_directions_and_marks_missing_signals():
    """A deficit that happens to fall with forgery in the fitting rows gets weight 0, not a
    negative one; signals missing together (a weak candidate's deficits) share one indicator."""
    rng = np.random.default_rng(4)
    n = 600
    labels = rng.integers(0, 2, n)
    deficit = rng.normal(-0.8 * labels, 1.0)              # falls with forgery here: must not be learnt
    gap = rng.normal(1.5 * labels, 1.0)
    weak = rng.random(n) < 0.4                              # weak candidates: no deficits at all
    frame = pd.DataFrame({"label": labels, "vip": True, "group": np.arange(n) // 3,
                          "identity_deficit": np.where(weak, np.nan, deficit),
                          "context_deficit": np.where(weak, np.nan, rng.normal(0, 1, n)),
                          "inner_whole_gap": gap})
    head = fusion_fit.fit_fusion(frame, prior=0.01, target_fpr=0.01).head(True)
    coef = dict(zip(head.columns, head.coef))
    assert coef["identity_deficit"] == pytest.approx(0.0, abs=1e-6) and coef["inner_whole_gap"] > 0
    assert head.indicators == ["identity_deficit"] and "present:identity_deficit" in coef
    assert not any(f.startswith("present:") for f in head.features)  # what the scorer must compute
    rows = [{"inner_whole_gap": 2.0}, {"inner_whole_gap": 2.0, "identity_deficit": 0.0, "context_deficit": 0.0}]
    assert np.isfinite(head.predict(rows)).all()
    assert fusion_fit.expected_sign("artefact:sbi") == 1 and fusion_fit.expected_sign("identity_cohort_z") == -1
    assert fusion_fit.expected_sign("consistency:inner_outer") == 1
    assert fusion_fit.expected_sign("pack2:consistency:inner_outer") == 1


def test_region_consistency_is_a_generic_signal_and_the_generic_head_can_be_left_out():
    rng = np.random.default_rng(5)
    n = 600
    labels = rng.integers(0, 2, n)
    vip = rng.random(n) < 0.5
    frame = pd.DataFrame({"label": labels, "vip": vip, "group": np.arange(n) // 3,
                          "inner_whole_gap": np.where(vip, rng.normal(1.5 * labels, 1.0), np.nan),
                          "consistency:inner_outer": rng.normal(1.0 * labels, 1.0)})
    both = fusion_fit.fit_fusion(frame, prior=0.01, target_fpr=0.01)
    assert set(both.head(False).features) == {"consistency:inner_outer"}
    assert {"inner_whole_gap", "consistency:inner_outer"} <= set(both.head(True).features)
    vip_only = fusion_fit.fit_fusion(frame, prior=0.01, target_fpr=0.01, heads_to_fit=("vip",))
    assert vip_only.head(False) is None and vip_only.metadata["heads_fitted"] == ["vip"]
    assert "consistency:inner_outer" in vip_only.head(True).features


def test_group_robust_threshold_is_at_least_the_plain_quantile():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(40), 10)
    scores = rng.normal(0, 1, 400) + rng.normal(0, 1.5, 40)[groups]  # strongly clustered by group
    plain = fusion_fit.calibration.threshold_at_fpir(scores, 0.01)
    robust = fusion_fit.robust_threshold(scores, groups, 0.01, confidence=0.9)
    assert robust > plain and (scores >= robust).mean() <= 0.01


def test_each_pack_family_gets_the_shipped_fusion_fitted_with_it():
    from core.config import ModelPackConfig
    from operators.forgery import fusion as fusion_module
    from operators.forgery.scorer import ForgeryScorer

    for pack_name, prefix in (("dlib", "dlib"), ("dlib-hog+dlib_resnet_v1@55533b28", "dlib"),
                              ("onnx:scrfd_500m_kps@517cb198+mobilefacenet_128@85cdeb73", "onnx:"),
                              (str(SHARED_DIR / "models"), "onnx:")):
        directory = fusion_module.shipped_fusion_dir(fusion_module.pack_family(pack_name))
        manifest = json.loads((directory / "manifest.json").read_text())
        assert manifest["scorer"]["model_pack"].startswith(prefix), (pack_name, directory.name)
        loaded = fusion_module.load_fusion(fusion_module.SHIPPED, pack_name=pack_name)
        assert loaded.version == manifest["version"]
    # The crawl's scorer picks by its model pack: the dlib default gets the dlib fit.
    dlib_scorer = ForgeryScorer(forgery=ForgeryConfig(), model=ModelPackConfig(pack="dlib"))
    dlib_dir = fusion_module.shipped_fusion_dir("dlib")
    assert dlib_scorer.fusion.version.replace("@", "-") == dlib_dir.name != fusion_module.shipped_fusion_dir().name
    # A pack family without its own pointer falls back to DEFAULT.
    assert fusion_module.shipped_fusion_dir("yunet") == fusion_module.shipped_fusion_dir()


def test_written_fusion_artefact_points_its_pack_family_at_it(tmp_path):
    from operators.forgery.fusion import FusionModel, Head

    head = Head(features=["identity_deficit"], coef=[1.0], intercept=-4.0, threshold=0.5)
    evaluation = {"families": {"authentic_false_alarm_rate": 0.0}, "size_bins": []}
    for model_pack, second, pointer in (("dlib-hog+dlib_resnet_v1@55533b28", None, "DEFAULT.dlib"),
                                        ("onnx:x+y", None, "DEFAULT"),
                                        ("dlib-hog+dlib_resnet_v1@55533b28", "onnx:yunet@1+mfn@2", "DEFAULT.dlib+mfn@2")):
        fusion = FusionModel(heads={"vip": head}, version=f"fusion-lr@{pointer[-4:]}",
                             metadata={"prior": 0.01, "target_fpr": 0.005, "recipe": "test",
                                       "scorer": {"model_pack": model_pack, "second_pack": second}})
        target = forgery_benchmark.write_fusion_artefact(fusion, tmp_path, evaluation, {}, "test")
        assert (tmp_path / pointer).read_text().strip() == target.name
    # A fit with a second pack leaves the single-pack pointer alone.
    assert (tmp_path / "DEFAULT.dlib").read_text().strip() == "fusion-lr-dlib"
