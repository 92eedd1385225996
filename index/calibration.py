"""Open-set threshold from data: the score that impostors exceed at the target FPIR."""
from __future__ import annotations

import numpy as np


def best_other_identity_scores(embeddings: np.ndarray, identity_ids: np.ndarray) -> np.ndarray:
    """For each reference, the best cosine to any reference of another identity: its score as an
    impostor when its own identity is held out of the gallery (leave-one-identity-out)."""
    similarity = embeddings @ embeddings.T
    same = identity_ids[:, None] == identity_ids[None, :]
    similarity[same] = -np.inf
    return similarity.max(axis=1)


def best_same_identity_scores(embeddings: np.ndarray, identity_ids: np.ndarray) -> np.ndarray:
    """Best cosine to another reference of the same identity (leave-one-out genuine score)."""
    similarity = embeddings @ embeddings.T
    same = identity_ids[:, None] == identity_ids[None, :]
    np.fill_diagonal(same, False)
    similarity[~same] = -np.inf
    return similarity.max(axis=1)


def threshold_at_fpir(impostor_scores: np.ndarray, target_fpir: float) -> float:
    """Smallest threshold t with P(impostor best score >= t) <= target_fpir."""
    # Scores are float32 (FAISS); step in float32 so that the threshold is not cast back onto a tie.
    scores = np.sort(np.asarray(impostor_scores, dtype=np.float32))
    if len(scores) == 0:
        raise ValueError("no impostor scores to calibrate the threshold with")
    allowed = int(np.floor(target_fpir * len(scores)))
    # Strictly above the (allowed+1)-th highest impostor score.
    boundary = scores[len(scores) - allowed - 1]
    return float(np.nextafter(boundary, np.float32(np.inf)))


def rate_at(scores: np.ndarray, threshold: float) -> float:
    scores = np.asarray(scores)
    scores = scores[np.isfinite(scores)]
    return float((scores >= threshold).mean()) if len(scores) else float("nan")
