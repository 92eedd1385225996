"""Scoring variants (jobs.compare_scoring) on hand-checked examples (numbers worked out in the comments)."""
from __future__ import annotations

import numpy as np
import pytest

from index.calibration import threshold_at_fpir
from vipwatch.evaluation import score_variants as sv
from vipwatch.evaluation.face_embeddings import FaceSet


def _faces(vectors) -> FaceSet:
    vectors = np.asarray(vectors, np.float32)
    count = len(vectors)
    return FaceSet(keys=np.asarray([f"f{i}" for i in range(count)]), found=np.ones(count, bool), embedding=vectors,
                   flip_embedding=vectors, det_score=np.ones(count, np.float32),
                   face_px=np.full(count, 112, np.float32), blur=np.ones(count, np.float32),
                   faces_in_image=np.ones(count, np.int32), model_pack="test", embedder_id="test")


def _towards_a(cosine: float) -> list[float]:
    """A unit vector with this cosine to A = (1, 0) and a negative one to B = (0, 1)."""
    return [cosine, -float(np.sqrt(1 - cosine ** 2))]


def test_per_identity_thresholds_give_each_identity_its_own_bar():
    # 10 cohort faces. Against A: 0.9, 0.8, then 0.1; against B: 0.5 (face 2), then 0.0.
    scores = np.zeros((10, 2), np.float32)
    scores[:, 0] = [0.9, 0.8] + [0.1] * 8
    scores[2, 1] = 0.5
    # At the per-identity rate 10% each identity lets its top face through (A: face 0, B: face 2),
    # so the open-set FPIR is 2/10 > 10%. Below 10% no face passes either identity: thresholds just
    # above each identity's top cohort score, A's 0.9 and B's 0.5, and the cohort's FPIR is 0.
    thresholds, rate = sv.per_identity_thresholds(scores, 0.1)
    assert rate < 0.1
    assert thresholds[0] == pytest.approx(0.9) and thresholds[0] > np.float32(0.9)
    assert thresholds[1] == pytest.approx(0.5) and thresholds[1] > np.float32(0.5)
    assert sv.open_set_fpir(scores, thresholds) == 0.0
    # The single global threshold at 10% would sit just above 0.8 (one face of 10 passes).
    assert threshold_at_fpir(scores.max(axis=1), 0.1) == pytest.approx(0.8)


def test_per_identity_thresholds_of_one_identity_are_the_global_threshold():
    scores = np.linspace(0, 1, 200, dtype=np.float32)[:, None]
    thresholds, rate = sv.per_identity_thresholds(scores, 0.01)
    assert rate == 0.01
    assert thresholds[0] == threshold_at_fpir(scores[:, 0], 0.01)
    assert sv.open_set_fpir(scores, thresholds) == pytest.approx(0.01)


def test_top_cohort_statistics_leave_the_probes_own_person_out():
    probe = np.asarray([[1.0, 0.0]], np.float32)
    cohort = np.asarray([_towards_a(0.5), _towards_a(0.3), _towards_a(-0.1)], np.float32)
    # Top 2 of (0.5, 0.3, -0.1): mean 0.4, std 0.1.
    mean, std = sv.top_cohort_statistics(probe, cohort, 2)
    assert mean[0] == pytest.approx(0.4) and std[0] == pytest.approx(0.1)
    # The probe's own person is cohort face 0: top 2 of (0.3, -0.1): mean 0.1, std 0.2.
    mean, std = sv.top_cohort_statistics(probe, cohort, 2, np.asarray(["a"]), np.asarray(["a", "b", "c"]))
    assert mean[0] == pytest.approx(0.1) and std[0] == pytest.approx(0.2)


def test_evaluate_variant_reports_fpir_per_probe_set():
    references = _faces([[1, 0], [0, 1]])
    reference_ids = np.asarray(["A", "B"])
    # Cohort best scores 0.9, 0.8, then 0.1 x 8: at FPIR 10% the threshold is just above 0.8.
    cohort = _faces([_towards_a(c) for c in [0.9, 0.8] + [0.1] * 8])
    # Probes: one mated A (score 1); crops of X (0.85, passes) and Y (0.5); photos of Z (0.95, passes), V, W.
    probes = _faces([[1, 0]] + [_towards_a(c) for c in (0.85, 0.5, 0.95, 0.2, 0.3)])
    people = np.asarray(["A", "X", "Y", "Z", "V", "W"], dtype=object)
    sets = np.asarray(["crops", "crops", "crops", "photos", "photos", "photos"], dtype=object)
    result = sv.evaluate_variant(sv.VARIANTS[0], references, reference_ids, probes, people, cohort, target_fpir=0.1,
                                 probe_sets=sets)
    assert result["tpir_at_cohort_threshold"] == 1.0
    assert result["fpir_at_cohort_threshold"] == pytest.approx(2 / 5)
    crops, photos = result["fpir_by_set"]["crops"], result["fpir_by_set"]["photos"]
    assert (crops["false_positives"], crops["nonmated"], crops["by_person"]) == (1, 2, {"X": 1})
    assert (photos["false_positives"], photos["nonmated"], photos["by_person"]) == (1, 3, {"Z": 1})
    low, high = photos["clopper_pearson_95"]
    assert low < 1 / 3 < high
