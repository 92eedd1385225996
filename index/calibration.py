"""Open-set threshold from data: the score that impostors exceed at the target FPIR."""
from __future__ import annotations

import numpy as np


# Rows per block: memory stays at BLOCK x N floats instead of a dense N x N matrix, which a
# gallery of a million references could not hold.
BLOCK_ROWS = 4096
# ... and at most this many similarities per block (128 MB of float32): 4,096 rows against a
# million references would be 16 GB in every process that calibrates.
BLOCK_ELEMENTS = 2**25
# References used as probes: every one up to this, a fixed random sample above. The scores only
# feed quantiles (the threshold at FPIR 1%, the weak-match floor at 10%), which 50,000 probes
# estimate to within a fraction of a percent, and the cost becomes probes x N instead of N x N:
# a 1M-reference gallery needs 5e10 dot products rather than 1e12.
MAX_PROBES = 50_000


def probe_rows(count: int, max_probes: int = MAX_PROBES) -> np.ndarray:
    """The rows scored as probes: all of them, or a deterministic sample (same gallery, same rows)."""
    if count <= max_probes:
        return np.arange(count)
    return np.sort(np.random.default_rng(count).choice(count, max_probes, replace=False))


def _best_scores(embeddings: np.ndarray, identity_ids: np.ndarray, same_identity: bool, max_probes: int,
                 targets: np.ndarray | None = None, target_ids: np.ndarray | None = None) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float32)
    identity_ids = np.asarray(identity_ids)
    # Targets default to the references themselves; then a probe must not match itself.
    own_targets = targets is None
    targets = embeddings if own_targets else np.asarray(targets, dtype=np.float32)
    target_ids = identity_ids if own_targets else np.asarray(target_ids)
    probes = probe_rows(len(embeddings), max_probes)
    best = np.empty(len(probes), dtype=np.float32)
    block = max(1, min(BLOCK_ROWS, BLOCK_ELEMENTS // max(1, len(targets))))
    for start in range(0, len(probes), block):
        rows = probes[start:start + block]
        similarity = embeddings[rows] @ targets.T
        same = identity_ids[rows, None] == target_ids[None, :]
        if same_identity:
            if own_targets:
                same[np.arange(len(rows)), rows] = False  # not itself
            similarity[~same] = -np.inf
        else:
            similarity[same] = -np.inf
        best[start:start + len(rows)] = similarity.max(axis=1)
    return best


def best_other_identity_scores(embeddings: np.ndarray, identity_ids: np.ndarray,
                               max_probes: int = MAX_PROBES, targets: np.ndarray | None = None,
                               target_ids: np.ndarray | None = None) -> np.ndarray:
    """For each probe reference (every reference up to max_probes; see probe_rows), the best
    cosine to any reference of another identity: its score as an impostor when its own identity
    is held out of the gallery (leave-one-identity-out). ``targets`` / ``target_ids`` score the
    probes against other vectors instead (e.g. per-identity centroids)."""
    return _best_scores(embeddings, identity_ids, same_identity=False, max_probes=max_probes,
                        targets=targets, target_ids=target_ids)


def best_same_identity_scores(embeddings: np.ndarray, identity_ids: np.ndarray,
                              max_probes: int = MAX_PROBES) -> np.ndarray:
    """Best cosine to another reference of the same identity (leave-one-out genuine score), for
    the same probe rows."""
    return _best_scores(embeddings, identity_ids, same_identity=True, max_probes=max_probes)


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
