"""The HTTP face of the app: FastAPI routes on the ingress deployment.

An image is decoded here by the crawl's ImageDecoder, then passed through the Stage deployments
in `face_stages` order; the response rows are the crawl's output rows (OUTPUT_SCHEMA), the
embedding left out unless asked for.
"""
from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import Any, Optional

import numpy as np
import pyarrow as pa
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from ray import serve

from index.gallery import embeddings_of
from operators.decode import ImageDecoder
from core import storage
from core.config import ServeConfig
from core.schema import (STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, VERDICT_AUTHENTIC, VERDICT_SUSPECTED,
                         to_output)
from vipwatch.serve.deployments import write_active_gallery
from vipwatch.serve.errors import ApiError, decode_error, install_handlers, log
from vipwatch.serve.security import RequestGuard, normalise_prefixes, within_roots
from vipwatch.serve.sources import ImageInput, read_image

VERSION_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
IMAGE_BODY = {
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary"},
            "identity_id": {"type": "string", "description": "/v1/verify only"}}}},
        "application/json": {"schema": {"type": "object", "required": ["uri"], "properties": {
            "uri": {"type": "string", "example": "s3://vip-uploads/2026/11/photo.jpg"},
            "identity_id": {"type": "string", "description": "/v1/verify only"}}}},
    }}}


class GalleryReload(BaseModel):
    """Empty: re-read the served gallery root (its LATEST). ``version``: a version under that
    root. ``uri``: a gallery root or version under an allowed gallery prefix."""

    uri: Optional[str] = None
    version: Optional[str] = Field(default=None, pattern=VERSION_NAME)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class Ingress:
    def __init__(self, config: ServeConfig, api_key_digest: str, admin_key_digest: Optional[str],
                 stages: list, matcher_position: int, gallery_positions: list[int]):
        self.config = config
        self.api_key_digest = api_key_digest
        self.admin_key_digest = admin_key_digest
        self.stages = stages
        self.matcher = stages[matcher_position]
        # Commit order of a swap: later stages first, the matcher (which stamps the version) last.
        self.gallery_stages = [stages[p] for p in sorted(gallery_positions, key=lambda p: p == matcher_position)]
        self._swap_lock = asyncio.Lock()
        self.decoder = ImageDecoder(config.decode)
        self.allowed_prefixes = normalise_prefixes(config.allowed_uri_prefixes)
        self.gallery_roots = [config.gallery, *config.allowed_gallery_prefixes]

    def __serve_build_asgi_app__(self) -> RequestGuard:
        return RequestGuard(build_api(self), self.api_key_digest, self.admin_key_digest,
                            self.config.max_request_bytes,
                            public_paths=("/healthz", "/docs", "/openapi.json") if self.config.public_docs
                            else ("/healthz",))

    # ---- the face chain -----------------------------------------------------------------
    async def image_from(self, request: Request) -> ImageInput:
        return await read_image(request, self.allowed_prefixes, self.config.storage, self.config.max_request_bytes)

    async def rows_for(self, image: ImageInput) -> pa.Table:
        try:
            return await asyncio.wait_for(self._chain(image), timeout=self.config.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, "request_timeout",
                           f"analysis took longer than {self.config.request_timeout_s:g} s; try a smaller image "
                           "or a shorter video") from None

    async def _chain(self, image: ImageInput) -> pa.Table:
        decoded = await asyncio.to_thread(self.decoder, pa.table({"path": [image.uri],
                                                                  "bytes": pa.array([image.data], pa.binary())}))
        status = decoded.column("status").to_pylist()
        if all(s == STATUS_ERROR for s in status):
            raise decode_error(decoded.column("error")[0].as_py() or "not a decodable image")
        table = decoded
        for stage in self.stages:
            table = await stage.remote(table)
        return table

    async def analyze(self, request: Request, embedding: bool) -> dict:
        image = await self.image_from(request)
        table = await self.rows_for(image)
        return summarise(table, embedding)

    async def verify(self, request: Request, embedding: bool) -> dict:
        image = await self.image_from(request)
        identity_id = image.fields.get("identity_id")
        if not identity_id:
            raise ApiError(400, "missing_identity_id", "identity_id is required (form field or JSON key)")
        table = await self.rows_for(image)
        summary = summarise(table, embedding=True)
        faces = summary["faces"]
        if not faces:
            raise ApiError(422, "no_face", "no face found in the image: nothing to verify")
        vectors = embeddings_of(pa.table({"embedding": [f["embedding"] for f in faces]}))
        scored = await self.matcher.identity_scores.remote(vectors, identity_id, summary["gallery_version"])
        if scored["scores"] is None:
            raise ApiError(404, "unknown_identity",
                           f"identity {identity_id!r} is not in gallery {scored['gallery_version']}")
        best = int(np.argmax(scored["scores"]))
        face, score = faces[best], scored["scores"][best]
        if not embedding:
            for row in faces:
                row.pop("embedding", None)
        verdict = face.get("verdict")
        return {
            "identity_id": identity_id, "is_match": score >= scored["match_threshold"], "score": score,
            "match_threshold": scored["match_threshold"],
            "authentic": {VERDICT_AUTHENTIC: True, VERDICT_SUSPECTED: False}.get(verdict),
            "verdict": verdict, "forgery_score": face.get("forgery_score"), "reasons": face.get("reasons"),
            "face_count": len(faces), "face": face, "image": summary["image"],
            "gallery_version": scored["gallery_version"], "model_pack": summary["model_pack"],
        }

    async def reload_gallery(self, body: GalleryReload) -> dict:
        if body.uri and body.version:
            raise ApiError(400, "invalid_request", "give uri or version, not both")
        target = self.config.gallery
        if body.version:
            target = storage.join(self.config.gallery, "versions", body.version)
        elif body.uri:
            if not within_roots(body.uri, self.gallery_roots):
                raise ApiError(403, "uri_not_allowed", "gallery uri is outside the served root and allowed prefixes")
            target = body.uri
        async with self._swap_lock:
            return await self._swap_gallery(target)

    async def _swap_gallery(self, target: str) -> dict:
        previous = (await self.matcher.info.remote())["gallery_version"]
        prepared = await asyncio.gather(*[stage.prepare_gallery.remote(target) for stage in self.gallery_stages])
        versions = {p.get("version") for p in prepared}
        problem = next((p["error"] for p in prepared if not p["ok"]), None)
        if problem is None and len(versions) != 1:
            problem = f"stages loaded different versions {sorted(versions)} (LATEST moved during the load); retry"
        if problem is not None:
            await asyncio.gather(*[stage.discard_prepared.remote() for stage in self.gallery_stages])
            log.warning("gallery reload from %s failed: %s", target, problem)
            raise ApiError(409, "gallery_load_failed", f"kept gallery {previous}: {problem}")
        version = versions.pop()
        for stage in self.gallery_stages:
            if not await stage.commit_gallery.remote(version):
                raise ApiError(500, "gallery_swap_failed", f"a stage did not take gallery {version}; reload again")
        log.info("gallery swapped %s -> %s", previous, version)
        if self.config.active_gallery_pointer:
            await asyncio.to_thread(self._remember_active, target, version)
        return {"swapped": True, "previous_version": previous, "gallery": await self.matcher.info.remote()}


    def _remember_active(self, target: str, version: str) -> None:
        version_uri = target if storage.exists(storage.join(target, "manifest.json"), self.config.storage) \
            else storage.join(target.rstrip("/"), "versions", version)
        write_active_gallery(self.config.active_gallery_pointer, version_uri, version, self.config.storage)


def summarise(table: pa.Table, embedding: bool) -> dict:
    rows = to_output(table).to_pylist()
    if not embedding:
        for row in rows:
            row.pop("embedding", None)
    rows = _jsonable(rows)
    faces = [row for row in rows if row["status"] == STATUS_OK]
    failed = [row for row in rows if row["status"] == STATUS_ERROR]
    if not faces and failed:
        log.warning("analysis failed for %s: %s", failed[0]["image_uri"], failed[0]["error"])
        raise ApiError(500, "analysis_failed", "face analysis failed for this image; see server logs")
    first = rows[0]
    return {
        "image": {"uri": first["image_uri"], "sha256": first["image_sha256"], "media_type": first["media_type"],
                  "width": first["image_width"], "height": first["image_height"]},
        "status": STATUS_OK if faces else STATUS_NO_FACE, "error": None, "face_count": len(faces),
        "gallery_version": first["gallery_version"], "model_pack": first["model_pack"],
        "forgery_model": first.get("forgery_model"), "faces": faces,
    }


def build_api(service: Ingress) -> FastAPI:
    app = FastAPI(title="vipwatch", version="1",
                  description="Find protected people's faces in an image and tell authentic photos from forgeries. "
                              "Every route but /healthz needs `Authorization: Bearer <key>`.")
    install_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        return {"status": STATUS_OK}

    @app.post("/v1/analyze", tags=["faces"], openapi_extra=IMAGE_BODY)
    async def analyze(request: Request, embedding: bool = False) -> dict:
        """Every face in the image: the crawl's output row per face (bbox, landmarks, identity_id,
        match_score, candidates, forgery fields when scored)."""
        return await service.analyze(request, embedding)

    @app.post("/v1/verify", tags=["faces"], openapi_extra=IMAGE_BODY)
    async def verify(request: Request, embedding: bool = False) -> dict:
        """Is this `identity_id` (best face's score against the gallery threshold), and is it authentic?"""
        return await service.verify(request, embedding)

    @app.get("/v1/identities", tags=["gallery"])
    async def identities() -> dict:
        return await service.matcher.identities.remote()

    @app.get("/v1/gallery", tags=["gallery"])
    async def gallery() -> dict:
        return _jsonable(await service.matcher.info.remote())

    @app.post("/v1/admin/gallery", tags=["admin"])
    async def reload_gallery(body: GalleryReload) -> dict:
        """Swap to another gallery version without dropping requests (admin key)."""
        return _jsonable(await service.reload_gallery(body))

    return app


def ingress_deployment():
    """`@serve.ingress()` without an app: the replica calls ``__serve_build_asgi_app__`` after
    the constructor, so routes and the guard see this replica's config."""
    return serve.ingress()(Ingress)
