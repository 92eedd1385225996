"""Single-signal AUC per manipulation family on one side of a scored benchmark frame (faces.csv
of jobs.forgery_benchmark), with bootstrap intervals by group: does a raw signal carry anything
before a fusion is fitted on it. Faces lacking the signal are left out (counted)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vipwatch.evaluation.group_bootstrap import bootstrap

SIZE_EDGES = (0, 20, 40, math.inf)


def signal_table(frame: pd.DataFrame, signal: str, sides: list[str], resamples: int = 300,
                 higher_is_fake: bool = True) -> list[dict]:
    """Rows: per family (its forgeries vs every authentic face of ``sides``), then per face size
    of the forgeries and authentic faces together ("all families")."""
    rows = frame[frame["side"].isin(sides) & frame[signal].notna()] if signal in frame else frame.iloc[:0]
    values = rows[signal].to_numpy(np.float64) * (1.0 if higher_is_fake else -1.0)
    labels = rows["label"].to_numpy(np.int64)
    groups = rows["group"].astype(str).to_numpy()
    families = rows["family"].to_numpy()
    out = []
    for family in sorted(set(families[labels == 1])):
        keep = (labels == 0) | (families == family)
        out.append({"signal": signal, "subset": family, "missing": int((frame["side"].isin(sides)
                                                                          & frame[signal].isna()).sum())
                    if signal in frame else len(frame),
                    **_cell(labels[keep], values[keep], groups[keep], resamples)})
    iod = rows["inter_ocular_px"].to_numpy(np.float64)
    for low, high in zip(SIZE_EDGES[:-1], SIZE_EDGES[1:]):
        keep = (iod >= low) & (iod < high)
        out.append({"signal": signal, "subset": f"all, {low}-{'' if math.isinf(high) else high} px", "missing": 0,
                    **_cell(labels[keep], values[keep], groups[keep], resamples)})
    return out


def _cell(labels: np.ndarray, values: np.ndarray, groups: np.ndarray, resamples: int) -> dict:
    if not ((labels == 0).any() and (labels == 1).any()):
        return {"auc": float("nan"), "low": float("nan"), "high": float("nan"),
                "forged": int((labels == 1).sum()), "authentic": int((labels == 0).sum()), "forged_groups": 0,
                "authentic_groups": 0}
    result = bootstrap(labels, values, np.full(len(values), np.nan), groups, None, resamples)
    return {"auc": result["auc"]["value"], "low": result["auc"]["low"], "high": result["auc"]["high"],
            **result["counts"]}


def text_table(rows: list[dict]) -> str:
    lines = [f"{'signal':<30} {'subset':<22} {'forged (groups)':>16} {'authentic (groups)':>19}  AUC [95% CI]"]
    for r in rows:
        lines.append(f"{r['signal']:<30} {r['subset']:<22} {r['forged']:>9} ({r['forged_groups']:>4}) "
                     f"{r['authentic']:>11} ({r['authentic_groups']:>4})  {r['auc']:.3f} [{r['low']:.2f}, {r['high']:.2f}]")
    return "\n".join(lines)
