"""Identity consistency of a face's inner face and the rest of its head, for ANY face (the ICT
idea, no VIP needed): a swap puts B's inner face on A's head. A pack's raw embeddings of the two
regions (operators/forgery/face_regions.py) live in unrelated places (docs/forgery.md:
MobileFaceNet own face vs two people AUC 0.52, dlib 0.68), so two linear heads, trained by
``jobs.train_region_consistency`` on authentic faces alone (a face's own inner and outer crops
as positives, other people's as negatives; no forgery generator involved), map them into one
space where they can be compared.

The signal is an inconsistency in spreads of authentic faces held out of training: 0 at their
median, higher = the inner face looks like someone else than the head. Its name carries the
``consistency:`` prefix: a generic signal (every face, no VIP), fused like an artefact score.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from core import storage
from core.config import StorageConfig

CONSISTENCY_PREFIX = "consistency:"
SIGNAL = CONSISTENCY_PREFIX + "inner_outer"
ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
ARTEFACT_GLOB = "region-consistency-*"
HEADS_FILE = "heads.npz"


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class RegionConsistency:
    """Linear heads (inner: ``inner_weight`` / ``inner_bias``, outer: ``outer_weight`` /
    ``outer_bias``) and the authentic median / spread of their cosine."""

    def __init__(self, heads: dict[str, np.ndarray], manifest: dict):
        self.heads = {k: np.asarray(v, np.float32) for k, v in heads.items()}
        self.manifest = manifest
        self.version = manifest["version"]
        self.embedder_id = manifest["embedder_id"]
        self.median = float(manifest["authentic_cosine"]["median"])
        self.spread = float(manifest["authentic_cosine"]["spread"])

    @classmethod
    def load(cls, uri: str, storage_config: Optional[StorageConfig] = None) -> "RegionConsistency":
        manifest = json.loads(storage.read_bytes(storage.join(uri, "manifest.json"), storage_config))
        with np.load(io.BytesIO(storage.read_bytes(storage.join(uri, HEADS_FILE), storage_config))) as heads:
            return cls(dict(heads), manifest)

    def mapped(self, inner: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inner and outer embeddings in the shared space, L2-normalised."""
        return (_normalise(inner @ self.heads["inner_weight"].T + self.heads["inner_bias"]),
                _normalise(outer @ self.heads["outer_weight"].T + self.heads["outer_bias"]))

    def cosine(self, inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
        """Cosine of each face's mapped inner and outer embeddings (rows paired)."""
        if not len(inner):
            return np.zeros(0, np.float32)
        a, b = self.mapped(inner, outer)
        return (a * b).sum(axis=1)

    def inconsistency(self, inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
        return (self.median - self.cosine(inner, outer)) / self.spread

    def reason(self, value: float) -> str:
        return (f"inner face and the rest of the head look like different people: consistency {value:.1f} "
                f"spreads below authentic faces ({self.version})")


def shipped_for(embedder_id: str, version: Optional[str] = None) -> Optional[str]:
    """The newest artefact inside the package trained for ``embedder_id`` (the one named
    ``version``, when given), or None."""
    found = []
    for manifest_path in sorted(ARTEFACTS.glob(f"{ARTEFACT_GLOB}/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("embedder_id") == embedder_id and version in (None, manifest.get("version")):
            found.append((manifest.get("created_at", ""), str(manifest_path.parent)))
    return max(found)[1] if found else None


def pinned_versions(signals_model: str) -> dict[str, str]:
    """Signal prefix ("" or "pack2:") -> the heads' version named in a scorer's forgery_model
    string (a fusion records the one its signals were fitted on)."""
    pinned = {}
    for part in signals_model.split(";"):
        name, _, value = part.partition("=")
        if name.endswith("consistency") and value:
            pinned[name[:-len("consistency")]] = value
    return pinned


def resolve(spec: Optional[str], embedder_id: str,
            storage_config: Optional[StorageConfig] = None) -> Optional[RegionConsistency]:
    """``None`` / "off": none; "shipped": the package's artefact for this embedder (None when
    there is none); else an artefact URI, which must have been trained on this embedder."""
    if spec in (None, "off"):
        return None
    uri = shipped_for(embedder_id) if spec == "shipped" else spec
    if uri is None:
        return None
    model = RegionConsistency.load(uri, storage_config)
    if model.embedder_id != embedder_id:
        raise ValueError(f"region-consistency artefact {model.version} was trained on {model.embedder_id}; "
                         f"this pack embeds with {embedder_id}")
    return model
