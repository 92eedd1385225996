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

from core.schema import VERDICT_SUSPECTED, VERDICT_UNVERIFIED
from index import calibration
from operators.forgery.base import is_generic
from operators.forgery.fusion import PRESENT, FusionModel, Head, feature_value, fusion_version
from operators.forgery.identity_signal import SIGNALS
from operators.forgery.pack_identity import SECOND_PACK_PREFIX
from operators.forgery.scorer import fuse_signals
from core.config import ForgeryConfig

# A signal present on fewer of a head's rows is left out of that head.
MIN_FEATURE_SHARE = 0.2
# The verdict threshold keeps its false-alarm promise in this share of group resamples.
THRESHOLD_CONFIDENCE = 0.9


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def prior_shift(prior: float, training_share: float = 0.5) -> float:
    """What to add to a logit fitted at ``training_share`` forgeries to read it at ``prior``."""
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior}")
    return logit(prior) - logit(training_share)


# Prefix of a second model pack's identity signals on the same face (ForgeryConfig.second_pack;
# vipwatch/evaluation/pack_ensemble.py pairs two benchmark runs the same way).
SECOND_PACK = SECOND_PACK_PREFIX


def feature_rows(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Model-space features (artefact log-odds, clipped identity values); NaN where missing."""
    x = np.full((len(frame), len(features)), np.nan)
    for j, name in enumerate(features):
        if name.startswith(PRESENT):
            signal = name[len(PRESENT):]
            x[:, j] = frame[signal].notna().to_numpy(np.float64) if signal in frame else 0.0
            continue
        values = frame[name].to_numpy(np.float64) if name in frame else np.full(len(frame), np.nan)
        x[:, j] = [feature_value(name, v) if np.isfinite(v) else np.nan for v in values]
    return x


def usable_features(frame: pd.DataFrame, candidates: list[str]) -> list[str]:
    """Signals present on at least MIN_FEATURE_SHARE of the rows, plus one ``present:`` indicator
    per distinct pattern of missing values among them (signals missing together share one)."""
    features = [f for f in candidates if f in frame and frame[f].notna().mean() >= MIN_FEATURE_SHARE]
    patterns = {}
    for f in features:
        present = frame[f].notna().to_numpy()
        if not present.all():
            patterns.setdefault(present.tobytes(), f)
    return features + [PRESENT + f for f in patterns.values()]


def expected_sign(name: str) -> int:
    """+1: a higher value may only raise P(forgery); -1: only lower it; 0: free. Artefact scores,
    identity deficits and inner-vs-whole/outer gaps point to forgery; a whole face more like X
    than X's impostor cohort points away from it. Without the constraint a fit learnt from few
    identities gave identity_cohort_z a positive weight (reenactments keep X's identity) and
    flagged another side's authentic Obama photos, whose faces match X the most."""
    if name.startswith(SECOND_PACK):  # the same signal from a second pack's embedder (pack_ensemble)
        name = name[len(SECOND_PACK):]
    if name.startswith(PRESENT) or name == "inner_cohort_z":
        return 0
    if is_generic(name) or name.endswith(("_deficit", "_gap")):
        return 1
    if name == "identity_cohort_z" or name.endswith("_similarity"):
        return -1
    return 0


def sign_constrained_logistic(x: np.ndarray, labels: np.ndarray, signs: list[int], regularisation: float):
    """Class-balanced L2 logistic regression on standardised x whose coefficients keep ``signs``
    (L-BFGS-B with bounds). Returns (coef, intercept)."""
    from scipy.optimize import minimize

    weights = np.where(labels == 1, 0.5 / max((labels == 1).mean(), 1e-12), 0.5 / max((labels == 0).mean(), 1e-12))
    y = labels * 2.0 - 1.0

    def loss(theta):
        w, b = theta[:-1], theta[-1]
        margin = y * (x @ w + b)
        value = (weights * np.logaddexp(0, -margin)).sum() + 0.5 * (w @ w) / regularisation
        grad_margin = -weights * y / (1 + np.exp(margin))
        return value, np.append(x.T @ grad_margin + w / regularisation, grad_margin.sum())

    bounds = [(0, None) if s > 0 else (None, 0) if s < 0 else (None, None) for s in signs] + [(None, None)]
    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:-1], float(result.x[-1])


def robust_threshold(scores: np.ndarray, groups: np.ndarray, target_fpr: float, confidence: float,
                     resamples: int = 200, seed: int = 0) -> float:
    """The score that at most ``target_fpr`` of authentic faces reach in ``confidence`` of
    bootstrap resamples of their groups: photos of one person (or frames of one video) are not
    independent, and a threshold at the plain quantile broke its promise on other people."""
    point = calibration.threshold_at_fpir(scores, target_fpr)
    if confidence <= 0 or len(np.unique(groups)) < 2:
        return point
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    thresholds = [calibration.threshold_at_fpir(scores[np.concatenate([members[i] for i in rng.integers(
        len(members), size=len(members))])], target_fpr) for _ in range(resamples)]
    return float(max(point, np.quantile(thresholds, confidence)))


def fit_head(frame: pd.DataFrame, features: list[str], prior: float, target_fpr: float,
             threshold_rows: np.ndarray | None = None, regularisation: float = 1.0,
             confidence: float = THRESHOLD_CONFIDENCE) -> tuple[Head | None, dict]:
    """One head. A row lacking a feature (e.g. deficits of a weak candidate, artefacts of a face
    too small to judge) takes the feature's mean over the rows that have it, at fit and at
    scoring time. The threshold is set on the authentic rows among ``threshold_rows`` (default:
    all): the rows the head will judge."""
    labels = frame["label"].to_numpy(np.int64)
    if len(set(labels)) < 2 or not features:
        return None, {"rows": int(len(frame)), "skipped": "needs authentic and forged rows and one signal"}
    signals = [f for f in features if not f.startswith(PRESENT)]
    indicators = [f[len(PRESENT):] for f in features if f.startswith(PRESENT)]
    columns = signals + [PRESENT + s for s in indicators]
    x = feature_rows(frame, columns)
    fill = np.nanmean(x, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    x = np.where(np.isfinite(x), x, fill)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    raw_coef, raw_intercept = sign_constrained_logistic((x - mean) / scale, labels,
                                                        [expected_sign(f) for f in columns], regularisation)
    coef = raw_coef / scale
    intercept = raw_intercept - float((raw_coef * mean / scale).sum()) + prior_shift(prior)
    head = Head(features=signals, coef=coef.tolist(), intercept=intercept, threshold=0.5, fill=fill.tolist(),
                indicators=indicators)
    probabilities = head.predict_matrix(x)
    judged = np.ones(len(frame), bool) if threshold_rows is None else np.asarray(threshold_rows, bool)
    if not (judged & (labels == 0)).any():
        judged = np.ones(len(frame), bool)
    authentic_rows = judged & (labels == 0)
    authentic = probabilities[authentic_rows]
    groups = frame["group"].to_numpy()[authentic_rows] if "group" in frame else np.arange(len(authentic))
    head.threshold = robust_threshold(authentic, groups, target_fpr, confidence)
    return head, {"rows": int(len(frame)), "authentic": int((labels == 0).sum()), "forged": int((labels == 1).sum()),
                  "threshold_authentic_rows": int(len(authentic)),
                  "threshold_authentic_groups": int(len(np.unique(groups))),
                  "point_threshold": calibration.threshold_at_fpir(authentic, target_fpr),
                  "false_alarm_rate_at_threshold": calibration.rate_at(authentic, head.threshold),
                  "detection_rate_at_threshold": calibration.rate_at(probabilities[labels == 1], head.threshold)}


def identity_features(frame: pd.DataFrame) -> list[str]:
    """The scorer's identity signals in the frame, less the raw similarities (the deficits, gaps
    and cohort z-scores standardise the same cosines per VIP)."""
    names = [c for c in SIGNALS if not c.endswith("_similarity")]
    return [c for c in names if c in frame] + [SECOND_PACK + c for c in names if SECOND_PACK + c in frame]


HEADS = ("vip", "generic")


def fit_fusion(frame: pd.DataFrame, prior: float = 0.01, target_fpr: float = 0.005,
               metadata: dict | None = None, heads_to_fit: tuple[str, ...] = HEADS) -> FusionModel:
    """``frame``: one row per scored face with ``label``, ``vip`` (the scorer found a VIP
    candidate) and one column per signal. vip head: identity + generic signals (artefact
    detectors', region consistency) on vip rows; generic head: generic signals on the faces one
    of them judged, its threshold set on those without a VIP candidate (the faces it judges in
    the scorer). ``heads_to_fit`` ("vip",): no generic head, so a face without a VIP candidate
    stays unverified (generic signals then only add to the vip head's evidence)."""
    generic = sorted(c for c in frame.columns if is_generic(c))
    vip = frame["vip"].to_numpy(bool)
    vip_rows = frame[vip]
    judged = frame[generic].notna().any(axis=1).to_numpy() if generic else np.zeros(len(frame), bool)
    heads, fits = {}, {}
    for name, rows, candidates, threshold_rows in (
            ("vip", vip_rows, identity_features(frame) + generic, None),
            ("generic", frame[judged], generic, ~vip[judged])):
        if name not in heads_to_fit:
            continue
        head, fits[name] = fit_head(rows, usable_features(rows, candidates), prior, target_fpr, threshold_rows)
        if head is not None:
            heads[name] = head
    if not heads:
        raise ValueError(f"nothing to fit: {fits}")
    payload = {k: vars(h) for k, h in heads.items()}
    info = {"created_at": datetime.now(timezone.utc).isoformat(), "prior": prior,
            "prior_shift": prior_shift(prior), "target_fpr": target_fpr, "fits": fits,
            "heads_fitted": list(heads_to_fit),
            "recipe": "logistic regression per head (L2, coefficients sign-constrained where the signal's direction "
                      "is known: fusion_fit.expected_sign), balanced class weights, standardised features, a missing "
                      "signal takes its fitting mean and a present: indicator per missingness pattern; intercept "
                      "+ logit(prior) - logit(0.5); threshold: at most target_fpr of the authentic faces the "
                      f"head judges reach it in {THRESHOLD_CONFIDENCE:.0%} of bootstrap resamples of their groups",
            **(metadata or {})}
    return FusionModel(heads=heads, version=fusion_version({**payload, "prior": prior}), metadata=info)


def row_signals(frame: pd.DataFrame) -> list[dict[str, float]]:
    columns = [c for c in frame.columns if is_generic(c) or c.startswith("quality:") or c in SIGNALS]
    return [{k: float(v) for k, v in zip(columns, row) if pd.notna(v)}
            for row in frame[columns].itertuples(index=False, name=None)]


def apply(fusion, frame: pd.DataFrame, config: ForgeryConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, flagged, judged) per row: ``fusion`` run through the scorer's own rules
    (scorer.fuse_signals: which faces a head judges, when a face is unverified) on the signals
    and VIP candidates a scorer with ``config`` wrote."""
    vip = [v if isinstance(v, str) else None for v in frame["forgery_identity_id"]]
    scores, verdicts, _ = fuse_signals(fusion, vip, row_signals(frame), config.generic_verdicts)
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
        scores[rows] = head.predict_matrix(feature_rows(frame.iloc[rows], head.columns))
        thresholds[rows] = head.threshold
    return scores, thresholds
