import numpy as np
import pandas as pd

from vipwatch.evaluation.signal_auc import signal_table


def _frame(rng):
    rows = []
    for family in ("swap", "reenact"):
        for k in range(40):
            rows.append({"label": 1, "family": family, "side": "A" if k % 2 else "B", "group": f"vip{k % 4}",
                         "inter_ocular_px": 30.0, "signal": 2.0 + rng.normal() if family == "swap" else rng.normal()})
    for k in range(80):
        rows.append({"label": 0, "family": "authentic", "side": "A" if k % 2 else "B", "group": f"p{k}",
                     "inter_ocular_px": 50.0, "signal": rng.normal() if k % 10 != 1 else np.nan})
    return pd.DataFrame(rows)


def test_signal_table_per_family_on_the_asked_side_with_missing_counted():
    frame = _frame(np.random.default_rng(0))
    rows = {r["subset"]: r for r in signal_table(frame, "signal", ["A"], resamples=50)}
    assert rows["swap"]["auc"] > 0.9 and rows["swap"]["low"] > 0.8
    assert 0.3 < rows["reenact"]["auc"] < 0.7
    assert rows["swap"]["forged"] == 20 and rows["swap"]["authentic"] == 32
    assert rows["swap"]["missing"] == 8
    inverted = {r["subset"]: r for r in signal_table(frame, "signal", ["A"], resamples=50, higher_is_fake=False)}
    assert inverted["swap"]["auc"] < 0.1
