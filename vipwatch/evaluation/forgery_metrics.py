"""Detection metrics for forgery scores (label 1 = fake, higher score = more likely fake)."""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """Where the false-alarm rate equals the miss rate, interpolated between ROC points."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fnr - fpr
    for k in range(1, len(diff)):
        if diff[k] == 0:
            return float(fpr[k])
        if diff[k - 1] > 0 > diff[k]:
            t = diff[k - 1] / (diff[k - 1] - diff[k])
            return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))
    return float(fpr[int(np.argmin(np.abs(diff)))])


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, target_fpr: float = 0.01) -> float:
    """Best detection rate among thresholds whose false-alarm rate is at most target_fpr."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= target_fpr + 1e-12].max())


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-width probability bins of |mean label - mean probability| x bin share."""
    probabilities = np.clip(np.asarray(probabilities, np.float64), 0, 1)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(total)


def report(labels, scores, probability: bool) -> dict:
    labels = np.asarray(labels, np.int64)
    scores = np.asarray(scores, np.float64)
    keep = np.isfinite(scores)
    labels, scores = labels[keep], scores[keep]
    out = {"real": int((labels == 0).sum()), "fake": int((labels == 1).sum())}
    if out["real"] == 0 or out["fake"] == 0:
        return {**out, "auc": None, "eer": None, "tpr_at_fpr_1pct": None, "ece": None}
    return {**out, "auc": float(roc_auc_score(labels, scores)), "eer": equal_error_rate(labels, scores),
            "tpr_at_fpr_1pct": tpr_at_fpr(labels, scores, 0.01),
            "ece": expected_calibration_error(labels, scores) if probability else None}


def fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.3f}" if isinstance(value, float) else str(value))
