"""Detection metrics with bootstrap 95% intervals resampled by group (identity / photo / video):
faces of one person or one video are not independent, so the unit of resampling is the group."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, target_fpr: float = 0.01) -> float:
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= target_fpr + 1e-12].max())


def weighted_ece(labels: np.ndarray, probabilities: np.ndarray, prior: float | None = None, bins: int = 10) -> float:
    """Expected calibration error; with ``prior``, forged rows are reweighted so that they make up
    ``prior`` of the weight: calibration at that base rate, not at the benchmark's mix."""
    labels = np.asarray(labels, np.float64)
    p = np.clip(np.asarray(probabilities, np.float64), 0, 1)
    weights = np.ones_like(p)
    if prior is not None:
        fake = labels == 1
        weights[fake] = prior / max(fake.mean(), 1e-12)
        weights[~fake] = (1 - prior) / max((~fake).mean(), 1e-12)
    which = np.minimum((p * bins).astype(int), bins - 1)
    total, mass = 0.0, weights.sum()
    for b in range(bins):
        inside = which == b
        if inside.any():
            w = weights[inside]
            total += w.sum() / mass * abs(np.average(labels[inside], weights=w) - np.average(p[inside], weights=w))
    return float(total)


def at_even_odds(probability: np.ndarray, prior: float | None) -> np.ndarray:
    """A probability stated at base rate ``prior`` restated at 50%: what the features' likelihood
    ratio alone says."""
    if prior is None:
        return probability
    p = np.clip(probability, 1e-12, 1 - 1e-12)
    z = np.log(p / (1 - p)) - np.log(prior / (1 - prior))
    return 1 / (1 + np.exp(-z))


def metrics(labels: np.ndarray, alarm: np.ndarray, probability: np.ndarray, prior: float | None) -> dict:
    """AUC and TPR at 1% FPR of the alarm score; ECE of the probability at its stated prior
    (``ece``; the benchmark's own mix when none is stated) and restated at even odds on a
    class-balanced weighting (``ece_even``: at a 1% prior nearly all weight is on authentic faces,
    so ``ece`` alone says little about forged ones)."""
    labels = np.asarray(labels, np.int64)
    out = {"auc": float("nan"), "tpr_at_fpr_1pct": float("nan"), "ece": float("nan"), "ece_even": float("nan")}
    if (labels == 0).any() and (labels == 1).any():
        out["auc"] = float(roc_auc_score(labels, alarm))
        out["tpr_at_fpr_1pct"] = tpr_at_fpr(labels, alarm, 0.01)
        finite = np.isfinite(probability)
        if finite.any() and len(set(labels[finite])) == 2:
            out["ece"] = weighted_ece(labels[finite], probability[finite], prior)
            out["ece_even"] = weighted_ece(labels[finite], at_even_odds(probability[finite], prior), 0.5)
    return out


def bootstrap(labels, alarm, probability, groups, prior: float | None = None, resamples: int = 500,
              seed: int = 0) -> dict:
    """Point estimates and percentile 95% intervals, resampling the forged rows' groups and the
    authentic rows' groups separately (both classes stay present)."""
    labels, alarm, probability = np.asarray(labels), np.asarray(alarm, np.float64), np.asarray(probability, np.float64)
    groups = np.asarray(groups)
    point = metrics(labels, alarm, probability, prior)
    members = {}
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        members[cls] = [idx[groups[idx] == g] for g in np.unique(groups[idx])]
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in point}
    if members[0] and members[1]:
        for _ in range(resamples):
            rows = np.concatenate([members[cls][i] for cls in (0, 1)
                                   for i in rng.integers(len(members[cls]), size=len(members[cls]))])
            for name, value in metrics(labels[rows], alarm[rows], probability[rows], prior).items():
                draws[name].append(value)
    out = {}
    for name, value in point.items():
        values = np.asarray([v for v in draws[name] if np.isfinite(v)])
        low, high = (np.percentile(values, [2.5, 97.5]) if len(values) else (float("nan"), float("nan")))
        out[name] = {"value": value, "low": float(low), "high": float(high)}
    out["counts"] = {"forged": int((labels == 1).sum()), "authentic": int((labels == 0).sum()),
                     "forged_groups": len(members[1]), "authentic_groups": len(members[0])}
    return out
