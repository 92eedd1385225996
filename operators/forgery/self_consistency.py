"""Identity self-consistency of ONE face, for every face (VIP or not): the ICT idea without a
trained network. A face swap puts person B's inner face (brows, eyes, nose, mouth) on person A's
head, so the pack's embedding of the face's inner-face crop and of its outer ring
(``face_regions``) describe two different people; in an authentic face they describe the same
one. No reference of the person is needed, so a stranger's deepfake can be judged too.

Standardised against authentic faces: the gallery's references (every enrolled VIP photo), whose
own inner-vs-outer and inner-vs-whole cosines give a median and a spread per embedder. A deficit
is (authentic median - this face's cosine) / spread: positive = less self-consistent than
authentic faces, i.e. pointing to a forgery (fusion_fit.expected_sign reads the ``_deficit``
suffix that way).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index import forgery_reference as ref
from index.embeddings import embeddings_of

# Fused signals (standardised), and the raw cosines they come from (recorded, not fused).
SELF_SIGNALS = ("self_inner_outer_deficit", "self_inner_whole_deficit", "self_cohort_deficit")
RAW_SIGNALS = ("self_inner_outer_similarity", "self_inner_whole_similarity", "self_cohort_z")
# Reason shown when the inner face is this many spreads less consistent with its head than
# authentic faces are.
REASON_AT = 2.0


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of a with the same row of b."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return (a * b).sum(axis=1) / norms


def is_generic_signal(name: str) -> bool:
    """Signals any face can have, VIP or not: artefact scores and self-consistency."""
    return name.startswith("artefact:") or name in SELF_SIGNALS


def cohort_z(inner: np.ndarray, outer: np.ndarray, cohort_inner: np.ndarray, cohort_outer: np.ndarray,
             exclude: np.ndarray | None = None) -> np.ndarray:
    """Per face: its own inner-vs-outer cosine against the cosines of its outer ring with other
    people's inner faces and of its inner face with other people's outer rings (a cohort of
    authentic faces), as a z-score. A small or blurred face has low cosines with everything; the
    cohort takes that level out. ``exclude[k]``: a cohort row to leave out for face k (itself)."""
    inner, outer = np.atleast_2d(inner), np.atleast_2d(outer)
    own = row_cosines(inner, outer)
    others = np.concatenate([outer @ cohort_inner.T, inner @ cohort_outer.T], axis=1).astype(np.float64)
    if exclude is not None:
        n = len(cohort_inner)
        others[np.arange(len(own)), exclude] = np.nan
        others[np.arange(len(own)), n + exclude] = np.nan
    return (own - np.nanmean(others, axis=1)) / np.maximum(np.nanstd(others, axis=1), 1e-6)


@dataclass
class SelfConsistency:
    """Authentic statistics of the self cosines for one embedder, and the cohort of authentic
    inner faces / outer rings the cohort z is taken against."""
    inner_outer_median: float
    inner_outer_spread: float
    inner_whole_median: float
    inner_whole_spread: float
    cohort_median: float
    cohort_spread: float
    faces: int
    cohort_inner: np.ndarray
    cohort_outer: np.ndarray

    @classmethod
    def from_embeddings(cls, whole: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> "SelfConsistency":
        io, iw = row_cosines(inner, outer), row_cosines(inner, whole)
        if len(io) < 2:
            raise ValueError("too few authentic faces to standardise the self-consistency signal")
        z = cohort_z(inner, outer, inner, outer, exclude=np.arange(len(io)))
        return cls(float(np.median(io)), float(max(np.std(io), ref.MIN_SPREAD)),
                   float(np.median(iw)), float(max(np.std(iw), ref.MIN_SPREAD)),
                   float(np.median(z)), float(max(np.std(z), ref.MIN_SPREAD)), int(len(io)),
                   np.asarray(inner, np.float32), np.asarray(outer, np.float32))

    @classmethod
    def from_gallery(cls, gallery) -> "SelfConsistency":
        references = gallery.references
        return cls.from_embeddings(embeddings_of(references), embeddings_of(references, ref.INNER_COLUMN),
                                   embeddings_of(references, ref.OUTER_COLUMN))

    def read(self, whole: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> list[dict[str, float]]:
        """Per face: raw cosines and their deficits."""
        io, iw = row_cosines(inner, outer), row_cosines(inner, whole)
        z = cohort_z(inner, outer, self.cohort_inner, self.cohort_outer)
        return [{"self_inner_outer_similarity": float(a), "self_inner_whole_similarity": float(b),
                 "self_cohort_z": float(c),
                 "self_inner_outer_deficit": (self.inner_outer_median - float(a)) / self.inner_outer_spread,
                 "self_inner_whole_deficit": (self.inner_whole_median - float(b)) / self.inner_whole_spread,
                 "self_cohort_deficit": (self.cohort_median - float(c)) / self.cohort_spread}
                for a, b, c in zip(io, iw, z)]

    @staticmethod
    def reasons(values: dict[str, float]) -> list[str]:
        deficit = values.get("self_inner_outer_deficit")
        if deficit is None or deficit < REASON_AT:
            return []
        return [f"inner face unlike the head around it: self-consistency {values['self_inner_outer_similarity']:.2f}, "
                f"{deficit:.1f} spreads below authentic faces"]
