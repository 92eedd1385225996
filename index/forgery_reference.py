"""Reference side of the identity-aware forgery signal, stored in the gallery artefact.

Per reference (references.parquet): embeddings of its inner face and of its outer ring
(operators/forgery/face_regions.py), by the gallery's own embedder. Per identity
(identities.parquet): centroids of those, and leave-one-out statistics of how each authentic
reference scores against the centroid of the others — what a new authentic photo of X is
expected to score. Leave-one-out, because a reference inside its own centroid scores too high.
The embeddings are computed by the caller (operators.forgery.identity_signal.reference_columns);
the statistics inside Gallery.build, so every rebuild (e.g. without_identity) recomputes them.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from index.embeddings import embeddings_of

INNER_COLUMN = "forgery_inner_embedding"
OUTER_COLUMN = "forgery_outer_embedding"
# (name in identities.parquet, what is compared): "whole" is the match embedding itself.
KINDS = ("whole", "inner", "outer", "gap")
MIN_SPREAD = 0.02  # with ~10 references the std is noisy; never divide by less than this


def _vectors(references: pa.Table, column: str) -> np.ndarray:
    return embeddings_of(references, column)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _leave_one_out(vectors: np.ndarray) -> np.ndarray:
    total = vectors.sum(axis=0)
    return np.array([vectors[k] @ _unit(total - vectors[k]) for k in range(len(vectors))], np.float32)


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"median": float(np.median(values)), "spread": float(max(np.std(values), MIN_SPREAD)),
            "p05": float(np.quantile(values, 0.05)), "p95": float(np.quantile(values, 0.95))}


def identity_statistics(references: pa.Table, identity_ids: np.ndarray) -> dict[str, list]:
    """Columns for identities.parquet (same identity order as index.gallery.identity_statistics),
    or {} for a gallery enrolled without forgery embeddings."""
    if INNER_COLUMN not in references.column_names or OUTER_COLUMN not in references.column_names:
        return {}
    whole, inner, outer = (_vectors(references, c) for c in ("embedding", INNER_COLUMN, OUTER_COLUMN))
    order = sorted(set(identity_ids.tolist()))
    per_identity: dict[str, dict] = {}
    for identity in order:
        rows = identity_ids == identity
        entry = {"inner_centroid": _unit(inner[rows].mean(axis=0)), "outer_centroid": _unit(outer[rows].mean(axis=0))}
        if rows.sum() >= 2:
            loo = {"whole": _leave_one_out(whole[rows]), "inner": _leave_one_out(inner[rows]),
                   "outer": _leave_one_out(outer[rows])}
            loo["gap"] = loo["inner"] - loo["whole"]
            entry.update({kind: _summary(values) for kind, values in loo.items()})
        per_identity[identity] = entry
    # An identity with one reference has no spread of its own: borrow the median over the others.
    pooled: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        known = [e[kind] for e in per_identity.values() if kind in e]
        pooled[kind] = {k: float(np.median([s[k] for s in known])) for k in ("median", "spread", "p05", "p95")} \
            if known else {"median": 0.0, "spread": 1.0, "p05": 0.0, "p95": 0.0}
    columns: dict[str, list] = {"forgery_inner_centroid": [], "forgery_outer_centroid": [],
                                "forgery_stats_pooled": []}
    for kind in KINDS:
        for stat in ("median", "spread", "p05", "p95"):
            columns[f"forgery_{kind}_loo_{stat}"] = []
    for identity in order:
        entry = per_identity[identity]
        columns["forgery_inner_centroid"].append(entry["inner_centroid"].astype(np.float32).tolist())
        columns["forgery_outer_centroid"].append(entry["outer_centroid"].astype(np.float32).tolist())
        columns["forgery_stats_pooled"].append("whole" not in entry)
        for kind in KINDS:
            source = entry.get(kind, pooled[kind])
            for stat in ("median", "spread", "p05", "p95"):
                columns[f"forgery_{kind}_loo_{stat}"].append(source[stat])
    return columns


def has_forgery_reference(identities: pa.Table) -> bool:
    return "forgery_inner_centroid" in identities.column_names
