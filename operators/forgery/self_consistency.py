"""Identity self-consistency of ONE face, for every face (VIP or not): the ICT idea without a
trained network. A face swap puts person B's inner face (brows, eyes, nose, mouth) on person A's
head; no reference of A or B is needed to see that the two parts belong to different people.

The embedder does not place a face's inner-face crop and its outer ring (``face_regions``) near
each other: their direct cosine separates one face from two people no better than chance
(jobs.forgery_self_consistency, docs/forgery.md). Like-with-like comparisons do carry identity
(inner vs inner, outer vs outer), so the two parts are compared through a cohort of authentic
faces: the face's inner crop is compared with the cohort's inner crops and its outer ring with
the cohort's outer rings, and the two similarity profiles (which cohort people the inner face
resembles, which the head resembles) are correlated. An authentic face resembles the same kind
of people by both parts; a swap's parts resemble different people.

Cohort and standardisation: the gallery's references (every enrolled photo has both crops). A
reference's own profile correlation is computed with its identity left out of the cohort; a
deficit is (authentic median - this face's correlation) / spread, positive = less consistent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index import forgery_reference as ref
from index.embeddings import embeddings_of

# The fused signal, and the raw values it comes from (recorded in forgery_signals, not fused).
SELF_SIGNALS = ("self_profile_deficit",)
RAW_SIGNALS = ("self_profile_corr", "self_inner_outer_similarity")
REASON_AT = 2.0


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of a with the same row of b."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    return (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _standardise_rows(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Row-wise z-scores over the ``keep`` columns; other columns 0."""
    x = np.where(keep, x, np.nan)
    x = (x - np.nanmean(x, axis=1, keepdims=True)) / np.maximum(np.nanstd(x, axis=1, keepdims=True), 1e-9)
    return np.nan_to_num(x)


def profile_corr(inner: np.ndarray, outer: np.ndarray, cohort_inner: np.ndarray, cohort_outer: np.ndarray,
                 keep: np.ndarray | None = None) -> np.ndarray:
    """Per face: Pearson correlation of its inner crop's cosines to the cohort's inner crops with
    its outer ring's cosines to the same cohort faces' outer rings. ``keep`` (faces x cohort,
    bool): cohort faces each face may use (its own identity left out for references)."""
    inner, outer = np.atleast_2d(inner), np.atleast_2d(outer)
    keep = np.ones((len(inner), len(cohort_inner)), bool) if keep is None else keep
    a = _standardise_rows(inner @ cohort_inner.T, keep)
    b = _standardise_rows(outer @ cohort_outer.T, keep)
    return (a * b).sum(axis=1) / np.maximum(keep.sum(axis=1), 1)


def is_generic_signal(name: str) -> bool:
    """Signals any face can have, VIP or not: artefact scores and self-consistency."""
    return name.startswith("artefact:") or name in SELF_SIGNALS


@dataclass
class SelfConsistency:
    """The authentic cohort (inner and outer embeddings) and the median / spread of its own
    leave-one-identity-out profile correlation."""
    cohort_inner: np.ndarray
    cohort_outer: np.ndarray
    median: float
    spread: float

    @classmethod
    def from_embeddings(cls, inner: np.ndarray, outer: np.ndarray, owners: np.ndarray) -> "SelfConsistency":
        owners = np.asarray(owners)
        if len(np.unique(owners)) < 3:
            raise ValueError("the self-consistency cohort needs authentic faces of at least 3 people")
        inner, outer = np.asarray(inner, np.float32), np.asarray(outer, np.float32)
        own = profile_corr(inner, outer, inner, outer, keep=owners[:, None] != owners[None, :])
        return cls(inner, outer, float(np.median(own)), float(max(np.std(own), ref.MIN_SPREAD)))

    @classmethod
    def from_gallery(cls, gallery) -> "SelfConsistency":
        references = gallery.references
        return cls.from_embeddings(embeddings_of(references, ref.INNER_COLUMN),
                                   embeddings_of(references, ref.OUTER_COLUMN),
                                   references.column("identity_id").to_pylist())

    def read(self, inner: np.ndarray, outer: np.ndarray) -> list[dict[str, float]]:
        corr = profile_corr(inner, outer, self.cohort_inner, self.cohort_outer)
        direct = row_cosines(inner, outer)
        return [{"self_profile_corr": float(c), "self_inner_outer_similarity": float(d),
                 "self_profile_deficit": (self.median - float(c)) / self.spread} for c, d in zip(corr, direct)]

    @staticmethod
    def reasons(values: dict[str, float]) -> list[str]:
        deficit = values.get("self_profile_deficit")
        if deficit is None or deficit < REASON_AT:
            return []
        return [f"inner face and head resemble different people: self-consistency {values['self_profile_corr']:.2f}, "
                f"{deficit:.1f} spreads below authentic faces"]
