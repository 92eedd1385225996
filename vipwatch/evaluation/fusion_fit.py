"""Fit the forgery fusion on scored, labelled faces, with a stated prior.

Each head is a logistic regression on standardised features with balanced class weights, so
its raw output is P(forgery) at a 50% forgery share whatever the mix of the fitting rows. The
intercept is then moved by the log prior odds, logit(prior) - logit(0.5) (Bayes' rule for a
change of base rate: the likelihood ratio the features carry is unchanged), so the shipped
``forgery_score`` is P(forgery) at the crawl's expected forgery share ``prior``. The verdict
threshold is the score that at most ``target_fpr`` of the head's authentic fitting faces reach.
"""
from __future__ import annotations

import copy
import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from core.schema import VERDICT_SUSPECTED, VERDICT_UNVERIFIED
from index import calibration
from operators.forgery.fusion import FusionModel, Head, feature_value, fusion_version
from operators.forgery.identity_signal import SIGNALS

ARTEFACT_PREFIX = "artefact:"
# A signal present on fewer of a head's rows is left out of that head.
MIN_FEATURE_SHARE = 0.2


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
             threshold_rows: np.ndarray | None = None, regularisation: float = 1.0) -> tuple[Head | None, dict]:
    """One head. A row lacking a feature (e.g. deficits of a weak candidate, artefacts of a face
    too small to judge) takes the feature's mean over the rows that have it, at fit and at
    scoring time. The threshold is set on the authentic rows among ``threshold_rows`` (default:
    all): the rows the head will judge."""
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
    judged = np.ones(len(frame), bool) if threshold_rows is None else np.asarray(threshold_rows, bool)
    if not (judged & (labels == 0)).any():
        judged = np.ones(len(frame), bool)
    authentic = probabilities[judged & (labels == 0)]
    head.threshold = calibration.threshold_at_fpir(authentic, target_fpr)
    return head, {"rows": int(len(frame)), "authentic": int((labels == 0).sum()), "forged": int((labels == 1).sum()),
                  "threshold_authentic_rows": int(len(authentic)),
                  "false_alarm_rate_at_threshold": calibration.rate_at(authentic, head.threshold),
                  "detection_rate_at_threshold": calibration.rate_at(probabilities[labels == 1], head.threshold)}


def identity_features(frame: pd.DataFrame) -> list[str]:
    """The scorer's identity signals in the frame, less the raw similarities (the deficits, gaps
    and cohort z-scores standardise the same cosines per VIP)."""
    return [c for c in SIGNALS if c in frame and not c.endswith("_similarity")]


def fit_fusion(frame: pd.DataFrame, prior: float = 0.01, target_fpr: float = 0.005,
               metadata: dict | None = None) -> FusionModel:
    """``frame``: one row per scored face with ``label``, ``vip`` (the scorer found a VIP
    candidate) and one column per signal. vip head: identity + artefact signals on vip rows;
    generic head: artefact signals on the faces an artefact detector judged, its threshold set on
    those without a VIP candidate (the faces it judges in the scorer)."""
    artefacts = sorted(c for c in frame.columns if c.startswith(ARTEFACT_PREFIX))
    vip = frame["vip"].to_numpy(bool)
    vip_rows = frame[vip]
    judged = frame[artefacts].notna().any(axis=1).to_numpy() if artefacts else np.zeros(len(frame), bool)
    heads, fits = {}, {}
    for name, rows, candidates, threshold_rows in (
            ("vip", vip_rows, identity_features(frame) + artefacts, None),
            ("generic", frame[judged], artefacts, ~vip[judged])):
        head, fits[name] = fit_head(rows, usable_features(rows, candidates), prior, target_fpr, threshold_rows)
        if head is not None:
            heads[name] = head
    if not heads:
        raise ValueError(f"nothing to fit: {fits}")
    payload = {k: vars(h) for k, h in heads.items()}
    info = {"created_at": datetime.now(timezone.utc).isoformat(), "prior": prior,
            "prior_shift": prior_shift(prior), "target_fpr": target_fpr, "fits": fits,
            "recipe": "logistic regression per head, balanced class weights, standardised features, a missing "
                      "feature takes its fitting mean; intercept + logit(prior) - logit(0.5); threshold at "
                      "target_fpr on the authentic faces the head judges",
            **(metadata or {})}
    return FusionModel(heads=heads, version=fusion_version({**payload, "prior": prior}), metadata=info)


def row_signals(frame: pd.DataFrame) -> list[dict[str, float]]:
    columns = [c for c in frame.columns if c.startswith((ARTEFACT_PREFIX, "quality:")) or c in SIGNALS]
    return [{k: float(v) for k, v in zip(columns, row) if pd.notna(v)}
            for row in frame[columns].itertuples(index=False, name=None)]


def apply(fusion, frame: pd.DataFrame, scorer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, flagged, judged) per row: ``fusion`` put in ``scorer``'s place and its own ``fuse``
    run on the signals and VIP candidates the scorer wrote, so the benchmark's verdicts follow
    the scorer's rules (which faces a head judges, when a face is unverified)."""
    swapped = copy.copy(scorer)
    swapped.fusion = fusion
    vip = [v if isinstance(v, str) else None for v in frame["forgery_identity_id"]]
    scores, verdicts, _ = swapped.fuse(vip, row_signals(frame))
    verdicts = np.asarray(verdicts)
    return np.asarray(scores, np.float64), verdicts == VERDICT_SUSPECTED, verdicts != VERDICT_UNVERIFIED


def predict(fusion: FusionModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(score, threshold) per row from the head its ``vip`` flag selects (NaN where that head is
    missing), without the scorer's judged / unverified rules."""
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
