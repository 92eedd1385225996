"""Open-set threshold from data: the score that impostors exceed at the target FPIR."""
from __future__ import annotations

import numpy as np


# Rows per block: memory stays at BLOCK x N floats instead of a dense N x N matrix, which a
# gallery of a million references could not hold.
BLOCK_ROWS = 4096


def _best_scores(embeddings: np.ndarray, identity_ids: np.ndarray, same_identity: bool) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float32)
    identity_ids = np.asarray(identity_ids)
    best = np.empty(len(embeddings), dtype=np.float32)
    for start in range(0, len(embeddings), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(embeddings))
        similarity = embeddings[start:stop] @ embeddings.T
        same = identity_ids[start:stop, None] == identity_ids[None, :]
        if same_identity:
            same[np.arange(stop - start), np.arange(start, stop)] = False  # not itself
            similarity[~same] = -np.inf
        else:
            similarity[same] = -np.inf
        best[start:stop] = similarity.max(axis=1)
    return best


def best_other_identity_scores(embeddings: np.ndarray, identity_ids: np.ndarray) -> np.ndarray:
    """For each reference, the best cosine to any reference of another identity: its score as an
    impostor when its own identity is held out of the gallery (leave-one-identity-out)."""
    return _best_scores(embeddings, identity_ids, same_identity=False)


def best_same_identity_scores(embeddings: np.ndarray, identity_ids: np.ndarray) -> np.ndarray:
    """Best cosine to another reference of the same identity (leave-one-out genuine score)."""
    return _best_scores(embeddings, identity_ids, same_identity=True)


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
