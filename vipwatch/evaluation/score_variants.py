"""Ways to score a probe against a gallery identity, measured side by side (jobs.compare_scoring):
flip test-time augmentation, aggregation over an identity's references (max, mean of the top 2,
centroid, quality-weighted centroid), per-identity cohort z-normalisation, probe-side adaptive
T-norm (the probe's own top cohort scores) and per-identity thresholds. Each variant's threshold is
set on the impostor cohort at the target FPIR, as build_gallery does, and checked on probes the
cohort never saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from index.calibration import threshold_at_fpir
from index.cohort import clopper_pearson
from vipwatch.evaluation.face_embeddings import FaceSet
from vipwatch.evaluation.identification import OpenSetScores, bootstrap_by_person, fpir_at, point_metrics, tpir_at

# Cosines per block when scoring probes against the cohort (32 MB of float32).
BLOCK_ELEMENTS = 2**23


@dataclass(frozen=True)
class Variant:
    name: str
    aggregation: str = "max"  # max | top2 | centroid | centroid_quality
    flip: bool = False
    znorm: bool = False
    # Adaptive T-norm: each score standardised by the mean / std of the probe's own `tnorm_top`
    # highest cosines to the cohort, so a probe that resembles many people needs more to match.
    tnorm_top: int = 0
    # One threshold per identity (the same per-identity rate for all, set so that the cohort's
    # open-set FPIR stays at the target): an identity that many cohort faces resemble gets a higher bar.
    per_identity: bool = False


VARIANTS = (
    Variant("max (production)"),
    Variant("max + flip", flip=True),
    Variant("mean of top 2", aggregation="top2"),
    Variant("centroid", aggregation="centroid"),
    Variant("quality-weighted centroid", aggregation="centroid_quality"),
    Variant("max + cohort z-norm", znorm=True),
    Variant("max + flip + z-norm", flip=True, znorm=True),
    Variant("centroid + flip", aggregation="centroid", flip=True),
    Variant("max + per-identity thresholds", per_identity=True),
    Variant("max + probe T-norm (top 200)", tnorm_top=200),
    Variant("max + probe T-norm (top 200) + per-identity", tnorm_top=200, per_identity=True),
)


def vectors(faces: FaceSet, flip: bool) -> np.ndarray:
    v = faces.embedding + faces.flip_embedding if flip else faces.embedding
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def quality(faces: FaceSet) -> np.ndarray:
    """Detector confidence times how far the face is from too small to embed well (80 px)."""
    return np.clip(faces.det_score, 0.05, 1.0) * np.clip(faces.face_px / 80.0, 0.1, 1.0)


def identity_scores(probes: np.ndarray, references: np.ndarray, reference_ids: np.ndarray, identities: list[str],
                    aggregation: str, weights: np.ndarray) -> np.ndarray:
    """(probes x identities) scores."""
    result = np.empty((len(probes), len(identities)), np.float32)
    for column, identity in enumerate(identities):
        own = reference_ids == identity
        refs = references[own]
        if aggregation in ("centroid", "centroid_quality"):
            w = weights[own] if aggregation == "centroid_quality" else np.ones(own.sum())
            centroid = (refs * w[:, None]).sum(0)
            result[:, column] = probes @ (centroid / max(np.linalg.norm(centroid), 1e-12))
            continue
        similarity = probes @ refs.T
        if aggregation == "top2" and similarity.shape[1] >= 2:
            result[:, column] = np.sort(similarity, axis=1)[:, -2:].mean(axis=1)
        else:
            result[:, column] = similarity.max(axis=1)
    return result


def top_cohort_statistics(probes: np.ndarray, cohort: np.ndarray, top: int, probe_people: Optional[np.ndarray] = None,
                          cohort_people: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each probe's ``top`` highest cosines to the cohort. With people given, cohort
    faces of the probe's own person are left out (a cohort face must not normalise by itself)."""
    top = min(top, len(cohort))
    mean = np.empty(len(probes), np.float32)
    std = np.empty(len(probes), np.float32)
    block = max(1, BLOCK_ELEMENTS // max(1, len(cohort)))
    for start in range(0, len(probes), block):
        similarity = probes[start:start + block] @ cohort.T
        if probe_people is not None and cohort_people is not None:
            similarity[probe_people[start:start + block, None] == cohort_people[None, :]] = -np.inf
        best = -np.partition(-similarity, top - 1, axis=1)[:, :top]
        best = np.where(np.isfinite(best), best, np.nan)
        mean[start:start + block] = np.nanmean(best, axis=1)
        std[start:start + block] = np.nanstd(best, axis=1)
    return mean, np.maximum(std, 1e-6)


def open_set_fpir(scores: np.ndarray, thresholds: np.ndarray) -> float:
    """Share of probes (rows of probes x identities scores) whose best identity reaches its own threshold."""
    top = scores.argmax(axis=1)
    return float((scores[np.arange(len(top)), top] >= thresholds[top]).mean())


def per_identity_thresholds(cohort_scores: np.ndarray, target_fpir: float, steps: int = 30) -> tuple[np.ndarray, float]:
    """One threshold per identity (column): each at the same per-identity rate alpha of the cohort's
    scores against that identity, alpha the largest (bisection) whose open-set FPIR on the cohort
    (best identity at or above its own threshold) is at most ``target_fpir``. Returns (thresholds, alpha)."""
    def thresholds(alpha: float) -> np.ndarray:
        return np.asarray([threshold_at_fpir(cohort_scores[:, column], alpha)
                           for column in range(cohort_scores.shape[1])], np.float32)

    low, high = 0.0, target_fpir
    if open_set_fpir(cohort_scores, thresholds(high)) <= target_fpir:
        low = high
    for _ in range(0 if low == high else steps):
        middle = (low + high) / 2
        low, high = (middle, high) if open_set_fpir(cohort_scores, thresholds(middle)) <= target_fpir else (low, middle)
    return thresholds(low), low


def evaluate_variant(variant: Variant, references: FaceSet, reference_ids: np.ndarray, probes: FaceSet,
                     probe_people: np.ndarray, cohort: FaceSet, target_fpir: float = 0.01,
                     cohort_people: Optional[np.ndarray] = None, probe_sets: Optional[np.ndarray] = None,
                     rounds: int = 0) -> dict:
    """``probe_sets`` names each probe's set (e.g. aligned crops / photos) for per-set FPIR at the
    cohort threshold; ``cohort_people`` leaves a cohort face's own person out of its T-norm."""
    identities = sorted(set(reference_ids.tolist()))
    refs = vectors(references, variant.flip)
    weights = quality(references)
    probe_vectors, cohort_vectors = vectors(probes, variant.flip), vectors(cohort, variant.flip)
    probe_scores = identity_scores(probe_vectors, refs, reference_ids, identities, variant.aggregation, weights)
    cohort_scores = identity_scores(cohort_vectors, refs, reference_ids, identities, variant.aggregation, weights)
    if variant.znorm:
        mean, std = cohort_scores.mean(axis=0), np.maximum(cohort_scores.std(axis=0), 1e-6)
        probe_scores = (probe_scores - mean) / std
        cohort_scores = (cohort_scores - mean) / std
    if variant.tnorm_top:
        mean, std = top_cohort_statistics(probe_vectors, cohort_vectors, variant.tnorm_top)
        probe_scores = (probe_scores - mean[:, None]) / std[:, None]
        mean, std = top_cohort_statistics(cohort_vectors, cohort_vectors, variant.tnorm_top, cohort_people,
                                          cohort_people)
        cohort_scores = (cohort_scores - mean[:, None]) / std[:, None]
    if variant.per_identity:
        thresholds, alpha = per_identity_thresholds(cohort_scores, target_fpir)
    else:
        thresholds, alpha = np.full(len(identities), threshold_at_fpir(cohort_scores.max(axis=1), target_fpir)), None
    top = probe_scores.argmax(axis=1)
    top_identity = np.asarray(identities, dtype=object)[top]
    # Scored as the margin over the best identity's own threshold, so one cut (0) serves every variant.
    top_score = probe_scores[np.arange(len(top)), top] - thresholds[top]
    mated = np.isin(probe_people, identities)
    scores = OpenSetScores(probe_people[mated], top_identity[mated], top_score[mated], probe_people[~mated],
                           top_score[~mated])
    result = {"variant": variant.name, **point_metrics(scores, None),
              "fpir_at_cohort_threshold": fpir_at(scores, 0.0), "tpir_at_cohort_threshold": tpir_at(scores, 0.0),
              "mated": int(mated.sum()), "nonmated": int((~mated).sum()),
              "thresholds": [float(thresholds.min()), float(thresholds.max())], "per_identity_rate": alpha}
    if rounds:
        result["interval_95_by_person"] = bootstrap_by_person(scores, 0.0, rounds=rounds)
    if probe_sets is not None:
        result["fpir_by_set"] = {str(name): nonmated_rates(scores.take(np.zeros(0, np.int64), np.flatnonzero(
            probe_sets[~mated] == name))) for name in np.unique(probe_sets[~mated])}
    return result


def nonmated_rates(scores: OpenSetScores, threshold: float = 0.0) -> dict:
    """False positives at ``threshold`` among non-mated probes: count, rate, Clopper-Pearson 95%, who."""
    above = scores.nonmated_top_score >= threshold
    people, counts = np.unique(scores.nonmated_person[above].astype(str), return_counts=True)
    return {"nonmated": int(len(above)), "false_positives": int(above.sum()),
            "fpir": float(above.mean()) if len(above) else None,
            "clopper_pearson_95": list(clopper_pearson(int(above.sum()), len(above))),
            "by_person": {str(p): int(c) for p, c in sorted(zip(people, counts), key=lambda x: -x[1])[:5]}}
