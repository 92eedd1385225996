"""The Serve app over real HTTP on 127.0.0.1: real ONNX models, the faces_aligned gallery, the
local S3 server. Serve starts once for the module and is shut down at its end (Ray stays up for
the other modules)."""
from __future__ import annotations

import io
import shutil
import threading
import time

import numpy as np
import pytest
import requests
from PIL import Image

from tests.support.shared_data import ONNX_PACK, PHOTOS, FACES_ALIGNED
from core.schema import OUTPUT_SCHEMA

API_KEY = "serve-test-key-5b1f0c9e2d7a"
ADMIN_KEY = "serve-test-admin-key-8e3a61f4"
MAX_REQUEST_BYTES = 3 * 1024 * 1024
UPLOADS, OTHER = "vip-uploads", "other-bucket"
OBAMA = PHOTOS / "face_recognition" / "obama.jpg"
BIDEN = PHOTOS / "face_recognition" / "biden.jpg"


@pytest.fixture(scope="module")
def gallery_root(onnx_gallery, tmp_path_factory) -> str:
    # A private copy: the hot-reload test adds versions to it.
    root = tmp_path_factory.mktemp("serve_gallery") / "gallery"
    shutil.copytree(onnx_gallery, root)
    return str(root)


@pytest.fixture(scope="module")
def server(ray_cluster, s3_server, gallery_root, monkeypatch_module):
    from ray import serve

    from core.config import ServeConfig
    from vipwatch.s3server import free_port
    from vipwatch.serve.app import APP_NAME, build_app

    for bucket in (UPLOADS, OTHER):
        s3_server.create_bucket(bucket)
        s3_server.client().put_object(Bucket=bucket, Key="people/obama.jpg", Body=OBAMA.read_bytes())
    monkeypatch_module.setenv("VIPWATCH_API_KEY", API_KEY)
    monkeypatch_module.setenv("VIPWATCH_ADMIN_API_KEY", ADMIN_KEY)
    config = ServeConfig(gallery=gallery_root, model=ONNX_PACK, storage=s3_server.storage(),
                         allowed_uri_prefixes=[f"s3://{UPLOADS}/"], max_request_bytes=MAX_REQUEST_BYTES)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(config), name=APP_NAME, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def auth(key: str = API_KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def post_image(server: str, path_or_bytes, route: str = "/v1/analyze", name: str = "image.jpg", **kwargs):
    data = path_or_bytes.read_bytes() if hasattr(path_or_bytes, "read_bytes") else path_or_bytes
    return requests.post(server + route, headers=auth(), files={"image": (name, data)}, timeout=120, **kwargs)


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body


# ---- authentication ---------------------------------------------------------------------------
def test_health_is_open_and_every_other_route_needs_the_key(server):
    assert requests.get(server + "/healthz", timeout=10).json() == {"status": "ok"}
    for path in ("/v1/gallery", "/v1/identities", "/openapi.json", "/no-such-route"):
        assert_error(requests.get(server + path, timeout=10), 401, "unauthorized")
        assert_error(requests.get(server + path, headers=auth("wrong-" + API_KEY), timeout=10), 401, "unauthorized")
    assert_error(requests.post(server + "/v1/analyze", files={"image": OBAMA.read_bytes()}, timeout=10),
                 401, "unauthorized")
    # The caller's key does not open the admin routes.
    assert_error(requests.post(server + "/v1/admin/gallery", headers=auth(), json={}, timeout=10), 401, "unauthorized")
    docs = requests.get(server + "/openapi.json", headers=auth(), timeout=10).json()
    assert {"/v1/analyze", "/v1/verify", "/v1/identities", "/v1/gallery", "/healthz"} <= set(docs["paths"])


# ---- identification ---------------------------------------------------------------------------
@pytest.mark.parametrize("photo, expected", [
    ("face_recognition/obama.jpg", ["barack_obama"]),
    ("face_recognition/knn_examples/test/obama1.jpg", ["barack_obama"]),
    # Biden is not enrolled: his face must not be claimed by anyone.
    ("face_recognition/biden.jpg", [None]),
    ("face_recognition/knn_examples/test/obama_and_biden.jpg", ["barack_obama", None]),
])
def test_analyze_names_the_enrolled_people(server, photo, expected):
    response = post_image(server, PHOTOS / photo)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["face_count"] == len(body["faces"])
    # Faces below the detector's minimum size may add rows; the named people must be there.
    named = sorted(f["identity_id"] for f in body["faces"] if f["identity_id"])
    assert named == sorted(e for e in expected if e)
    assert len(body["faces"]) >= len(expected)
    gallery = requests.get(server + "/v1/gallery", headers=auth(), timeout=10).json()
    width, height = Image.open(PHOTOS / photo).size
    for face in body["faces"]:
        # The crawl's row, minus the embedding unless asked for.
        assert set(face) == set(OUTPUT_SCHEMA.names) - {"embedding"}
        assert face["gallery_version"] == gallery["gallery_version"] == body["gallery_version"]
        assert face["model_pack"].startswith("onnx:") and face["job_id"] == "serve"
        assert face["match_threshold"] == pytest.approx(gallery["match_threshold"], rel=1e-5)
        x1, y1, x2, y2 = face["bbox"]
        assert 0 <= x1 < x2 <= width * 1.05 and 0 <= y1 < y2 <= height * 1.05
        if face["identity_id"]:
            assert face["match_score"] >= face["match_threshold"]
            assert face["candidates"][0]["identity_id"] == face["identity_id"]


def test_embedding_only_when_asked(server):
    body = post_image(server, OBAMA, params={"embedding": "true"}).json()
    vector = np.asarray(body["faces"][0]["embedding"], dtype=np.float32)
    assert vector.shape == (128,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)


def test_verify_answers_is_this_x(server):
    def verify(path, identity):
        return requests.post(server + "/v1/verify", headers=auth(), files={"image": path.read_bytes()},
                             data={"identity_id": identity}, timeout=120)

    same = verify(OBAMA, "barack_obama").json()
    assert same["is_match"] is True and same["score"] >= same["match_threshold"]
    assert {"authentic", "verdict", "forgery_score", "reasons"} <= set(same)
    other = verify(BIDEN, "barack_obama").json()
    assert other["is_match"] is False and other["score"] < other["match_threshold"]
    assert_error(verify(OBAMA, "nobody_enrolled"), 404, "unknown_identity")
    assert_error(requests.post(server + "/v1/verify", headers=auth(), files={"image": OBAMA.read_bytes()},
                               timeout=60), 400, "missing_identity_id")


def test_identities_and_gallery_describe_the_served_gallery(server):
    identities = requests.get(server + "/v1/identities", headers=auth(), timeout=10).json()
    enrolled = sorted(p.name for p in FACES_ALIGNED.iterdir() if p.is_dir())
    assert sorted(i["identity_id"] for i in identities["identities"]) == enrolled
    gallery = requests.get(server + "/v1/gallery", headers=auth(), timeout=10).json()
    assert gallery["identity_count"] == len(enrolled) and gallery["embedding_dim"] == 128
    assert gallery["gallery_version"] == identities["gallery_version"]
    assert 0.0 < gallery["match_threshold"] < 1.0


# ---- hostile input ----------------------------------------------------------------------------
def test_oversize_body_is_refused_with_413(server):
    noise = np.random.default_rng(0).bytes(MAX_REQUEST_BYTES + 1024)
    assert_error(post_image(server, noise), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit must hold on a streamed body too
        for start in range(0, len(noise), 256 * 1024):
            yield noise[start:start + 256 * 1024]

    response = requests.post(server + "/v1/analyze", data=chunks(), timeout=60,
                             headers={**auth(), "Content-Type": "multipart/form-data; boundary=x"})
    assert_error(response, 413, "payload_too_large")


def _bomb_png() -> bytes:
    # 90 megapixels declared, ~11 kB on the wire: over DecodeConfig.max_decode_pixels.
    buffer = io.BytesIO()
    Image.new("1", (10_000, 9_000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("payload, code", [
    (OBAMA.read_bytes()[:6000], "undecodable_image"),
    (b"<html><body>not an image</body></html>", "undecodable_image"),
    (b"", "empty_image"),
    (_bomb_png(), "image_too_many_pixels"),
])
def test_bad_images_are_400_with_a_code(server, payload, code):
    assert_error(post_image(server, payload), 400, code)


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:{s3_port}/vip-uploads/people/obama.jpg",   # a reachable URL: no fetching
    "https://example.com/obama.jpg",
    f"s3://{OTHER}/people/obama.jpg",                              # exists, but not allow-listed
    f"s3://{UPLOADS}-private/people/obama.jpg",                    # prefix trick on the bucket name
    f"s3://{UPLOADS}/../{OTHER}/people/obama.jpg",
    f"s3://{UPLOADS}/people/%2e%2e/obama.jpg",
    f"S3://{UPLOADS}/people/obama.jpg",
    "/etc/passwd",
    "file:///etc/passwd",
    str(OBAMA),
])
def test_uris_outside_the_allow_list_are_refused(server, s3_server, uri):
    uri = uri.format(s3_port=s3_server.port)
    response = requests.post(server + "/v1/analyze", headers=auth(), json={"uri": uri}, timeout=30)
    assert_error(response, 403, "uri_not_allowed")


def test_allow_listed_s3_uri_is_read_from_object_storage(server):
    uri = f"s3://{UPLOADS}/people/obama.jpg"
    body = requests.post(server + "/v1/analyze", headers=auth(), json={"uri": uri}, timeout=120).json()
    assert body["image"]["uri"] == uri
    assert [f["identity_id"] for f in body["faces"]] == ["barack_obama"]
    missing = requests.post(server + "/v1/analyze", headers=auth(), json={"uri": f"s3://{UPLOADS}/people/none.jpg"},
                            timeout=30)
    assert_error(missing, 404, "object_not_found")


# ---- gallery hot reload (last: it changes the served gallery) -----------------------------------
def test_gallery_hot_reload_keeps_requests_flowing(server, gallery_root):
    from index.gallery import Gallery

    old = Gallery.load(gallery_root)
    # The new version forgets Obama: a request shows which gallery served it by its answer.
    new = old.without_identity("barack_obama")
    new.save(gallery_root)
    assert new.version != old.version
    admin = auth(ADMIN_KEY)

    results, stop, lock = [], threading.Event(), threading.Lock()

    def client():
        session = requests.Session()
        while not stop.is_set():
            started = time.monotonic()
            response = session.post(server + "/v1/analyze", headers=auth(), files={"image": OBAMA.read_bytes()},
                                    timeout=120)
            with lock:
                results.append((started, time.monotonic(), response.status_code, response.json()))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    while len(results) < 4:
        time.sleep(0.05)
    reload_started = time.monotonic()
    reload = requests.post(server + "/v1/admin/gallery", headers=admin, json={}, timeout=120)
    reload_done = time.monotonic()
    while sum(1 for r in list(results) if r[0] > reload_done) < 4:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    assert reload.status_code == 200, reload.text
    assert reload.json()["previous_version"] == old.version
    assert reload.json()["gallery"]["gallery_version"] == new.version
    assert all(status == 200 for _, _, status, _ in results), [r[3] for r in results if r[2] != 200][:2]
    for started, ended, _, body in results:
        version, names = body["gallery_version"], [f["identity_id"] for f in body["faces"]]
        # Each answer is wholly from one gallery version.
        assert (version, names) in ((old.version, ["barack_obama"]), (new.version, [None]))
        if ended < reload_started:
            assert version == old.version
        if started > reload_done:
            assert version == new.version
    identities = requests.get(server + "/v1/identities", headers=auth(), timeout=10).json()
    assert "barack_obama" not in {i["identity_id"] for i in identities["identities"]}

    # A version that cannot be loaded leaves the served one in place.
    failed = requests.post(server + "/v1/admin/gallery", headers=admin, json={"version": "20990101T000000Z-missing"},
                           timeout=60)
    assert_error(failed, 409, "gallery_load_failed")
    assert requests.get(server + "/v1/gallery", headers=auth(), timeout=10).json()["gallery_version"] == new.version
    outside = requests.post(server + "/v1/admin/gallery", headers=admin, json={"uri": "/etc"}, timeout=10)
    assert_error(outside, 403, "uri_not_allowed")

    # Back to a pinned older version by name.
    back = requests.post(server + "/v1/admin/gallery", headers=admin, json={"version": old.version}, timeout=120)
    assert back.status_code == 200, back.text
    assert [f["identity_id"] for f in post_image(server, OBAMA).json()["faces"]] == ["barack_obama"]


def test_app_refuses_a_gallery_of_another_embedder_before_deploying(gallery_root, monkeypatch):
    """The ONNX-pack gallery served with the dlib pack: build_app fails with the reason, before
    any replica starts (the crawl refuses the same pairing on its driver)."""
    from index.gallery import GalleryError
    from core.config import ModelPackConfig, ServeConfig
    from vipwatch.serve.app import build_app

    monkeypatch.setenv("VIPWATCH_API_KEY", API_KEY)
    with pytest.raises(GalleryError, match="built with embedder mobilefacenet_128@"):
        build_app(ServeConfig(gallery=gallery_root, model=ModelPackConfig(pack="dlib")))
    with pytest.raises(GalleryError):
        build_app(ServeConfig(gallery=gallery_root + "-missing", model=ONNX_PACK))
