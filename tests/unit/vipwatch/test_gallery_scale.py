"""The gallery-scale benchmark's synthetic faces follow the cosine distributions they claim, and
its figures are what they say: exact search checked against numpy, an IVF that searches every
list agrees with exact search, outcomes add up."""
from __future__ import annotations

import numpy as np
import pytest

from vipwatch.bench import gallery_scale
from vipwatch.bench.gallery_scale import MOBILEFACENET_128, Gallery, SyntheticFaces


@pytest.mark.parametrize("dim", [128, 512])
def test_synthetic_cosines_follow_the_measured_distributions(dim):
    gallery = Gallery(SyntheticFaces(dim, seed=3), identities=200, per_identity=8)
    vectors = gallery.materialise()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    owners = np.arange(gallery.size) // gallery.per_identity
    cosines = vectors @ vectors.T
    upper = np.triu_indices(gallery.size, 1)
    same = (owners[:, None] == owners[None, :])[upper]
    genuine, impostor = cosines[upper][same], cosines[upper][~same]
    stats = MOBILEFACENET_128
    assert abs(genuine.mean() - stats.genuine_mean) < 0.02 and abs(genuine.std() - stats.genuine_std) < 0.02
    assert abs(impostor.mean() - stats.impostor_mean) < 0.02 and abs(impostor.std() - stats.impostor_std) < 0.02


def test_chunks_are_deterministic_and_probes_are_labelled(monkeypatch):
    monkeypatch.setattr(gallery_scale, "CHUNK_ROWS", 700)
    gallery = Gallery(SyntheticFaces(64, seed=1), identities=250, per_identity=8)
    first, second = gallery.materialise(), gallery.materialise()
    assert first.shape == (2000, 64) and np.array_equal(first, second)
    probes, truth, genuine = gallery.probes(100, 60)
    assert probes.shape == (160, 64) and genuine.sum() == 100
    assert len(set(truth[genuine])) == 100 and (truth[~genuine] == -1).all()
    # A genuine probe is closer to its own identity's references than to the rest, on average.
    own = [(first[np.arange(2000) // 8 == t] @ p).mean() for p, t in zip(probes[:100], truth[:100])]
    assert np.mean(own) > 0.35 > (probes[100:] @ first.T).mean() + 0.25


def test_exact_search_and_outcomes_match_numpy(monkeypatch):
    monkeypatch.setattr(gallery_scale, "CHUNK_ROWS", 1000)
    gallery = Gallery(SyntheticFaces(128, seed=2), identities=300, per_identity=10)
    probes, truth, genuine = gallery.probes(200, 200)
    scores, found, _ = gallery_scale.exact_top1(gallery, probes)
    dense = probes @ gallery.materialise().T
    assert np.array_equal(found, dense.argmax(axis=1))
    assert np.allclose(scores, dense.max(axis=1), atol=1e-5)
    threshold, held_out = gallery_scale.cohort_threshold(scores[~genuine], 0.05)
    assert len(held_out) == 100 and (scores[~genuine][:100] >= threshold).mean() <= 0.05
    result = gallery_scale.outcome(gallery, scores, found, truth, genuine, threshold, held_out)
    right = (found[genuine] // 10) == truth[genuine]
    assert result["top1_identity_recall"] == round(float(right.mean()), 4)
    parts = result["hit_rate_at_threshold"] + result["wrong_identity_above_threshold"] + result["miss_below_threshold"]
    assert parts == pytest.approx(1.0, abs=2e-4)
    low, high = result["top1_identity_recall_ci95"]
    assert low <= result["top1_identity_recall"] <= high


def test_benchmark_rows_exhaustive_ivf_agrees_with_exact(capsys):
    report = gallery_scale.gallery_benchmark([3000], [64], ["ivf", "hnsw"], genuine_probes=150, impostor_probes=150,
                                             ivf_nlist=16, nprobes=[1, 16], ef_searches=[256], hnsw_m=16,
                                             leave_one_out_probes=500)
    rows = report["results"]
    assert [row["kind"] for row in rows] == ["exact (flat_ip)", "ivf", "ivf", "hnsw", "calibration"]
    exact, ivf_one, ivf_all, hnsw, calibration = rows
    assert exact["chosen_by_rule"] is True and exact["genuine_probes"] == 150
    assert ivf_all["nprobe"] == 16 and ivf_all["agrees_with_exact_top1_identity"] == 1.0
    assert ivf_all["top1_identity_recall"] == exact["top1_identity_recall"]
    assert ivf_one["agrees_with_exact_top1_identity"] <= ivf_all["agrees_with_exact_top1_identity"]
    assert hnsw["agrees_with_exact_top1_identity"] > 0.95  # efSearch 256 over 3,000 vectors
    for row in (ivf_one, ivf_all, hnsw):
        assert row["queries_per_s"] > 0 and row["cpu_ms_per_query"] >= 0 and row["build_s"] >= 0
    assert calibration["leave_one_out_probes"] == 500 and -1 < calibration["leave_one_out_threshold"] < 1
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(printed) == len(rows)


def test_hnsw_above_its_cap_is_reported_as_not_run():
    report = gallery_scale.gallery_benchmark([2000], [32], ["hnsw"], genuine_probes=20, impostor_probes=20,
                                             hnsw_max=1000)
    assert "skipped" in report["results"][-1]


@pytest.mark.parametrize(("nlist", "storage"), [(None, "flat"), (None, "sq8"), (8, "flat")])
def test_identity_shortlist_with_every_identity_is_exact_search(nlist, storage):
    gallery = Gallery(SyntheticFaces(64, seed=4), identities=120, per_identity=5)
    probes, _, _ = gallery.probes(60, 40)
    # A shortlist longer than the gallery: the index pads with -1, which must end the rescoring.
    shortlist = gallery_scale.IdentityShortlist(gallery, m=8, ef_construction=40, shortlist=150, nlist=nlist,
                                                storage=storage)
    assert shortlist.set_effort(200 if nlist is None else nlist) == (200 if nlist is None else 8)
    scores, found = shortlist.search(probes)
    exact_scores, exact_ids, _ = gallery_scale.exact_top1(gallery, probes)
    assert np.array_equal(found[:, 0], exact_ids)
    assert np.allclose(scores[:, 0], exact_scores, atol=1e-5)


def test_identity_ivf_rows_sweep_nprobe_and_all_lists_agree_with_exact():
    report = gallery_scale.gallery_benchmark([2000], [64], ["identity_ivf"], per_identity=10, genuine_probes=100,
                                             impostor_probes=100, ivf_nlist=8, nprobes=[1, 8], shortlist=4)
    exact, one_list, all_lists = report["results"]
    assert [row["kind"] for row in (one_list, all_lists)] == ["identity_ivf", "identity_ivf"]
    assert (one_list["nprobe"], all_lists["nprobe"], all_lists["nlist"]) == (1, 8, 8)
    assert all_lists["shortlist_identities"] == 4
    # Every list searched: the 4 nearest centroids are exact, so the answer is exact search's
    # whenever the best reference's identity has one of the 4 nearest centroids.
    assert all_lists["agrees_with_exact_top1_identity"] >= one_list["agrees_with_exact_top1_identity"]
    assert all_lists["agrees_with_exact_top1_identity"] > 0.9
