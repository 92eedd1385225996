"""FPIR over drawn galleries on a hand-checked example: four identities on orthogonal axes, two of
C's probes a look-alike of A (cosine 0.9), a cohort whose best cosine to A's references runs
evenly from 0 to 0.8 and is 0 to everyone else's."""
import numpy as np
import pytest

from index.cohort import Cohort
from vipwatch.evaluation.gallery_draws import evaluate_draw, gallery_draws, summarise_draws

AXES = np.eye(5, dtype=np.float32)
A, B, C, D, SPARE = AXES


def _example():
    reference_ids = np.array(["A", "A", "B", "B", "C", "C", "D", "D"])
    references = np.stack([A, A, B, B, C, C, D, D])
    lookalike = 0.9 * A + np.sqrt(1 - 0.81) * C
    probe_ids = np.array(["A", "B", "C", "C", "C", "C", "D", "D", "D", "D"])
    probes = np.stack([A, B, lookalike, lookalike, C, C, D, D, D, D])
    to_a = np.linspace(0, 0.8, 100, dtype=np.float32)
    cohort_faces = to_a[:, None] * A + np.sqrt(1 - to_a ** 2)[:, None] * SPARE
    cohort = Cohort.create(cohort_faces, [f"cohort:p{i}" for i in range(100)], "test-embedder", "test", {}, "test")
    return references, reference_ids, probes, probe_ids, cohort


def test_every_gallery_or_a_seeded_sample():
    assert len(gallery_draws(["D", "C", "B", "A"], 2)) == 6
    assert gallery_draws(["D", "C", "B", "A"], 2)[0] == ("A", "B")
    sample = gallery_draws(list("ABCDEFGH"), 3, max_draws=5, seed=1)
    assert len(set(sample)) == 5 and sample == gallery_draws(list("ABCDEFGH"), 3, max_draws=5, seed=1)
    with pytest.raises(ValueError):
        gallery_draws(["A", "B"], 2)


def test_one_draw_by_hand():
    references, reference_ids, probes, probe_ids, cohort = _example()
    result = evaluate_draw(("A", "B"), references, reference_ids, probes, probe_ids, 0.01, cohort)
    # 100 impostors at FPIR 1%: one may pass, so the threshold sits just above the second highest
    # cohort score, 0.8 * 98 / 99 (float16 storage moves it by < 1e-3).
    assert result.threshold == pytest.approx(0.8 * 98 / 99, abs=1e-3)
    assert (result.nonmated_probes, result.nonmated_passed) == (8, 2)  # C's two look-alike probes
    assert result.passes_by_pair == {("C", "A"): 2}
    assert (result.mated_probes, result.mated_identified) == (2, 2)


def test_summary_over_every_draw_by_hand():
    references, reference_ids, probes, probe_ids, cohort = _example()
    photos = np.stack([B, 0.95 * A + np.sqrt(1 - 0.95 ** 2) * SPARE])
    results = [evaluate_draw(g, references, reference_ids, probes, probe_ids, 0.01, cohort, photos)
               for g in gallery_draws(["A", "B", "C", "D"], 2)]
    # Non-mated FPIR per draw: AB 2/8, AC 0/5, AD 2/5 (the look-alikes pass as A), BC, BD, CD 0.
    assert [round(r.nonmated_fpir, 3) for r in results] == [0.25, 0.0, 0.4, 0.0, 0.0, 0.0]
    summary = summarise_draws(results)
    assert summary["draws"] == 6
    assert summary["nonmated_fpir"]["mean"] == pytest.approx(0.65 / 6)
    assert summary["nonmated_fpir_pooled"] == pytest.approx(4 / sum(r.nonmated_probes for r in results))
    assert summary["share_of_draws_above_band"] == pytest.approx(2 / 6)
    assert summary["share_of_draws_in_band"] == 0.0
    assert summary["top_pairs"][0] == {"probe_identity": "C", "passed_as": "A", "passes": 4, "draws_with_it_enrolled": 3}
    # The photo near A (0.95) passes wherever A is enrolled, B's wherever B is: photo probes are
    # counted as non-mated, so they must be people that no draw can enrol.
    assert [r.photo_passed for r in results] == [2, 1, 1, 1, 1, 0]
