"""Fit the forgery fusion on scored, labelled faces, with a stated prior.

Each head is a logistic regression on standardised features with balanced class weights, so
its raw output is P(forgery) at a 50% forgery share whatever the mix of the fitting rows. The
intercept is then moved by the log prior odds, logit(prior) - logit(0.5) (Bayes' rule for a
change of base rate: the likelihood ratio the features carry is unchanged), so the shipped
``forgery_score`` is P(forgery) at the crawl's expected forgery share ``prior``. The verdict
threshold is the score that at most ``target_fpr`` of the head's authentic fitting faces reach.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from index import calibration
from operators.forgery.fusion import FusionModel, Head, feature_value, fusion_version

ARTEFACT_PREFIX = "artefact:"
# Identity signals the vip head may use: deficits and the gap (the raw similarities are the same
# information before standardisation by X's spread).
IDENTITY_FEATURES = ("identity_deficit", "inner_whole_gap", "context_deficit")
MIN_FEATURE_SHARE = 0.5


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def prior_shift(prior: float, training_share: float = 0.5) -> float:
    """What to add to a logit fitted at ``training_share`` forgeries to read it at ``prior``."""
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior}")
    return logit(prior) - logit(training_share)


def feature_rows(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Model-space features (artefact log-odds, clipped identity values); NaN where missing."""
    x = np.full((len(frame), len(features)), np.nan)
    for j, name in enumerate(features):
        values = frame[name].to_numpy(np.float64) if name in frame else np.full(len(frame), np.nan)
        x[:, j] = [feature_value(name, v) if np.isfinite(v) else np.nan for v in values]
    return x


def usable_features(frame: pd.DataFrame, candidates: list[str]) -> list[str]:
    return [f for f in candidates if f in frame and frame[f].notna().mean() >= MIN_FEATURE_SHARE]


def fit_head(frame: pd.DataFrame, features: list[str], prior: float, target_fpr: float,
             regularisation: float = 1.0) -> tuple[Head | None, dict]:
    labels = frame["label"].to_numpy(np.int64)
    if len(set(labels)) < 2 or not features:
        return None, {"rows": int(len(frame)), "skipped": "needs authentic and forged rows and one signal"}
    x = feature_rows(frame, features)
    fill = np.nanmean(x, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    x = np.where(np.isfinite(x), x, fill)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, labels)
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - (model.coef_[0] * mean / scale).sum()) + prior_shift(prior)
    head = Head(features=list(features), coef=coef.tolist(), intercept=intercept, threshold=0.5, fill=fill.tolist())
    probabilities = head.predict_matrix(x)
    authentic = probabilities[labels == 0]
    head.threshold = calibration.threshold_at_fpir(authentic, target_fpr)
    return head, {"rows": int(len(frame)), "authentic": int((labels == 0).sum()), "forged": int((labels == 1).sum()),
                  "false_alarm_rate_at_threshold": calibration.rate_at(authentic, head.threshold),
                  "detection_rate_at_threshold": calibration.rate_at(probabilities[labels == 1], head.threshold)}


def fit_fusion(frame: pd.DataFrame, prior: float = 0.01, target_fpr: float = 0.005,
               metadata: dict | None = None) -> FusionModel:
    """``frame``: one row per scored face with ``label``, ``vip`` (the scorer found a VIP
    candidate) and one column per signal. vip head: identity + artefact signals on vip rows;
    generic head: artefact signals on every row."""
    artefacts = sorted(c for c in frame.columns if c.startswith(ARTEFACT_PREFIX))
    vip_rows = frame[frame["vip"].astype(bool)]
    heads, fits = {}, {}
    for name, rows, candidates in (("vip", vip_rows, list(IDENTITY_FEATURES) + artefacts),
                                   ("generic", frame, artefacts)):
        head, fits[name] = fit_head(rows, usable_features(rows, candidates), prior, target_fpr)
        if head is not None:
            heads[name] = head
    if not heads:
        raise ValueError(f"nothing to fit: {fits}")
    payload = {k: vars(h) for k, h in heads.items()}
    info = {"created_at": datetime.now(timezone.utc).isoformat(), "prior": prior,
            "prior_shift": prior_shift(prior), "target_fpr": target_fpr, "fits": fits,
            "recipe": "logistic regression, balanced class weights, standardised features; intercept + "
                      "logit(prior) - logit(0.5); threshold at target_fpr on the head's authentic rows",
            **(metadata or {})}
    return FusionModel(heads=heads, version=fusion_version({**payload, "prior": prior}), metadata=info)


def predict(fusion, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(score, threshold) per row as the scorer would give them: vip head on vip rows, generic
    head on the others (NaN where the head is missing)."""
    scores = np.full(len(frame), np.nan)
    thresholds = np.full(len(frame), np.nan)
    vip = frame["vip"].to_numpy(bool)
    for is_vip in (True, False):
        head = fusion.head(is_vip)
        rows = np.flatnonzero(vip == is_vip)
        if head is None or not len(rows):
            continue
        scores[rows] = head.predict_matrix(feature_rows(frame.iloc[rows], head.features))
        thresholds[rows] = head.threshold
    return scores, thresholds
