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


def test_split_by_floor_keeps_one_threshold_for_both_sides():
    # Floor: mated probes 0-2 above, 3 (B 0.4) below; non-mated 0.7 below, the rest above.
    split = ident.split_by_floor(SCORES, np.array([True, True, True, False]),
                                 np.array([False, True, True, True, True]), fpir=0.2, rounds=50)
    # The threshold is set on all 5 non-mated probes (FPIR 20%: just above 0.5), not on one side.
    assert 0.5 < split["threshold"] <= 0.7
    # Above: A 0.9 identified, A->B wrong identity, B 0.6 identified -> 2/3; below: B 0.4 missed -> 0/1.
    assert split["above_floor"]["tpir"] == pytest.approx(2 / 3)
    assert split["below_floor"]["tpir"] == pytest.approx(0.0)
    # Non-mated above the floor {0.5, 0.3, 0.2, 0.1}: none passes; below {0.7}: it passes.
    assert split["above_floor"]["fpir"] == pytest.approx(0.0)
    assert split["below_floor"]["fpir"] == pytest.approx(1.0)
    assert split["above_floor"]["mated_probes"] == 3 and split["below_floor"]["nonmated_probes"] == 1


def test_describe_misses_compares_missed_and_identified():
    report = ident.describe_misses(SCORES, 0.55, {"yaw": np.array([0.1, 0.2, 0.3, 0.9])})
    # At 0.55 identified: rows 0 (A 0.9) and 2 (B 0.6); missed: row 1 (wrong identity) and row 3 (B 0.4).
    assert (report["missed"], report["identified"], report["missed_wrong_identity"]) == (2, 2, 1)
    assert report["yaw"]["median_missed"] == pytest.approx(0.55)
    assert report["yaw"]["median_identified"] == pytest.approx(0.2)
