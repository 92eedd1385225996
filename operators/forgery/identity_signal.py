"""Identity-aware forgery signal (after VIPGuard / ICT-Reference): compare a face that is a
candidate of VIP X with X's authentic references.

Similarities are to X's NEAREST references (mean of the top ``top_k`` per-reference cosines), not
to X's centroid: a new photo of X resembles some of X's photos (same age, pose, light) more than
their average. Each is read three ways:
- against X's own authentic spread: leave-one-out, each reference of X scored against X's other
  references the same way (``identity_deficit``, ``context_deficit``: in units of that spread);
- against an impostor cohort of X (``identity_cohort_z``, ``inner_cohort_z``): the same
  similarity of faces that are NOT X — the references of the gallery's other identities (X's
  lookalikes among them) and, when given, a cohort of non-VIP faces — as a z-score;
- inner vs outer: a face swap carries X's inner face on someone else's head, so its inner-face
  crop looks like X while the whole crop and the outer ring do not (``inner_whole_gap``,
  ``inner_outer_gap``: standardised by the same gap on X's references); the other way round, a
  face matched to X as a whole whose inner face is unlike X's (``inner_deficit``) is someone's
  face pasted onto X's head (measured: a swap onto Daniel Radcliffe's head matches him, inner
  deficit 4.4 spreads).

Which signals a face gets depends on how it became X's candidate (``CandidateKind``). A face that
matches X as a whole gets every signal. A face that is only a WEAK (whole face below the match
threshold) or INNER-FACE candidate of X gets ``CANDIDATE_SIGNALS`` only (inner-vs-whole and
inner-vs-outer gaps, and how far its inner face lies above X's impostor cohort): "not similar to
X" is exactly what an authentic stranger who looks a little like X shows, so deficits against X
would turn every such stranger into a forgery of X (issue 14). Measured on candidates of the
demo-like ONNX gallery (14 VIPs, 10 references each): 26 authentic LFW strangers vs 42 swaps of
X's held-out inner face onto LFW heads, AUC identity_deficit 0.47 (useless, as argued),
inner_whole_gap 0.65, inner_outer_gap 0.62, inner_cohort_z 0.85 (docs/forgery.md).

Measured on the swap set (jobs.make_swaps, MobileFaceNet, 266 real / 280 fake, centroid version):
AUC of the raw whole-face cosine 0.95, inner-minus-whole gap 0.98, outer ring 0.89, inner face
alone 0.58 (the swap's inner face IS X's, as expected). The 224 context crop is not used: for
--aligned inputs it is only edge padding, and the gallery's references must be processed the
same way as probes.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

import numpy as np

from index import forgery_reference as ref
from index.gallery import embeddings_of
from operators.forgery.face_regions import REGIONS_VERSION, inner_face, outer_ring

# What a weak / inner-face candidate of X is checked with: is its inner face X's (against X's
# impostor cohort) while the whole face / the head around it is not.
CANDIDATE_SIGNALS = ("inner_whole_gap", "inner_outer_gap", "inner_cohort_z")
SIGNALS = ("identity_similarity", "identity_deficit", "identity_cohort_z", "inner_similarity", "inner_deficit",
           "context_similarity", "context_deficit") + CANDIDATE_SIGNALS
# The identity signals a fusion's vip head should take (standardised; the raw similarities carry
# the same information before standardisation). A weak / inner candidate has only the
# CANDIDATE_SIGNALS: a head must fill the others (fusion.Head.fill), not drop the row.
FUSION_FEATURES = ("identity_deficit", "identity_cohort_z", "inner_deficit", "context_deficit") + CANDIDATE_SIGNALS
# Impostor probes per identity for the cohort statistics: enough for a mean and spread, bounded
# so that a gallery of thousands of identities loads in seconds.
MAX_COHORT_PROBES = 4096


class CandidateKind(str, Enum):
    MATCH = "match"   # the whole face matched X above the gallery's threshold
    WEAK = "weak"     # best whole-face candidate, below the threshold but above the weak floor
    INNER = "inner"   # only the inner face resembles X


def region_embeddings(pack, aligned_faces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer) embeddings of 112x112 RGB aligned crops by the pack's embedder."""
    if not aligned_faces:
        dim = getattr(pack, "embedding_dim", 0)
        return np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32)
    return pack.embed([inner_face(a) for a in aligned_faces]), pack.embed([outer_ring(a) for a in aligned_faces])


def reference_columns(pack, aligned_faces: list[np.ndarray]) -> dict[str, list]:
    """Per-reference forgery embeddings for enrolment (the same crops the scorer makes)."""
    inner, outer = region_embeddings(pack, aligned_faces)
    return {ref.INNER_COLUMN: inner.tolist(), ref.OUTER_COLUMN: outer.tolist()}


def manifest_entry(pack) -> dict:
    return {"forgery_reference": {"embedder_id": pack.embedder_id, "regions": REGIONS_VERSION,
                                  "columns": [ref.INNER_COLUMN, ref.OUTER_COLUMN]}}


def top_k_mean(similarities: np.ndarray, k: int) -> np.ndarray:
    """Row-wise mean of the k largest values (all of them when a row has fewer)."""
    k = max(1, min(k, similarities.shape[1]))
    return np.sort(similarities, axis=1)[:, -k:].mean(axis=1)


def _spread(values: np.ndarray) -> tuple[float, float]:
    return float(np.median(values)), float(max(np.std(values), ref.MIN_SPREAD))


@dataclass
class IdentityReading:
    identity_id: str
    kind: CandidateKind
    values: dict[str, float]
    whole_p05: float

    def reasons(self, display_name: str) -> list[str]:
        v = self.values
        out = []
        if "identity_similarity" in v and v["identity_similarity"] < self.whole_p05:
            out.append(f"identity similarity {v['identity_similarity']:.2f}, below {display_name}'s authentic "
                       f"5th percentile {self.whole_p05:.2f}")
        if v["inner_whole_gap"] > 2.0:
            out.append(f"inner face resembles {display_name} far more than the whole face does: "
                       f"{v['inner_whole_gap']:.1f} spreads above {display_name}'s authentic photos")
        if v["inner_outer_gap"] > 2.0:
            out.append(f"inner face resembles {display_name} far more than the head around it does: "
                       f"{v['inner_outer_gap']:.1f} spreads above {display_name}'s authentic photos")
        if v.get("context_deficit", 0.0) > 2.0:
            out.append(f"head and surroundings unlike {display_name}'s references "
                       f"(similarity {v['context_similarity']:.2f}, {v['context_deficit']:.1f} spreads low)")
        if self.kind is not CandidateKind.MATCH:
            out.append(f"only a {self.kind.value} candidate of {display_name}: checked for inner-vs-outer "
                       f"inconsistency only (an authentic stranger is also unlike {display_name})")
        return out


class IdentityReferences:
    """X's reference side, loaded once from the gallery (per actor, not per batch): per-reference
    whole / inner / outer embeddings, each identity's leave-one-out nearest-reference statistics
    and its impostor-cohort statistics."""

    def __init__(self, gallery, top_k: int = 3, non_vip_cohort: Optional[np.ndarray] = None, seed: int = 0):
        identities = gallery.identities
        if not ref.has_forgery_reference(identities):
            raise ValueError(f"gallery {gallery.version} has no forgery reference columns: re-enrol it "
                             f"(vipwatch.enrol.enroll computes them)")
        table = identities.to_pydict()
        self.top_k = top_k
        self.row_of = {identity: k for k, identity in enumerate(table["identity_id"])}
        self.display_name = dict(zip(table["identity_id"], table.get("display_name", table["identity_id"])))
        self.centroid = np.asarray(table["centroid"], np.float32)
        self.inner_centroid = np.asarray(table["forgery_inner_centroid"], np.float32)
        references = gallery.references
        self.owner = np.asarray(references.column("identity_id").to_pylist())
        self.vectors = {"whole": embeddings_of(references), "inner": embeddings_of(references, ref.INNER_COLUMN),
                        "outer": embeddings_of(references, ref.OUTER_COLUMN)}
        self.rows_of = {identity: np.flatnonzero(self.owner == identity) for identity in self.row_of}
        self.cohort_size = {"whole": 0, "inner": 0}
        self.stats = self._statistics(non_vip_cohort, np.random.default_rng(seed))

    def nearest(self, kind: str, identity_id: str, vectors: np.ndarray) -> np.ndarray:
        """Top-k mean cosine of each vector to identity_id's references of that kind."""
        return top_k_mean(np.atleast_2d(vectors) @ self.vectors[kind][self.rows_of[identity_id]].T, self.top_k)

    def _leave_one_out(self, kind: str, rows: np.ndarray) -> np.ndarray:
        """Each reference's top-k mean cosine to the identity's OTHER references."""
        vectors = self.vectors[kind][rows]
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        return top_k_mean(sims, self.top_k) if len(rows) > 1 else np.zeros(0, np.float32)

    def _statistics(self, non_vip: Optional[np.ndarray], rng: np.random.Generator) -> dict[str, dict[str, float]]:
        per_identity: dict[str, dict[str, float]] = {}
        if non_vip is not None and len(non_vip) > MAX_COHORT_PROBES:
            # A random subset, not the first rows: a cohort lists its LFW faces before its crowd faces.
            non_vip = non_vip[np.sort(rng.choice(len(non_vip), MAX_COHORT_PROBES, replace=False))]
        for identity, rows in self.rows_of.items():
            stats: dict[str, float] = {}
            loo = {kind: self._leave_one_out(kind, rows) for kind in ("whole", "inner", "outer")}
            if len(rows) > 1:
                loo["inner_whole"] = loo["inner"] - loo["whole"]
                loo["inner_outer"] = loo["inner"] - loo["outer"]
                for kind, values in loo.items():
                    stats[f"{kind}_median"], stats[f"{kind}_spread"] = _spread(values)
                stats["whole_p05"] = float(np.quantile(loo["whole"], 0.05))
            others = np.flatnonzero(self.owner != identity)
            if len(others) > MAX_COHORT_PROBES:
                others = rng.choice(others, MAX_COHORT_PROBES, replace=False)
            for kind in ("whole", "inner"):
                probes = self.vectors[kind][others]
                if kind == "whole" and non_vip is not None and len(non_vip):
                    probes = np.concatenate([probes, non_vip])
                self.cohort_size[kind] = max(self.cohort_size[kind], len(probes))
                if len(probes):
                    impostor = self.nearest(kind, identity, probes)
                    stats[f"{kind}_cohort_mean"] = float(impostor.mean())
                    stats[f"{kind}_cohort_spread"] = float(max(impostor.std(), ref.MIN_SPREAD))
            per_identity[identity] = stats
        # An identity with one reference has no spread of its own: borrow the median over the others.
        names = sorted({name for stats in per_identity.values() for name in stats})
        pooled = {name: float(np.median([s[name] for s in per_identity.values() if name in s])) for name in names}
        return {identity: {**pooled, **stats} for identity, stats in per_identity.items()}

    def read(self, identity_id: str, embedding: np.ndarray, inner: np.ndarray, outer: np.ndarray,
             kind: CandidateKind = CandidateKind.MATCH) -> IdentityReading:
        s = self.stats[identity_id]
        whole_sim = float(self.nearest("whole", identity_id, embedding)[0])
        inner_sim = float(self.nearest("inner", identity_id, inner)[0])
        outer_sim = float(self.nearest("outer", identity_id, outer)[0])
        values = {
            "inner_whole_gap": ((inner_sim - whole_sim) - s["inner_whole_median"]) / s["inner_whole_spread"],
            "inner_outer_gap": ((inner_sim - outer_sim) - s["inner_outer_median"]) / s["inner_outer_spread"],
            "identity_similarity": whole_sim,
            "identity_deficit": (s["whole_median"] - whole_sim) / s["whole_spread"],
            "identity_cohort_z": (whole_sim - s["whole_cohort_mean"]) / s["whole_cohort_spread"],
            "inner_similarity": inner_sim,
            "inner_cohort_z": (inner_sim - s["inner_cohort_mean"]) / s["inner_cohort_spread"],
            "inner_deficit": (s["inner_median"] - inner_sim) / s["inner_spread"],
            "context_similarity": outer_sim,
            "context_deficit": (s["outer_median"] - outer_sim) / s["outer_spread"],
        }
        if kind is not CandidateKind.MATCH:
            values = {name: values[name] for name in CANDIDATE_SIGNALS}
        return IdentityReading(identity_id, kind, values, s["whole_p05"])

    def cohort_z(self, kind: str, identity_id: str, vector: np.ndarray) -> float:
        """How far above X's impostor cohort a face's nearest-reference similarity to X lies."""
        s = self.stats[identity_id]
        return float((self.nearest(kind, identity_id, vector)[0] - s[f"{kind}_cohort_mean"])
                     / s[f"{kind}_cohort_spread"])
