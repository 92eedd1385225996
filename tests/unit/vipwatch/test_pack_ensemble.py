"""Two packs' identity signals on the same benchmark faces: pairing by image, frame and box, and a
leave-one-family-out that finds the pack whose signal separates."""
from __future__ import annotations

import numpy as np
import pandas as pd

from jobs import forgery_pack_ensemble as job
from vipwatch.evaluation import fusion_fit, pack_ensemble


def faces(rows):
    return pd.DataFrame(rows, columns=["image_uri", "frame_index", "bbox", "vip", "identity_deficit"])


def test_faces_pair_by_image_frame_and_overlap():
    first = faces([("a.jpg", -1, [0, 0, 10, 10], True, 1.0), ("a.jpg", -1, [50, 50, 60, 60], False, 2.0),
                   ("v.mp4", 3, [0, 0, 10, 10], False, 3.0), ("b.jpg", -1, [0, 0, 10, 10], False, 4.0)])
    second = faces([("a.jpg", -1, [1, 1, 11, 11], False, 10.0), ("a.jpg", -1, [200, 200, 210, 210], True, 20.0),
                    ("v.mp4", 4, [0, 0, 10, 10], True, 30.0), ("v.mp4", 3, [2, 0, 12, 10], True, 40.0)])
    merged = pack_ensemble.pair_faces(first, second)
    # a.jpg's first face pairs with the overlapping one; the far box and another frame do not.
    assert merged["identity_deficit"].tolist() == [1.0, 3.0]
    assert merged[fusion_fit.SECOND_PACK + "identity_deficit"].tolist() == [10.0, 40.0]
    assert merged["vip_first"].tolist() == [True, False] and merged["vip_second"].tolist() == [False, True]
    assert merged["vip"].tolist() == [True, True]


def test_second_pack_signals_keep_their_known_direction():
    assert fusion_fit.expected_sign(fusion_fit.SECOND_PACK + "identity_deficit") == 1
    assert fusion_fit.expected_sign(fusion_fit.SECOND_PACK + "identity_cohort_z") == -1


def synthetic_runs(tmp_path, rng):
    """Forgeries of two families on two sides; only the second pack's deficit tells them apart."""
    rows_first, rows_second = [], []
    for k in range(400):
        label = int(k % 4 == 0)
        family = ("swap", "reenact")[k % 8 // 4] if label else "authentic"
        common = {"image_uri": f"img{k}.jpg", "frame_index": "", "bbox": "[ 0.  0. 40. 40.]", "label": label,
                  "family": family, "side": "AB"[k // 8 % 2], "group": f"g{k // 2}", "vip": True}
        rows_first.append({**common, "identity_deficit": rng.normal(0, 1)})
        rows_second.append({**common, "identity_deficit": rng.normal(3.0 * label, 1)})
    paths = []
    for name, rows in (("first.csv", rows_first), ("second.csv", rows_second)):
        pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
        paths.append(str(tmp_path / name))
    return paths


def test_command_ranks_the_pack_whose_signal_separates(tmp_path, capsys):
    first, second = synthetic_runs(tmp_path, np.random.default_rng(0))
    summary = job.main(["--first", first, "--second", second, "--bootstrap", "20"])
    assert summary["paired_faces"] == 400
    auc = summary["lofo_auc"]
    for family in ("swap", "reenact"):
        assert auc["second"][family] > 0.95 and auc["both"][family] > 0.95
        assert 0.3 < auc["first"][family] < 0.7
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("{")
