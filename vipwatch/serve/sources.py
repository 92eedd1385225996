"""Where a request's image comes from: a multipart upload, or an allow-listed s3:// object."""
from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from typing import Optional

import pyarrow.fs as pafs
from fastapi import Request
from starlette.datastructures import UploadFile

from core import storage
from core.config import StorageConfig
from vipwatch.serve.errors import ApiError
from vipwatch.serve.security import UriRefused, check_object_uri

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ImageInput:
    uri: str                      # upload://<name> or the s3:// URI; becomes the rows' image_uri
    data: bytes
    fields: dict = field(default_factory=dict)   # the other form / JSON fields (e.g. identity_id)


def upload_uri(filename: Optional[str]) -> str:
    # The name is only a label (and its extension a video hint for the decoder): keep it tame.
    name = SAFE_NAME.sub("_", os.path.basename(filename or "")).strip("._")[:120]
    return f"upload://{name or 'image'}"


def fetch_object(uri: str, storage_config: StorageConfig, max_bytes: int) -> bytes:
    try:
        filesystem, path = storage.resolve(uri, storage_config)
        info = filesystem.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise ApiError(404, "object_not_found", f"no object at {uri}")
        if info.size is not None and info.size > max_bytes:
            raise ApiError(413, "payload_too_large", f"object is {info.size} bytes > limit {max_bytes}")
        with filesystem.open_input_stream(path) as stream:
            return stream.read(max_bytes + 1)
    except ApiError:
        raise
    except OSError as exc:
        # The storage error names endpoints and credentials' problems: keep it in the logs only.
        raise ApiError(502, "storage_error", f"could not read {uri} from object storage") from exc


async def read_image(request: Request, allowed_prefixes: list[str], storage_config: StorageConfig,
                     max_bytes: int) -> ImageInput:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "missing_image", "multipart field 'image' (a file) is required")
        data = await upload.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return ImageInput(upload_uri(upload.filename), data, fields)
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
        if not isinstance(body, dict) or "uri" not in body:
            raise ApiError(400, "missing_uri", 'JSON body must be an object with "uri"')
        try:
            uri = check_object_uri(body["uri"], allowed_prefixes)
        except UriRefused as exc:
            raise ApiError(403, "uri_not_allowed", str(exc)) from None
        data = await asyncio.to_thread(fetch_object, uri, storage_config, max_bytes)
        if len(data) > max_bytes:
            raise ApiError(413, "payload_too_large", f"object over the limit of {max_bytes} bytes")
        return ImageInput(uri, data, {k: v for k, v in body.items() if k != "uri" and isinstance(v, str)})
    raise ApiError(415, "unsupported_media_type",
                   "send multipart/form-data with an 'image' file, or application/json with an s3:// 'uri'")
