"""Ways to score a probe against a gallery identity, measured side by side (jobs.compare_scoring):
flip test-time augmentation, aggregation over an identity's references (max, mean of the top 2,
centroid, quality-weighted centroid) and per-identity cohort z-normalisation. Each variant's
threshold is set on the impostor cohort at the target FPIR, as build_gallery does, and checked on
probes the cohort never saw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.calibration import threshold_at_fpir
from vipwatch.evaluation.face_embeddings import FaceSet
from vipwatch.evaluation.identification import OpenSetScores, fpir_at, point_metrics, tpir_at


@dataclass(frozen=True)
class Variant:
    name: str
    aggregation: str = "max"  # max | top2 | centroid | centroid_quality
    flip: bool = False
    znorm: bool = False


VARIANTS = (
    Variant("max (production)"),
    Variant("max + flip", flip=True),
    Variant("mean of top 2", aggregation="top2"),
    Variant("centroid", aggregation="centroid"),
    Variant("quality-weighted centroid", aggregation="centroid_quality"),
    Variant("max + cohort z-norm", znorm=True),
    Variant("max + flip + z-norm", flip=True, znorm=True),
    Variant("centroid + flip", aggregation="centroid", flip=True),
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


def evaluate_variant(variant: Variant, references: FaceSet, reference_ids: np.ndarray, probes: FaceSet,
                     probe_people: np.ndarray, cohort: FaceSet, target_fpir: float = 0.01) -> dict:
    identities = sorted(set(reference_ids.tolist()))
    refs = vectors(references, variant.flip)
    weights = quality(references)
    probe_scores = identity_scores(vectors(probes, variant.flip), refs, reference_ids, identities,
                                   variant.aggregation, weights)
    cohort_scores = identity_scores(vectors(cohort, variant.flip), refs, reference_ids, identities,
                                    variant.aggregation, weights)
    if variant.znorm:
        mean, std = cohort_scores.mean(axis=0), np.maximum(cohort_scores.std(axis=0), 1e-6)
        probe_scores = (probe_scores - mean) / std
        cohort_scores = (cohort_scores - mean) / std
    threshold = threshold_at_fpir(cohort_scores.max(axis=1), target_fpir)
    top = probe_scores.argmax(axis=1)
    top_identity = np.asarray(identities, dtype=object)[top]
    top_score = probe_scores[np.arange(len(top)), top]
    mated = np.isin(probe_people, identities)
    scores = OpenSetScores(probe_people[mated], top_identity[mated], top_score[mated], probe_people[~mated],
                           top_score[~mated])
    return {"variant": variant.name, **point_metrics(scores, None),
            "fpir_at_cohort_threshold": fpir_at(scores, threshold), "tpir_at_cohort_threshold": tpir_at(scores, threshold),
            "mated": int(mated.sum()), "nonmated": int((~mated).sum())}
