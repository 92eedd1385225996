"""The allow-list rules on their own (the HTTP refusals are in test_serve.py)."""
from __future__ import annotations

import pytest

from vipwatch.serve.security import (UriRefused, bearer_matches, check_object_uri, key_digest,
                                     normalise_prefixes, within_roots)


def test_prefixes_end_at_a_segment_boundary():
    allowed = normalise_prefixes(["s3://vip-uploads/inbox", "s3://media-bucket"])
    assert allowed == ["s3://vip-uploads/inbox/", "s3://media-bucket/"]
    assert check_object_uri("s3://vip-uploads/inbox/a/b.jpg", allowed)
    for uri in ("s3://vip-uploads/inbox-private/b.jpg", "s3://vip-uploads/b.jpg", "s3://media-bucket-2/b.jpg",
                "s3://vip-uploads/inbox//b.jpg", "s3://vip-uploads/inbox/./b.jpg", "s3://vip-uploads/inbox/"):
        with pytest.raises(UriRefused):
            check_object_uri(uri, allowed)
    for bad in ("http://vip-uploads/", "s3://", "s3://UPPER/", "/data"):
        with pytest.raises(ValueError):
            normalise_prefixes([bad])


def test_gallery_roots_admit_only_what_lies_below_them(tmp_path):
    root = tmp_path / "galleries" / "vip"
    (root / "versions" / "v1").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    assert within_roots(str(root / "versions" / "v1"), [str(root)])
    assert not within_roots(str(root / ".." / ".." / "secret"), [str(root)])
    assert not within_roots(str(tmp_path / "galleries" / "vip-other"), [str(root)])
    s3_root = "s3://galleries/vip"
    assert within_roots("s3://galleries/vip/versions/v2", [s3_root])
    assert not within_roots("s3://galleries/vip-evil/versions/v2", [s3_root])
    assert not within_roots("s3://galleries/vip/../other", [s3_root])
    assert not within_roots("http://galleries/vip/versions/v2", [s3_root, str(root)])


def test_bearer_key_check():
    digest = key_digest("a-long-random-key-123")
    assert bearer_matches("Bearer a-long-random-key-123", digest)
    assert bearer_matches("bearer a-long-random-key-123", digest)
    for header in (None, "", "Bearer", "Bearer a-long-random-key-12", "Basic a-long-random-key-123",
                   "a-long-random-key-123"):
        assert not bearer_matches(header, digest)
    assert not bearer_matches("Bearer anything", None)


def _call_guard(guard, path, root_path="", key=None, body=b""):
    import asyncio

    sent, reached = [], []

    async def app(scope, receive, send):
        reached.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    guard.app = app
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    scope = {"type": "http", "path": path, "root_path": root_path, "headers": headers}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], reached


def test_guard_checks_the_admin_key_under_a_route_prefix_too():
    from vipwatch.serve.security import RequestGuard

    guard = RequestGuard(None, key_digest("caller-key-0123456789"), key_digest("admin-key-0123456789"), 64)
    assert _call_guard(guard, "/vw/v1/admin/gallery", "/vw", "caller-key-0123456789")[0] == 401
    assert _call_guard(guard, "/vw/v1/admin/gallery", "/vw", "admin-key-0123456789")[0] == 200
    assert _call_guard(guard, "/vw/healthz", "/vw")[0] == 200
    assert _call_guard(guard, "/vw/v1/gallery", "/vw")[0] == 401
    # A chunked body (no Content-Length) over the limit never reaches the app; one under it
    # reaches it whole.
    assert _call_guard(guard, "/v1/analyze", key="caller-key-0123456789", body=b"x" * 65) == (413, [])
    assert _call_guard(guard, "/v1/analyze", key="caller-key-0123456789", body=b"x" * 64) == (200, [b"x" * 64])
