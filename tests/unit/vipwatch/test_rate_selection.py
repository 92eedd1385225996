"""Nested leave-one-family-out choice of the candidate rate: a family's own figure must not
choose the rate it is scored at."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs import forgery_rate_selection as job
from vipwatch.evaluation import rate_selection

FAMILIES = ("a", "b", "c")


def synthetic_run(rng, judged_share: dict[str, float]) -> pd.DataFrame:
    """Forgeries of three families on two sides, and authentic faces. Every judged forgery shows
    a deficit; a forgery the rate leaves without a VIP candidate cannot be judged, as at a rate
    too low for it. The same faces (rows) in every run, as runs of one corpus at two rates are."""
    rows = []
    for k in range(480):
        label = int(k % 4 == 0)
        family = FAMILIES[k // 4 % 3] if label else "authentic"
        # The same per-face draw at every rate: a face judged at a rate stays judged at a higher one.
        judged = not label or (k * 0.6180339887) % 1.0 < judged_share[family]
        rows.append({"image_uri": f"img{k}.jpg", "frame_index": "", "face_index": 0, "bbox": "[ 0. 0. 40. 40.]",
                     "label": label, "family": family, "side": "AB"[k // 12 % 2], "group": f"g{k // 3}",
                     "vip": judged, "forgery_identity_id": "vip_x" if judged else None, "inter_ocular_px": 40.0,
                     "identity_deficit": rng.normal(3.0 * label, 1.0) if judged else None})
    return pd.DataFrame(rows)


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    # Family a has its candidates at the low rate; b and c need the high one (a keeps 70% there).
    for rate, share in ((0.1, {"a": 1.0, "b": 0.35, "c": 0.35}), (0.9, {"a": 0.7, "b": 1.0, "c": 1.0})):
        path = tmp_path / f"rate{rate}.csv"
        synthetic_run(rng, share).to_csv(path, index=False)
        paths[rate] = str(path)
    return paths


def test_a_held_out_family_does_not_choose_its_own_rate(runs, capsys):
    summary = job.main([arg for rate, path in runs.items() for arg in ("--run", f"{rate}={path}")]
                       + ["--fusion-heads", "vip", "--bootstrap", "20"])
    # Family a alone would pick 0.1 (where all of it is judged); the other families pick 0.9, so a
    # is scored at 0.9, where 30% of it cannot raise an alarm.
    assert summary["chosen_rate"]["a"] == 0.9
    assert summary["nested_lofo_auc"]["a"] < 0.8
    assert summary["nested_lofo_auc"]["b"] > 0.95 and summary["nested_lofo_auc"]["c"] > 0.95
    assert summary["all_families_choice"] == 0.9
    out = capsys.readouterr().out
    assert "| a | " in out and out.strip().splitlines()[-1].startswith("{")


def test_fixed_rate_figures_are_the_plain_lofo_and_runs_must_hold_the_same_faces(runs):
    frames = {rate: job.read_faces(path) for rate, path in runs.items()}
    result = rate_selection.nested_lofo(frames, job.ForgeryConfig(), 0.01, 0.005, 10, ("vip",))
    assert result["families"]["a"]["fixed_rate_auc"][0.1] > 0.95
    assert result["families"]["a"]["fixed_rate_auc"][0.9] < 0.8
    # The inner score of held-out a never reads a's forgeries: it is the mean of b and c.
    inner = result["families"]["a"]["inner_auc"][0.9]
    assert set(inner) == {"b", "c"}
    with pytest.raises(ValueError, match="different faces"):
        rate_selection.nested_lofo({0.1: frames[0.1], 0.9: frames[0.9].iloc[:-1]}, job.ForgeryConfig(), 0.01, 0.005,
                                   10, ("vip",))
