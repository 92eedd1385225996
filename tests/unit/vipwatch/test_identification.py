"""Open-set identification metrics on a hand-checked example (numbers worked out in the comments)."""
from __future__ import annotations

import numpy as np
import pytest

from vipwatch.evaluation import identification as ident

# Gallery A, B. Mated probes: A->A 0.9, A->B 0.8 (wrong identity), B->B 0.6, B->B 0.4.
# Non-mated probes (people X, X, Y, Z, W): 0.7, 0.5, 0.3, 0.2, 0.1.
SCORES = ident.OpenSetScores(
    mated_identity=np.array(["A", "A", "B", "B"]), mated_top_identity=np.array(["A", "B", "B", "B"]),
    mated_top_score=np.array([0.9, 0.8, 0.6, 0.4], np.float32),
    nonmated_person=np.array(["X", "X", "Y", "Z", "W"]),
    nonmated_top_score=np.array([0.7, 0.5, 0.3, 0.2, 0.1], np.float32))


def test_rank1_counts_the_wrong_identity_as_a_miss():
    assert ident.rank1(SCORES) == pytest.approx(3 / 4)


def test_rates_at_a_threshold():
    # At 0.55: identified = correct and >= 0.55 = {0.9, 0.6} -> 2/4; non-mated >= 0.55 = {0.7} -> 1/5.
    assert ident.tpir_at(SCORES, 0.55) == pytest.approx(0.5)
    assert ident.fpir_at(SCORES, 0.55) == pytest.approx(0.2)
    # The wrong-identity probe at 0.8 never counts as identified, whatever the threshold.
    assert ident.tpir_at(SCORES, 0.0) == pytest.approx(3 / 4)


def test_tpir_at_fpir_uses_the_nonmated_threshold():
    # FPIR 20% of 5 non-mated: 1 may pass, so the threshold sits just above 0.5 -> TPIR {0.9, 0.6} = 0.5.
    assert ident.tpir_at_fpir(SCORES, 0.2) == pytest.approx(0.5)
    # 10% of 5 probes is below one probe: the rate cannot be resolved.
    assert ident.tpir_at_fpir(SCORES, 0.1) is None


def test_det_curve_point():
    thresholds, fpir, fnir = ident.det_curve(SCORES)
    at = int(np.flatnonzero(np.isclose(thresholds, 0.4))[0])
    # >= 0.4: non-mated {0.7, 0.5} -> FPIR 2/5; identified {0.9, 0.6, 0.4} -> FNIR 1/4.
    assert fpir[at] == pytest.approx(0.4)
    assert fnir[at] == pytest.approx(0.25)
    assert np.all(np.diff(fpir) <= 0) and np.all(np.diff(fnir) >= 0)


def test_bootstrap_resamples_people_and_brackets_the_point():
    intervals = ident.bootstrap_by_person(SCORES, 0.55, rounds=300, seed=1)
    low, high = intervals["fpir_at_gallery_threshold"]
    assert low <= 0.2 <= high
    # Person X brings both 0.7 and 0.5: a draw of only X gives FPIR 0.5 at 0.55, of no X gives 0.
    assert low == 0.0 and high >= 0.4
    assert intervals["rank1"][0] <= 0.75 <= intervals["rank1"][1]


def test_det_png_is_written(tmp_path):
    path = tmp_path / "det.png"
    ident.plot_det({"example": SCORES}, str(path), "example", gallery_threshold=0.55)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
