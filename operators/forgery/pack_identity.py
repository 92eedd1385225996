"""One embedder's side of the identity signal: the gallery's references as that embedder sees
them, its impostor cohort, and the floors above which a face that does not match a VIP is still
checked against that VIP. The scorer holds one for its own pack and, when configured
(``ForgeryConfig.second_pack``), one for a second pack whose signals are named ``pack2:<signal>``.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from index import calibration
from index.cohort import Cohort
from index.forgery_reference import INNER_COLUMN
from index.gallery import Gallery, embeddings_of
from operators.forgery.base import SECOND_PACK_PREFIX
from operators.forgery.face_regions import REGIONS_VERSION
from operators.forgery.identity_signal import CandidateKind, IdentityReferences, region_embeddings
from operators.forgery.region_consistency import RegionConsistency, resolve as resolve_consistency
from core.config import ForgeryConfig, StorageConfig

__all__ = ["PackIdentity", "SECOND_PACK_PREFIX", "inner_match_floor", "weak_match_floor"]


def weak_match_floor(gallery: Gallery, rate: float) -> float:
    """The impostor best-score quantile at ``rate`` (leave-one-identity-out over the references),
    never above the match threshold; -inf at rate 1 (every face is checked)."""
    if rate >= 1.0:
        return -math.inf
    identities = np.asarray(gallery.references.column("identity_id").to_pylist())
    impostor = calibration.best_other_identity_scores(embeddings_of(gallery.references), identities)
    impostor = impostor[np.isfinite(impostor)]
    if not len(impostor):
        return gallery.match_threshold
    return min(float(np.quantile(impostor, 1.0 - rate)), gallery.match_threshold)


def inner_match_floor(gallery: Gallery, references: IdentityReferences, rate: float) -> float:
    """Same rate for the inner face alone: each reference's best cosine to another identity's
    inner-face centroid. A swap of X shows X's inner face on a head that may not match X."""
    if rate >= 1.0:
        return -math.inf
    inner = embeddings_of(gallery.references, INNER_COLUMN)
    owner = np.asarray(gallery.references.column("identity_id").to_pylist())
    order = np.asarray(list(references.row_of))
    impostor = calibration.best_other_identity_scores(inner, owner, targets=references.inner_centroid,
                                                      target_ids=order)
    impostor = impostor[np.isfinite(impostor)]
    return float(np.quantile(impostor, 1.0 - rate)) if len(impostor) else math.inf


class PackIdentity:
    def __init__(self, gallery: Gallery, pack, config: ForgeryConfig, storage: Optional[StorageConfig] = None):
        expected = gallery.manifest.get("forgery_reference", {}).get("embedder_id")
        if expected != pack.embedder_id:
            raise ValueError(f"gallery {gallery.version} forgery references come from {expected}; "
                             f"this scorer embeds with {pack.embedder_id}")
        self.gallery, self.pack = gallery, pack
        # Non-VIP faces of the identification cohort (index/cohort.py) join the impostor cohort
        # of the whole-face similarity when one exists for this embedder.
        cohort = Cohort.for_embedder(pack.embedder_id, storage_config=storage)
        if cohort is not None:
            cohort = cohort.without_people(gallery.identities.column("identity_id").to_pylist())
        self.cohort_version = cohort.version if cohort is not None else None
        self.references = IdentityReferences(gallery, top_k=config.reference_top_k,
                                             non_vip_cohort=cohort.embeddings if cohort is not None else None)
        self.identity_ids = list(self.references.row_of)  # row order of the centroids
        self.weak_floor = weak_match_floor(gallery, config.weak_match_fpir)
        self.inner_floor = inner_match_floor(gallery, self.references, config.weak_match_fpir)
        # Inner-vs-outer consistency heads for this embedder (any face, VIP or not), when trained.
        self.consistency: Optional[RegionConsistency] = resolve_consistency(config.region_consistency,
                                                                            pack.embedder_id, storage)
        self.version = (f"{REGIONS_VERSION}/{pack.embedder_id}/top{config.reference_top_k}"
                        f"/weak{config.weak_match_fpir:g}"
                        + (f"/cohort={self.cohort_version}" if self.cohort_version else ""))

    def display(self, identity_id: str) -> str:
        return self.references.display_name.get(identity_id, identity_id)

    def embed(self, aligned: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(whole, inner, outer) embeddings of 112x112 aligned crops by this pack's embedder."""
        inner, outer = region_embeddings(self.pack, aligned)
        return self.pack.embed(aligned), inner, outer

    def best_match(self, whole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each face's best identity by centroid cosine (row positions in references.row_of) and
        that cosine: the whole-face candidate when the gallery's matcher did not run."""
        similarity = whole @ self.references.centroid.T
        best = np.argmax(similarity, axis=1)
        return best, similarity[np.arange(len(best)), best]

    def options(self, top: Optional[tuple[str, float]], inner: np.ndarray) -> list[tuple[str, CandidateKind, float]]:
        """The ways a face that does not match may still be a candidate: its whole-face ``top``
        (identity, score) above the weak floor, its inner face above the inner floor."""
        out = []
        if top is not None and top[1] is not None and top[1] >= self.weak_floor:
            out.append((top[0], CandidateKind.WEAK, float(top[1])))
        if len(inner):
            similarity = inner @ self.references.inner_centroid.T
            best = int(np.argmax(similarity))
            if similarity[best] >= self.inner_floor:
                out.append((self.identity_ids[best], CandidateKind.INNER, float(similarity[best])))
        return out

    def pick(self, options: list[tuple[str, CandidateKind, float]], whole: np.ndarray,
             inner: np.ndarray) -> Optional[tuple[str, CandidateKind, float]]:
        """One candidate: when whole and inner face point to different VIPs, the one the face
        resembles more against that VIP's impostor cohort."""
        options = [o for o in options if o[0] in self.references.row_of] or options[:1]
        if len(options) == 2 and options[0][0] != options[1][0]:
            z = [self.references.cohort_z("whole", options[0][0], whole),
                 self.references.cohort_z("inner", options[1][0], inner)]
            options = [options[int(np.argmax(z))]]
        return options[0] if options else None

    def reason(self, identity: str, kind: CandidateKind, score: float, source: str = "") -> str:
        name = self.display(identity)
        if kind is CandidateKind.WEAK:
            return (f"{source}weak match to {name} ({score:.2f}, below the match threshold "
                    f"{self.gallery.match_threshold:.2f}): checked against {name}'s references")
        return (f"{source}inner face resembles {name} ({score:.2f}) although the whole face does not match: "
                f"checked against {name}'s references")
