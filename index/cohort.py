"""Impostor cohort: faces of people who are nobody's VIP, embedded by one embedder, against which
a gallery's open-set threshold is placed. It does not depend on the gallery, so a gallery of five
identities gets a threshold from thousands of impostor probes instead of the few its own
references give (leave-one-identity-out).

Layout (a directory or s3:// prefix; the repo ships one per pack under models/cohorts/<embedder>/):
    manifest.json   format, cohort_version, embedder_id, model_pack, counts, sources, licence, sha256
    cohort.npz      embeddings (N x dim, float16, L2-normalised), labels (N,) "<source>:<person or photo>"
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.stats import beta

from core import storage
from core.config import StorageConfig

FORMAT = "vipwatch-impostor-cohort"
FORMAT_VERSION = 1
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "models" / "cohorts"


class CohortError(RuntimeError):
    """A cohort that cannot be used: missing, corrupt, or from another embedder."""


def cohort_root() -> str:
    """Where cohorts are looked up by embedder: $VIPWATCH_COHORTS (dir or s3://), else the repo's."""
    return os.environ.get("VIPWATCH_COHORTS") or str(DEFAULT_ROOT)


def embedder_directory(embedder_id: str) -> str:
    """A file-system-safe directory name for an embedder id (``name@digest``)."""
    return re.sub(r"[^A-Za-z0-9._@-]", "_", embedder_id)


def clopper_pearson(events: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a rate observed as events / trials."""
    if trials <= 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    low = 0.0 if events == 0 else float(beta.ppf(alpha / 2, events, trials - events + 1))
    high = 1.0 if events == trials else float(beta.ppf(1 - alpha / 2, events + 1, trials - events))
    return low, high


@dataclass
class Cohort:
    manifest: dict
    embeddings: np.ndarray  # float32, L2-normalised
    labels: np.ndarray

    @property
    def version(self) -> str:
        return self.manifest["cohort_version"]

    @property
    def embedder_id(self) -> str:
        return self.manifest["embedder_id"]

    def __len__(self) -> int:
        return len(self.embeddings)

    @classmethod
    def create(cls, embeddings: np.ndarray, labels: list[str], embedder_id: str, model_pack: str,
               sources: dict, licence: str, extra: Optional[dict] = None) -> "Cohort":
        vectors = np.asarray(embeddings, np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        stored = vectors.astype(np.float16)
        digest = hashlib.sha256(stored.tobytes() + "\n".join(labels).encode()).hexdigest()[:8]
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "cohort_version": f"{embedder_directory(embedder_id)}-{digest}",
                    "embedder_id": embedder_id, "model_pack": model_pack, "faces": int(len(stored)),
                    "people_or_photos": int(len(set(labels))), "sources": sources, "licence": licence,
                    **(extra or {})}
        return cls(manifest=manifest, embeddings=stored.astype(np.float32), labels=np.asarray(labels))

    def save(self, uri: str, storage_config: Optional[StorageConfig] = None) -> str:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, embeddings=self.embeddings.astype(np.float16), labels=self.labels)
        data = buffer.getvalue()
        self.manifest["files"] = {"cohort.npz": hashlib.sha256(data).hexdigest()}
        storage.write_bytes(storage.join(uri, "cohort.npz"), data, storage_config)
        storage.write_bytes(storage.join(uri, "manifest.json"), json.dumps(self.manifest, indent=2).encode(),
                            storage_config)
        return uri

    @classmethod
    def load(cls, uri: str, storage_config: Optional[StorageConfig] = None) -> "Cohort":
        try:
            manifest = json.loads(storage.read_bytes(storage.join(uri, "manifest.json"), storage_config))
            data = storage.read_bytes(storage.join(uri, "cohort.npz"), storage_config)
        except (OSError, ValueError) as exc:
            raise CohortError(f"no readable impostor cohort at {uri}: {exc}") from exc
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise CohortError(f"{uri} is not a {FORMAT} v{FORMAT_VERSION} artefact")
        if hashlib.sha256(data).hexdigest() != manifest.get("files", {}).get("cohort.npz"):
            raise CohortError(f"cohort.npz at {uri} does not match its manifest's sha256")
        arrays = np.load(io.BytesIO(data))
        return cls(manifest=manifest, embeddings=arrays["embeddings"].astype(np.float32), labels=arrays["labels"])

    @classmethod
    def for_embedder(cls, embedder_id: str, root: Optional[str] = None,
                     storage_config: Optional[StorageConfig] = None) -> Optional["Cohort"]:
        """The cohort built for this embedder under root, or None when there is none."""
        uri = storage.join(root or cohort_root(), embedder_directory(embedder_id))
        if not storage.exists(storage.join(uri, "manifest.json"), storage_config):
            return None
        cohort = cls.load(uri, storage_config)
        cohort.check_compatible(embedder_id)
        return cohort

    def check_compatible(self, embedder_id: str) -> None:
        if embedder_id != self.embedder_id:
            raise CohortError(f"cohort {self.version} was embedded with {self.embedder_id}, not {embedder_id}")

    def without_people(self, identity_ids) -> "Cohort":
        """Drop cohort faces of people who are enrolled (same name, any case): they are not impostors."""
        names = {str(i).lower() for i in identity_ids}
        keep = np.asarray([label.split(":", 1)[-1].lower() not in names for label in self.labels.tolist()], bool)
        if keep.all():
            return self
        return Cohort(manifest=self.manifest, embeddings=self.embeddings[keep], labels=self.labels[keep])

    def best_scores(self, references: np.ndarray) -> np.ndarray:
        """Each cohort face's best cosine to any reference: its score as a non-mated probe."""
        references = np.asarray(references, np.float32)
        best = np.empty(len(self), np.float32)
        block = max(1, (1 << 25) // max(1, len(references)))
        for start in range(0, len(self), block):
            best[start:start + block] = (self.embeddings[start:start + block] @ references.T).max(axis=1)
        return best
