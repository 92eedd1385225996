"""Pair verification: metrics on a hand-checked example, and jobs.verify_pairs end to end on real
LFW pairs with the ONNX pack (faces detected in the full photos)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.shared_data import DATA, MODELS
from vipwatch.evaluation import verification as ver

# fold 0: (0.9 same) (0.2 diff) (0.6 diff); fold 1: (0.8 same) (0.4 same) (0.1 diff)
PAIRS = ver.Pairs(first=list("abcdef"), second=list("ghijkl"), label=np.array([1, 0, 0, 1, 1, 0]),
                  fold=np.array([0, 0, 0, 1, 1, 1]))
SCORES = np.array([0.9, 0.2, 0.6, 0.8, 0.4, 0.1])


def test_ten_fold_protocol_by_hand():
    # Fold 0 is tested at the threshold fold 1 picks: 0.25 (all of fold 1 right) -> 0.6 diff is
    # accepted: 2/3. Fold 1 at fold 0's 0.75 -> 0.4 same is rejected: 2/3. Accuracy 4/6.
    result = ver.evaluate_pairs(SCORES, np.ones(6, bool), PAIRS, far=0.34)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["threshold_mean"] == pytest.approx((0.25 + 0.75) / 2)
    # AUC: same-person scores beat different-person ones in 3 + 3 + 2 of 9 pairs.
    assert result["auc"] == pytest.approx(8 / 9)
    # FAR 0.34 of 3 different-person pairs lets 1 pass: threshold just above 0.2 -> every same pair: TAR 1.
    assert result["tar_at_far_0.34"] == pytest.approx(1.0)
    assert ver.tar_at_far(SCORES, PAIRS.label, 0.1) is None


def test_a_pair_without_a_face_counts_as_wrong():
    comparable = np.array([True, True, True, True, False, True])
    result = ver.evaluate_pairs(SCORES, comparable, PAIRS)
    assert result["pairs_without_face"] == 1
    # Fold 0's threshold now comes from fold 1's 2 comparable pairs (0.8 same, 0.1 diff): the
    # midpoint 0.45, so 0.6 diff is still accepted: fold 0 2/3. Fold 1 at 0.75: 0.8 right, 0.4 not
    # comparable (wrong), 0.1 right: 2/3. Accuracy 4/6; on the 5 comparable pairs 4/5.
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["threshold_mean"] == pytest.approx((0.45 + 0.75) / 2)
    assert result["accuracy_on_comparable_pairs"] == pytest.approx(4 / 5)


def test_verify_pairs_command_on_real_lfw_pairs(tmp_path, capsys):
    from jobs.verify_pairs import main

    rows = (DATA / "lfw" / "pairs.csv").read_text().splitlines()
    header, body = rows[0], rows[1:]
    same = [r for r in body if r.split(",")[2] == "1"][:6]
    different = [r for r in body if r.split(",")[2] == "0"][:6]
    # Two folds, each with both labels, so each fold's threshold comes from the other.
    picked = [r.rsplit(",", 1)[0] + f",{i % 2}" for i, r in enumerate(same + different)]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join([header] + picked) + "\n")
    summary = main(["--pairs", str(pairs), "--root", str(DATA / "lfw" / "lfw-deepfunneled"),
                    "--model-pack", str(MODELS), "--cache", str(tmp_path / "cache")])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
    assert summary["pairs"] == 12 and summary["same"] == 6 and summary["folds"] == 2
    assert summary["pairs_without_face"] == 0
    # MobileFaceNet separates these easy LFW pairs; a broken embedding or pairing would not.
    assert summary["auc"] >= 0.9
    assert summary["accuracy"] >= 10 / 12
    assert summary["model_pack"].startswith("onnx:scrfd")
    # A second run reads the cache instead of embedding again.
    assert any((tmp_path / "cache").iterdir())
