"""Identity-aware forgery signal (after VIPGuard / ICT-Reference): compare a face matched, even
weakly, to VIP X with X's authentic references.

- typicality: cosine of the face's embedding to X's centroid, against X's leave-one-out
  authentic distribution (``identity_deficit``, in units of X's spread);
- inner vs whole: a face swap carries X's inner face on someone else's head, so its inner-face
  crop still looks like X while the whole crop does not. ``inner_whole_gap`` is
  (cos_inner - cos_whole) standardised by the same gap on X's references;
- context: the outer ring (inner face blurred out) against X's outer-ring centroid.

Measured on the swap set (jobs.make_swaps, MobileFaceNet, 266 real / 280 fake): AUC of the raw
whole-face cosine 0.95, inner-minus-whole gap 0.98, outer ring 0.89, inner face alone 0.58 (the
swap's inner face IS X's, as expected). The 224 context crop is not used: for --aligned inputs
it is only edge padding, and the gallery's references must be processed the same way as probes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index import forgery_reference as ref
from operators.forgery.face_regions import REGIONS_VERSION, inner_face, outer_ring

SIGNALS = ("identity_similarity", "identity_deficit", "inner_similarity", "inner_whole_gap",
           "context_similarity", "context_deficit")


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


@dataclass
class IdentityReading:
    identity_id: str
    values: dict[str, float]
    whole_p05: float

    def reasons(self, display_name: str) -> list[str]:
        v = self.values
        out = []
        if v["identity_similarity"] < self.whole_p05:
            out.append(f"identity similarity {v['identity_similarity']:.2f}, below {display_name}'s authentic "
                       f"5th percentile {self.whole_p05:.2f}")
        if v["inner_whole_gap"] > 2.0:
            out.append(f"inner face resembles {display_name} ({v['inner_similarity']:.2f}) far more than the whole "
                       f"face does ({v['identity_similarity']:.2f}): {v['inner_whole_gap']:.1f} spreads above "
                       f"{display_name}'s authentic photos")
        if v["context_deficit"] > 2.0:
            out.append(f"head and surroundings unlike {display_name}'s references "
                       f"(similarity {v['context_similarity']:.2f}, {v['context_deficit']:.1f} spreads low)")
        return out


class IdentityReferences:
    """X's reference-side statistics, loaded once from the gallery (per actor, not per batch)."""

    def __init__(self, gallery):
        identities = gallery.identities
        if not ref.has_forgery_reference(identities):
            raise ValueError(f"gallery {gallery.version} has no forgery reference columns: re-enrol it "
                             f"(vipwatch.enrol.enroll computes them)")
        table = identities.to_pydict()
        self.row_of = {identity: k for k, identity in enumerate(table["identity_id"])}
        self.display_name = dict(zip(table["identity_id"], table.get("display_name", table["identity_id"])))
        self.centroid = np.asarray(table["centroid"], np.float32)
        self.inner_centroid = np.asarray(table["forgery_inner_centroid"], np.float32)
        self.outer_centroid = np.asarray(table["forgery_outer_centroid"], np.float32)
        self.stats = {f"{kind}_{stat}": np.asarray(table[f"forgery_{kind}_loo_{stat}"], np.float32)
                      for kind in ref.KINDS for stat in ("median", "spread", "p05", "p95")}

    def read(self, identity_id: str, embedding: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> IdentityReading:
        k = self.row_of[identity_id]
        s = {name: float(values[k]) for name, values in self.stats.items()}
        whole_sim = float(embedding @ self.centroid[k])
        inner_sim = float(inner @ self.inner_centroid[k])
        outer_sim = float(outer @ self.outer_centroid[k])
        values = {
            "identity_similarity": whole_sim,
            "identity_deficit": (s["whole_median"] - whole_sim) / s["whole_spread"],
            "inner_similarity": inner_sim,
            "inner_whole_gap": ((inner_sim - whole_sim) - s["gap_median"]) / s["gap_spread"],
            "context_similarity": outer_sim,
            "context_deficit": (s["outer_median"] - outer_sim) / s["outer_spread"],
        }
        return IdentityReading(identity_id, values, s["whole_p05"])
