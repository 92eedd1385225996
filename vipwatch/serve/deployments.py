"""One Serve deployment per Stage of `face_stages`: the operator object is built from the Stage's
class and kwargs exactly as the crawl's actor pool builds it, and `@serve.batch` feeds it several
requests' tables per call.

Gallery hot swap, for every stage built from a ``gallery_uri`` (the matcher, the forgery scorer):
``prepare_gallery`` loads the new version beside the current one, ``commit_gallery`` makes it
current. The ingress prepares all of them, then commits the later stages first and the matcher
last. Operators are kept per gallery version, and a stage after the matcher uses the operator
for the version the matcher stamped on the rows, so a request in flight during a swap is served
by one gallery version from end to end, and nothing is dropped.

The app builder wraps these plain classes with `serve.deployment(...).options(...)`, so each
Stage gets its own name, CPUs / GPUs and replica count.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ray import serve

from core import storage
from core.config import StorageConfig
from index.gallery import embeddings_of
from vipwatch.serve.batching import call_batched

log = logging.getLogger(__name__)

# Versions kept per stage: the current one and the one before, for requests still in flight.
KEPT_VERSIONS = 2


def read_active_gallery(pointer: Optional[str], storage_config: Optional[StorageConfig]) -> Optional[str]:
    """The gallery version URI an admin reload made active, or None when none was recorded."""
    if not pointer or not storage.exists(pointer, storage_config):
        return None
    return json.loads(storage.read_bytes(pointer, storage_config))["gallery_uri"]


def write_active_gallery(pointer: str, gallery_uri: str, version: str,
                         storage_config: Optional[StorageConfig]) -> None:
    record = {"gallery_uri": gallery_uri, "gallery_version": version,
              "activated_at": datetime.now(timezone.utc).isoformat()}
    storage.write_bytes(pointer, json.dumps(record).encode(), storage_config)


def gallery_version_of(operator: Any) -> Optional[str]:
    gallery = getattr(operator, "gallery", None)
    return gallery.version if gallery is not None else None


def _stamped_version(table: pa.Table) -> Optional[str]:
    if "gallery_version" not in table.column_names or table.num_rows == 0:
        return None
    return table.column("gallery_version")[0].as_py()


class StageRunner:
    def __init__(self, operator: type, kwargs: dict, max_batch_size: int, batch_wait_timeout_s: float,
                 gallery_pointer: Optional[str] = None):
        self.operator_class = operator
        self.kwargs = dict(kwargs)
        # A (re)started replica takes the gallery an admin reload made active, not the configured one.
        active = read_active_gallery(gallery_pointer, self.kwargs.get("storage"))
        if active is not None:
            log.info("stage %s loads the active gallery %s (from %s)", operator.__name__, active, gallery_pointer)
            self.kwargs["gallery_uri"] = active
        self.current = operator(**self.kwargs)
        self.by_version: dict[str, Any] = {}
        self._remember(self.current)
        self.prepared: Optional[Any] = None
        self.run.set_max_batch_size(max_batch_size)
        self.run.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def _remember(self, operator: Any) -> None:
        version = gallery_version_of(operator)
        if version is not None:
            self.by_version[version] = operator
            while len(self.by_version) > KEPT_VERSIONS:
                self.by_version.pop(next(iter(self.by_version)))

    def _operator_for(self, table: pa.Table) -> Any:
        return self.by_version.get(_stamped_version(table), self.current)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.02)
    async def run(self, tables: list[pa.Table]) -> list[pa.Table]:
        groups: dict[int, tuple[Any, list[int]]] = {}
        for position, table in enumerate(tables):
            operator = self._operator_for(table)
            groups.setdefault(id(operator), (operator, []))[1].append(position)
        results: list[Optional[pa.Table]] = [None] * len(tables)
        for operator, positions in groups.values():
            # A worker thread keeps the event loop taking requests (the next batch fills up)
            # while the model runs; onnxruntime / FAISS release the GIL.
            outputs = await asyncio.to_thread(call_batched, operator, [tables[p] for p in positions])
            for position, output in zip(positions, outputs):
                results[position] = output
        return results

    async def __call__(self, table: pa.Table) -> pa.Table:
        return await self.run(table)

    # ---- gallery swap ---------------------------------------------------------------------
    async def prepare_gallery(self, gallery_uri: str) -> dict:
        """Build the operator for another gallery beside the current one (hashes checked)."""
        try:
            # Only the gallery changes: models the operator holds apart from it are handed over,
            # not loaded a second time beside the current ones.
            models = self.current.gallery_independent_parts() if hasattr(self.current, "gallery_independent_parts") else {}
            candidate = await asyncio.to_thread(self.operator_class,
                                                **{**self.kwargs, "gallery_uri": gallery_uri, **models})
            old = self.current.gallery.manifest
            candidate.gallery.check_compatible(old["embedder_id"], old["embedding_dim"])
        except Exception as exc:  # any failure keeps the current gallery; the caller reports it
            self.prepared = None
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        self.prepared = candidate
        return {"ok": True, "version": candidate.gallery.version}

    def commit_gallery(self, version: str) -> bool:
        if self.prepared is None or gallery_version_of(self.prepared) != version:
            return False
        self._remember(self.prepared)
        self.current, self.prepared = self.prepared, None
        return True

    def discard_prepared(self) -> None:
        self.prepared = None


class MatcherRunner(StageRunner):
    """The GalleryMatcher stage, which also answers the gallery queries. One replica, so a swap
    reaches every request; FAISS over a VIP gallery is cheap, scale the analyzer instead."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gallery_uri = self.kwargs.get("gallery_uri")
        self.prepared_uri: Optional[str] = None

    async def prepare_gallery(self, gallery_uri: str) -> dict:
        result = await super().prepare_gallery(gallery_uri)
        self.prepared_uri = gallery_uri if result["ok"] else None
        return result

    def commit_gallery(self, version: str) -> bool:
        uri = self.prepared_uri
        committed = super().commit_gallery(version)
        if committed:
            self.gallery_uri = uri
        return committed

    def info(self) -> dict:
        manifest = self.current.gallery.manifest
        keys = ("gallery_version", "created_at", "model_pack", "embedder_id", "embedding_dim", "index_kind",
                "identity_count", "reference_count", "match_threshold", "calibration", "derived_from")
        return {"source": self.gallery_uri, **{key: manifest.get(key) for key in keys}}

    def identities(self) -> dict:
        gallery = self.current.gallery
        columns = ["identity_id", "display_name", "reference_count"]
        return {"gallery_version": gallery.version, "identities": gallery.identities.select(columns).to_pylist()}

    def identity_scores(self, embeddings: np.ndarray, identity_id: str, gallery_version: Optional[str]) -> dict:
        """Best-of-references cosine of each face to one identity (what `Gallery.search` ranks by),
        whether or not that identity made the face's top-k; on the gallery the faces were matched
        with, when it is still held."""
        gallery = self.by_version.get(gallery_version, self.current).gallery
        mask = pc.equal(gallery.references.column("identity_id"), identity_id)
        references = embeddings_of(gallery.references.filter(mask))
        scores: Optional[list] = None
        if len(references):
            scores = (np.asarray(embeddings, np.float32) @ references.T).max(axis=1).tolist()
        return {"gallery_version": gallery.version, "match_threshold": gallery.match_threshold, "scores": scores}
