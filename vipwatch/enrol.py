"""Enrolment: embed reference images laid out as <root>/<identity_id>/<image> and build a Gallery.

Uses the same ImageDecoder and FaceAnalyzer as the crawl. Each reference must give exactly
one usable face; others are reported with the reason and skipped.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from index.cohort import Cohort
from index.gallery import Gallery, GalleryError, embeddings_of
from operators.decode import ImageDecoder
from operators.face_analyzer import FaceAnalyzer
from operators.forgery import identity_signal
from operators.runner import ChainRunner
from core import storage
from core.images import encode_jpeg
from core.config import DecodeConfig, ModelPackConfig, StorageConfig
from core.schema import STATUS_OK
from core.storage import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)


@dataclass
class Enrolment:
    gallery: Gallery
    rejected: list[dict] = field(default_factory=list)


def list_references(root: str, storage_config: Optional[StorageConfig] = None,
                    max_per_identity: Optional[int] = None) -> list[tuple[str, str]]:
    """(identity_id, uri) pairs: the first path component below root is the identity."""
    root = storage.normalise(root)
    pairs: dict[str, list[str]] = {}
    for uri in storage.list_files(root, IMAGE_EXTENSIONS, storage_config):
        relative = uri[len(root):].lstrip("/")
        if "/" not in relative:
            continue  # files directly under root belong to no identity
        pairs.setdefault(relative.split("/", 1)[0], []).append(uri)
    return [(identity, uri) for identity in sorted(pairs)
            for uri in sorted(pairs[identity])[:max_per_identity]]


def read_display_names(root: str, storage_config: Optional[StorageConfig] = None) -> dict[str, str]:
    uri = storage.join(root, "identities.csv")
    if not storage.exists(uri, storage_config):
        return {}
    reader = csv.DictReader(io.StringIO(storage.read_bytes(uri, storage_config).decode("utf-8")))
    return {row["identity_id"]: row.get("display_name") or row["identity_id"] for row in reader}


def load_cohort(cohort: Optional[str], embedder_id: str,
                storage_config: Optional[StorageConfig] = None) -> Optional[Cohort]:
    if cohort in (None, "", "none"):
        return None
    if cohort == "auto":
        found = Cohort.for_embedder(embedder_id, storage_config=storage_config)
        if found is None:
            log.warning("no impostor cohort for embedder %s (build one: python -m jobs.build_cohort); the threshold "
                        "comes from distractors and leave-one-identity-out only", embedder_id)
        return found
    found = Cohort.load(cohort, storage_config)
    found.check_compatible(embedder_id)
    return found


def embed_images(uris: list[str], analyzer: FaceAnalyzer, decoder: ImageDecoder,
                 storage_config: Optional[StorageConfig] = None) -> pa.Table:
    """Decode + analyse a list of URIs in-process, in batches: WORK_SCHEMA rows."""
    return ChainRunner([decoder, analyzer], storage_config).run_uris(uris)


def enroll(root: str, model: ModelPackConfig, aligned: bool = False, target_fpir: float = 0.01,
           impostors: Optional[str] = None, max_per_identity: Optional[int] = None,
           storage_config: Optional[StorageConfig] = None, analyzer: Optional[FaceAnalyzer] = None,
           cohort: Optional[str] = "auto") -> Enrolment:
    """``cohort``: "auto" = the impostor cohort for the pack's embedder ($VIPWATCH_COHORTS, else the
    repo's models/cohorts/), a cohort URI, or None for none (then the threshold comes from
    ``impostors`` and/or the references leave-one-identity-out)."""
    pairs = list_references(root, storage_config, max_per_identity)
    if not pairs:
        raise GalleryError(f"no reference images under {root} (expected <root>/<identity_id>/<image>)")
    if analyzer is None:
        analyzer = FaceAnalyzer(model, aligned=aligned, storage=storage_config)
    elif analyzer.aligned != aligned:
        # Reuse the loaded models; only the input mode differs.
        analyzer = FaceAnalyzer(analyzer.model_config, aligned=aligned, pack=analyzer.pack)
    decoder = ImageDecoder(DecodeConfig())
    rows = embed_images([uri for _, uri in pairs], analyzer, decoder, storage_config)
    identity_of = {uri: identity for identity, uri in pairs}

    faces_per_image: dict[str, int] = {}
    for uri, status in zip(rows.column("image_uri").to_pylist(), rows.column("status").to_pylist()):
        faces_per_image[uri] = faces_per_image.get(uri, 0) + (status == STATUS_OK)
    rejected, keep = [], []
    for position, record in enumerate(rows.select(["image_uri", "status", "error", "face_index"]).to_pylist()):
        uri = record["image_uri"]
        reason = None
        if record["status"] != STATUS_OK:
            reason = record["error"] or "no face found"
        elif faces_per_image[uri] > 1:
            reason = f"{faces_per_image[uri]} faces found: a reference must show exactly one"
        if reason:
            if record["face_index"] in (None, 0):
                rejected.append({"identity_id": identity_of[uri], "image_uri": uri, "reason": reason})
        else:
            keep.append(position)
    for item in rejected:
        log.warning("reference skipped: %s (%s): %s", item["image_uri"], item["identity_id"], item["reason"])
    faces = rows.take(keep)
    aligned_faces = [np.frombuffer(face, np.uint8).reshape(112, 112, 3)
                     for face in faces.column("aligned_face").to_pylist()]
    references = pa.table({
        "identity_id": [identity_of[u] for u in faces.column("image_uri").to_pylist()],
        "image_uri": faces.column("image_uri"),
        "image_sha256": faces.column("image_sha256"),
        "embedding": faces.column("embedding"),
        # JPEG keeps the artefact small; the report shows these beside alerts.
        "aligned_face_jpeg": [encode_jpeg(face) for face in faces.column("aligned_face").to_pylist()],
        # The identity-aware forgery signal compares probes' inner face / outer ring with these.
        **identity_signal.reference_columns(analyzer.pack, aligned_faces),
    })
    impostor_embeddings = None
    if impostors:
        impostor_rows = embed_images(storage.list_files(impostors, IMAGE_EXTENSIONS, storage_config),
                                     analyzer, decoder, storage_config)
        impostor_faces = impostor_rows.filter(pc.equal(impostor_rows.column("status"), STATUS_OK))
        impostor_embeddings = embeddings_of(impostor_faces)
    gallery = Gallery.build(references, analyzer.pack.name, analyzer.pack.embedder_id, target_fpir=target_fpir,
                            impostor_embeddings=impostor_embeddings,
                            cohort=load_cohort(cohort, analyzer.pack.embedder_id, storage_config),
                            display_names=read_display_names(root, storage_config),
                            extra_manifest={"source": root, "aligned_input": aligned,
                                            "rejected_references": len(rejected),
                                            **identity_signal.manifest_entry(analyzer.pack)})
    return Enrolment(gallery=gallery, rejected=rejected)
