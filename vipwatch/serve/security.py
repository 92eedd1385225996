"""Who may call (bearer keys), how much they may send (body limit), and which stored objects a
caller may make the server read (URI allow-lists: no SSRF, no local files).

The keys never travel in the Serve config: the application builder reads them from the
environment and hands the replicas only their SHA-256 digests.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Awaitable, Callable, Iterable, Optional

from vipwatch.serve.errors import error_bytes

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_URI_CHARS = 1024


class UriRefused(ValueError):
    """A URI the server will not read; the message says which rule it broke."""


# ---- API keys ---------------------------------------------------------------------------------
def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def digest_from_env(variable: str, required: bool, key_file: Optional[str] = None) -> Optional[str]:
    """The key's digest, read from ``key_file`` (a mounted Secret) when named, else from
    $``variable``."""
    source = key_file or f"${variable}"
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RuntimeError(f"API key file {key_file} cannot be read: {exc.strerror}") from None
    else:
        key = os.environ.get(variable, "")
    if not key:
        if required:
            raise RuntimeError(f"{source} is empty or not set: refusing to serve without an API key")
        return None
    if len(key) < 16:
        raise RuntimeError(f"{source} is shorter than 16 characters: use a random key")
    return key_digest(key)


def bearer_matches(authorization: Optional[str], digest: Optional[str]) -> bool:
    if not digest or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Digests have a fixed length, so the comparison time says nothing about the key.
    return hmac.compare_digest(key_digest(token.strip()), digest)


# ---- object URIs ------------------------------------------------------------------------------
def _check_s3(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri:
        raise UriRefused("uri must be a non-empty string")
    if len(uri) > MAX_URI_CHARS:
        raise UriRefused(f"uri longer than {MAX_URI_CHARS} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in uri) or "\\" in uri or "%" in uri:
        raise UriRefused("uri contains control characters, backslashes or percent-encoding")
    if not uri.startswith("s3://"):
        raise UriRefused("only s3:// URIs inside the allowed prefixes are read (no http(s), file or local paths)")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not BUCKET_NAME.match(bucket) or ".." in bucket:
        raise UriRefused("not a valid bucket name")
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise UriRefused("key has empty, '.' or '..' segments")
    return bucket, key


def normalise_prefixes(prefixes: Iterable[str]) -> list[str]:
    """Allow-list entries as 's3://bucket/' or 's3://bucket/path/' (a trailing '/' is implied, so
    's3://bucket/in' never admits 's3://bucket/inbox-private/...')."""
    out = []
    for prefix in prefixes:
        bucket, _, rest = prefix.removeprefix("s3://").partition("/")
        if not prefix.startswith("s3://") or not BUCKET_NAME.match(bucket):
            raise ValueError(f"allow-list entry {prefix!r} is not s3://bucket[/prefix]")
        if rest:
            _check_s3(prefix.rstrip("/"))
        out.append(f"s3://{bucket}/" + (rest.strip("/") + "/" if rest.strip("/") else ""))
    return out


def check_object_uri(uri: str, allowed_prefixes: list[str]) -> str:
    """The URI itself when a caller may make the server read it; otherwise UriRefused."""
    _check_s3(uri)
    if not any(uri.startswith(prefix) for prefix in allowed_prefixes):
        raise UriRefused("uri is outside the allowed buckets / prefixes")
    return uri


def within_roots(uri: str, roots: Iterable[str]) -> bool:
    """For admin gallery reloads: is ``uri`` one of ``roots`` or below one (s3:// or local)?"""
    for root in roots:
        if uri.startswith("s3://") or root.startswith("s3://"):
            if not (uri.startswith("s3://") and root.startswith("s3://")):
                continue
            try:
                _check_s3(uri.rstrip("/"))
            except UriRefused:
                return False
            root = root.rstrip("/")
            if uri.rstrip("/") == root or uri.startswith(root + "/"):
                return True
        elif "://" not in uri:
            # resolve() folds '..' and symlinks, so a path cannot climb out of its root.
            if Path(uri).resolve().is_relative_to(Path(root).resolve()):
                return True
    return False


# ---- ASGI guard -------------------------------------------------------------------------------
Send = Callable[[dict], Awaitable[None]]


async def _refuse(send: Send, status: int, code: str, message: str, headers: Iterable[tuple[bytes, bytes]] = ()):
    body = error_bytes(code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Outermost ASGI layer: bearer key (admin key on admin paths), then body size. Runs before
    routing, so unknown paths answer 401 too and nothing is parsed for a refused caller."""

    def __init__(self, app, api_key_digest: str, admin_key_digest: Optional[str], max_request_bytes: int,
                 public_paths: Iterable[str] = ("/healthz",), admin_prefix: str = "/v1/admin/"):
        self.app = app
        self.api_key_digest = api_key_digest
        self.admin_key_digest = admin_key_digest
        self.max_request_bytes = max_request_bytes
        self.public_paths = set(public_paths)
        self.admin_prefix = admin_prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # Under a Serve route_prefix the path still carries the prefix (root_path); the admin
        # check must not be dodged by it.
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if path in self.public_paths:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        is_admin = path.startswith(self.admin_prefix)
        if is_admin and not self.admin_key_digest:
            return await _refuse(send, 403, "admin_disabled", "admin routes are off: no admin key configured")
        if not bearer_matches(headers.get("authorization"), self.admin_key_digest if is_admin else self.api_key_digest):
            return await _refuse(send, 401, "unauthorized", "missing or wrong bearer API key",
                                 [(b"www-authenticate", b"Bearer")])
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return await _refuse(send, 400, "bad_content_length", "Content-Length is not a number")
            if int(length) > self.max_request_bytes:
                return await _refuse(send, 413, "payload_too_large",
                                     f"request body {length} bytes > limit {self.max_request_bytes}")
            return await self.app(scope, receive, send)
        # No declared length (chunked): read up to the limit here, then replay it to the app.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_request_bytes:
                return await _refuse(send, 413, "payload_too_large",
                                     f"request body over the limit of {self.max_request_bytes} bytes")
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)
