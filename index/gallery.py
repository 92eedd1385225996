"""The versioned gallery artefact and search over it.

Layout at a gallery root URI (local dir or s3://):
    LATEST                                   -> the current version string
    versions/<version>/manifest.json         format, version, model pack, dim, threshold, file hashes
    versions/<version>/index.faiss           IndexIDMap2 over L2-normalised embeddings (inner product)
    versions/<version>/references.parquet    one row per reference face (id, identity, uri, embedding, ...)
    versions/<version>/identities.parquet    per-identity statistics
A root or a version directory can be loaded; files are checked against the manifest's hashes.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from index import calibration, faiss_index, forgery_reference, layout
from index.embeddings import embeddings_of
from index.cohort import Cohort, clopper_pearson
from core import storage
from core.config import StorageConfig

FORMAT = "vipwatch-gallery"
FORMAT_VERSION = 1
SIMILARITY_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
log = logging.getLogger(__name__)


class GalleryError(RuntimeError):
    """A gallery that cannot be used: missing, corrupt, or built with another model pack."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def identity_statistics(embeddings: np.ndarray, identity_ids: np.ndarray) -> dict[str, list]:
    """count, centroid, and the distribution of intra-identity cosine similarities, and of each
    reference's cosine to its centroid (what a typical authentic photo of X scores)."""
    stats: dict[str, list] = {"identity_id": [], "reference_count": [], "centroid": [], "intra_similarity_mean": [],
                              "intra_similarity_std": [], "centroid_similarity_mean": []}
    for q in SIMILARITY_QUANTILES:
        stats[f"intra_similarity_p{int(q * 100):02d}"] = []
        stats[f"centroid_similarity_p{int(q * 100):02d}"] = []
    for identity in sorted(set(identity_ids.tolist())):
        vectors = embeddings[identity_ids == identity]
        centroid = vectors.mean(axis=0)
        centroid /= max(np.linalg.norm(centroid), 1e-12)
        pairwise = (vectors @ vectors.T)[np.triu_indices(len(vectors), k=1)]
        if len(pairwise) == 0:
            pairwise = np.array([1.0])
        to_centroid = vectors @ centroid
        stats["identity_id"].append(identity)
        stats["reference_count"].append(len(vectors))
        stats["centroid"].append(centroid.astype(np.float32).tolist())
        stats["intra_similarity_mean"].append(float(pairwise.mean()))
        stats["intra_similarity_std"].append(float(pairwise.std()))
        stats["centroid_similarity_mean"].append(float(to_centroid.mean()))
        for q in SIMILARITY_QUANTILES:
            stats[f"intra_similarity_p{int(q * 100):02d}"].append(float(np.quantile(pairwise, q)))
            stats[f"centroid_similarity_p{int(q * 100):02d}"].append(float(np.quantile(to_centroid, q)))
    return stats


@dataclass
class Gallery:
    manifest: dict
    references: pa.Table
    identities: pa.Table
    index: object = field(repr=False)
    _search_index: object = field(default=None, repr=False)
    # Reference row -> identity and the largest reference count, read from the tables once per
    # gallery rather than on every matcher batch (a Python list of every reference each time).
    _owner: object = field(default=None, repr=False)
    _max_references: int = field(default=0, repr=False)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, references: pa.Table, model_pack: str, embedder_id: str, target_fpir: float = 0.01,
              impostor_embeddings: Optional[np.ndarray] = None, display_names: Optional[dict] = None,
              extra_manifest: Optional[dict] = None, cohort: Optional[Cohort] = None) -> "Gallery":
        """``references`` has at least identity_id, image_uri, embedding (L2-normalised); any
        further columns (e.g. forgery reference embeddings) are kept as they are. The threshold
        comes from ``cohort`` plus ``impostor_embeddings`` (see calibrate_threshold)."""
        if references.num_rows == 0:
            raise GalleryError("no usable reference faces: nothing to enroll")
        embeddings = embeddings_of(references)
        identity_ids = np.asarray(references.column("identity_id").to_pylist())
        reference_ids = np.arange(references.num_rows, dtype=np.int64)
        references = references.add_column(0, "reference_id", pa.array(reference_ids))

        stats = identity_statistics(embeddings, identity_ids)
        # Forgery reference statistics derive from the references, so any rebuild refreshes them.
        stats.update(forgery_reference.identity_statistics(references, identity_ids))
        names = display_names or {}
        stats["display_name"] = [names.get(i, i) for i in stats["identity_id"]]
        identities = pa.table(stats)

        threshold, calibration_record = calibrate_threshold(embeddings, identity_ids, target_fpir, cohort,
                                                            impostor_embeddings)
        index = faiss_index.build_index(embeddings, reference_ids)
        digest = hashlib.sha256(embeddings.tobytes() + "\n".join(identity_ids.tolist()).encode()).hexdigest()[:8]
        created = datetime.now(timezone.utc)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "gallery_version": f"{created:%Y%m%dT%H%M%SZ}-{digest}",
            "created_at": created.isoformat(), "model_pack": model_pack, "embedder_id": embedder_id,
            "embedding_dim": int(embeddings.shape[1]), "index_kind": faiss_index.index_kind_for(len(embeddings)),
            "identity_count": identities.num_rows, "reference_count": references.num_rows,
            "match_threshold": threshold,
            "calibration": calibration_record,
            **(extra_manifest or {}),
        }
        return cls(manifest=manifest, references=references, identities=identities, index=index)

    # ---- persistence --------------------------------------------------------------------
    def save(self, root_uri: str, storage_config: Optional[StorageConfig] = None) -> str:
        """Write versions/<version>/ under root and point LATEST at it. Returns the version URI."""
        version_uri = layout.version_uri(root_uri, self.version)
        payloads = {"index.faiss": faiss_index.serialize(self.index),
                    "references.parquet": _parquet_bytes(self.references),
                    "identities.parquet": _parquet_bytes(self.identities)}
        self.manifest["files"] = {name: _sha256(data) for name, data in payloads.items()}
        for name, data in payloads.items():
            storage.write_bytes(storage.join(version_uri, name), data, storage_config)
        # The manifest goes last: a version directory without one is an unfinished write.
        storage.write_bytes(storage.join(version_uri, layout.MANIFEST),
                            json.dumps(self.manifest, indent=2).encode(), storage_config)
        storage.write_bytes(layout.latest_uri(root_uri), self.version.encode(), storage_config)
        return version_uri

    @classmethod
    def load(cls, uri: str, storage_config: Optional[StorageConfig] = None) -> "Gallery":
        uri = uri.rstrip("/")
        try:
            if not storage.exists(storage.join(uri, layout.MANIFEST), storage_config):
                if not storage.exists(layout.latest_uri(uri), storage_config):
                    raise GalleryError(f"no gallery at {uri}: neither manifest.json nor LATEST found")
                version = storage.read_bytes(layout.latest_uri(uri), storage_config).decode().strip()
                uri = layout.version_uri(uri, version)
            manifest = json.loads(storage.read_bytes(storage.join(uri, layout.MANIFEST), storage_config))
        except GalleryError:
            raise
        except (OSError, ValueError) as exc:
            raise GalleryError(f"gallery manifest at {uri} is unreadable: {exc}") from exc
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise GalleryError(f"{uri} is not a {FORMAT} v{FORMAT_VERSION} artefact "
                               f"(format={manifest.get('format')!r}, version={manifest.get('format_version')!r})")
        payloads = {}
        for name in layout.FILES:
            try:
                data = storage.read_bytes(storage.join(uri, name), storage_config)
            except OSError as exc:
                raise GalleryError(f"gallery file {name} missing at {uri}: {exc}") from exc
            expected = manifest.get("files", {}).get(name)
            if _sha256(data) != expected:
                raise GalleryError(f"gallery file {name} at {uri} is corrupt: sha256 {_sha256(data)[:12]}… "
                                   f"does not match the manifest's {str(expected)[:12]}…")
            payloads[name] = data
        index = faiss_index.deserialize(payloads["index.faiss"])
        references = pq.read_table(io.BytesIO(payloads["references.parquet"]))
        identities = pq.read_table(io.BytesIO(payloads["identities.parquet"]))
        if index.ntotal != references.num_rows or index.d != manifest["embedding_dim"]:
            raise GalleryError(f"gallery at {uri} is inconsistent: index holds {index.ntotal}x{index.d}, "
                               f"manifest says {references.num_rows}x{manifest['embedding_dim']}")
        return cls(manifest=manifest, references=references, identities=identities, index=index)

    # ---- queries ------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self.manifest["gallery_version"]

    @property
    def match_threshold(self) -> float:
        return float(self.manifest["match_threshold"])

    def identity_ids(self) -> list[str]:
        return self.identities.column("identity_id").to_pylist()

    def check_compatible(self, embedder_id: str, embedding_dim: Optional[int] = None) -> None:
        if embedder_id != self.manifest["embedder_id"] or (embedding_dim and embedding_dim != self.manifest["embedding_dim"]):
            raise GalleryError(
                f"gallery {self.version} was built with embedder {self.manifest['embedder_id']} "
                f"({self.manifest['embedding_dim']}-d, pack {self.manifest['model_pack']}); these embeddings come "
                f"from {embedder_id}{f' ({embedding_dim}-d)' if embedding_dim else ''}: its faces could never match. "
                f"Rebuild the gallery with this model pack, or crawl "
                f"with the gallery's pack.")

    def search(self, embeddings: np.ndarray, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k identities per query, best-of-references score, best first."""
        if len(embeddings) == 0:
            return []
        if self._search_index is None:
            self._search_index = faiss_index.to_search_device(self.index)
            self._owner = np.asarray(self.references.column("identity_id").to_pylist())
            self._max_references = int(max(self.identities.column("reference_count").to_pylist()))
        neighbours = min(self.index.ntotal, top_k * self._max_references)
        scores, ids = self._search_index.search(np.ascontiguousarray(embeddings, dtype=np.float32), neighbours)
        owner = self._owner
        results = []
        for row_scores, row_ids in zip(scores, ids):
            best: dict[str, float] = {}
            for score, reference_id in zip(row_scores, row_ids):
                if reference_id < 0:
                    continue
                identity = owner[reference_id]
                if identity not in best:  # results come sorted, so the first hit is the best
                    best[identity] = float(score)
            results.append(sorted(best.items(), key=lambda item: -item[1])[:top_k])
        return results

    def without_identity(self, identity_id: str) -> "Gallery":
        """A new gallery version with every trace of one identity removed (right to be forgotten)."""
        if identity_id not in self.identity_ids():
            raise GalleryError(f"identity {identity_id!r} is not in gallery {self.version}")
        keep = pc.not_equal(self.references.column("identity_id"), identity_id)
        references = self.references.filter(keep).drop_columns(["reference_id"])
        names = dict(zip(self.identity_ids(), self.identities.column("display_name").to_pylist()))
        extra = {k: v for k, v in self.manifest.items() if k not in _BUILT_KEYS}
        extra["derived_from"] = self.version
        cohort = None
        if self.manifest["calibration"].get("cohort"):
            # The same impostor cohort as before, so the threshold keeps its meaning.
            cohort = Cohort.for_embedder(self.manifest["embedder_id"])
        return Gallery.build(references, self.manifest["model_pack"], self.manifest["embedder_id"],
                             target_fpir=self.manifest["calibration"]["target_fpir"], display_names=names,
                             extra_manifest=extra, cohort=cohort)


def calibrate_threshold(embeddings: np.ndarray, identity_ids: np.ndarray, target_fpir: float,
                        cohort: Optional[Cohort] = None,
                        impostor_embeddings: Optional[np.ndarray] = None) -> tuple[float, dict]:
    """The open-set threshold and the manifest's record of how it was set.

    Impostors are the cohort's faces (less any enrolled person's) and the given distractor faces,
    each scored by its best cosine to any reference. Without either, the references themselves are
    used leave-one-identity-out (galleries before cohorts): few impostors for a small gallery, so
    that threshold's FPIR is loose. The leave-one-identity-out rate is recorded either way."""
    leave_one_out = calibration.best_other_identity_scores(embeddings, identity_ids)
    leave_one_out = leave_one_out[np.isfinite(leave_one_out)]
    genuine = calibration.best_same_identity_scores(embeddings, identity_ids)
    parts, sources, record = [], [], {"target_fpir": target_fpir}
    if cohort is not None and len(cohort):
        used = cohort.without_people(set(identity_ids.tolist()))
        parts.append(used.best_scores(embeddings))
        sources.append(f"impostor cohort {cohort.version} ({len(used)} faces)")
        record["cohort"] = {"version": cohort.version, "faces": int(len(used)),
                            "excluded_enrolled_faces": int(len(cohort) - len(used)),
                            "sources": sorted(cohort.manifest.get("sources", {}))}
    if impostor_embeddings is not None and len(impostor_embeddings):
        parts.append((np.asarray(impostor_embeddings, np.float32) @ embeddings.T).max(axis=1))
        sources.append(f"{len(impostor_embeddings)} distractor faces")
    if not parts:
        parts.append(leave_one_out)
        probes = min(len(embeddings), calibration.MAX_PROBES)
        sources.append("leave-one-identity-out over the references" if probes == len(embeddings) else
                       f"leave-one-identity-out over {probes} sampled references")
    impostor = np.concatenate(parts)
    impostor = impostor[np.isfinite(impostor)]
    if len(impostor):
        threshold = calibration.threshold_at_fpir(impostor, target_fpir)
        impostor_source = " + ".join(sources)
    else:
        threshold = 0.5
        impostor_source = "none available (single identity, no cohort, no distractors): default 0.5"
    events = int((impostor >= threshold).sum())
    low, high = clopper_pearson(events, len(impostor))
    record.update({
        "impostor_source": impostor_source, "impostor_count": int(len(impostor)),
        "fpir_at_threshold": calibration.rate_at(impostor, threshold),
        "fpir_interval_95": [low, high],
        "fpir_interval_wider_than_target": bool(high - low > target_fpir),
        "leave_one_out_impostor_count": int(len(leave_one_out)),
        "leave_one_out_fpir_at_threshold": calibration.rate_at(leave_one_out, threshold),
        "tpir_at_threshold_leave_one_out": calibration.rate_at(genuine, threshold)})
    if record["fpir_interval_wider_than_target"]:
        log.warning("the FPIR at the threshold is known only to within [%.4f, %.4f] (95%%, %d impostor faces), "
                    "wider than the target %.4f: add impostor faces (--impostors) or a larger cohort",
                    low, high, len(impostor), target_fpir)
    return threshold, record


_BUILT_KEYS = {"format", "format_version", "gallery_version", "created_at", "model_pack", "embedder_id",
               "embedding_dim", "index_kind", "identity_count", "reference_count", "match_threshold",
               "calibration", "files", "derived_from"}
