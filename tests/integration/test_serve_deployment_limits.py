"""The deployed Serve app's limits and state over real HTTP on 127.0.0.1 (real ONNX models, the
local S3 server): a video past a cap is a 413 naming it, a request past request_timeout_s is a
504, the autoscaled analyze deployment has no fixed replica count, and a hot-swapped gallery
survives its replicas being killed and restarted (the active-gallery pointer in object storage)."""
from __future__ import annotations

import json
import shutil
import time

import pytest
import requests

from tests.support.shared_data import DATA, ONNX_PACK, PHOTOS

API_KEY = "limits-test-key-7c41d2e9b0a3"
ADMIN_KEY = "limits-test-admin-key-2f9e8a17"
STATE_BUCKET = "vipwatch-serve-state"
POINTER = f"s3://{STATE_BUCKET}/vip/ACTIVE"
CLIP = DATA / "deepfakes" / "ffpp" / "original" / "634.mp4"   # 1280x720, 338 frames, 13.5 s
OBAMA = PHOTOS / "face_recognition" / "obama.jpg"


@pytest.fixture(scope="module")
def versions(onnx_gallery, tmp_path_factory):
    """A gallery root holding version A (with Obama) and, as LATEST, version B (without him)."""
    from index.gallery import Gallery

    root = tmp_path_factory.mktemp("limits_gallery") / "gallery"
    shutil.copytree(onnx_gallery, root)
    a = Gallery.load(str(root))
    b = a.without_identity("barack_obama")
    b.save(str(root))
    return str(root), a.version, b.version


@pytest.fixture(scope="module")
def server(ray_cluster, s3_server, versions, tmp_path_factory):
    from ray import serve

    from core.config import DecodeConfig, ServeAutoscaling, ServeConfig
    from vipwatch.s3server import free_port
    from vipwatch.serve.app import APP_NAME, build_app

    s3_server.create_bucket(STATE_BUCKET)
    keys = tmp_path_factory.mktemp("keys")
    (keys / "api-key").write_text(API_KEY + "\n")
    (keys / "admin-api-key").write_text(ADMIN_KEY)
    root, _, _ = versions
    config = ServeConfig(gallery=root, model=ONNX_PACK, storage=s3_server.storage(),
                         api_key_env="VIPWATCH_UNSET_KEY", api_key_file=str(keys / "api-key"),
                         admin_api_key_file=str(keys / "admin-api-key"),
                         active_gallery_pointer=POINTER, request_timeout_s=20.0, max_queued_requests=8,
                         autoscaling=ServeAutoscaling(min_replicas=1, max_replicas=1),
                         decode=DecodeConfig(video_max_duration_s=10.0, video_max_frames=2))
    application = build_app(config)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(application, name=APP_NAME, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}", application, config
    finally:
        serve.shutdown()


def auth(key: str = API_KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def error_of(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_keys_come_from_the_mounted_files(server):
    url, _, _ = server
    assert requests.get(url + "/v1/gallery", headers=auth(), timeout=30).status_code == 200
    assert requests.get(url + "/v1/gallery", headers=auth("x" * 28), timeout=30).status_code == 401


def test_a_video_past_the_duration_cap_is_a_413_naming_it(server):
    url, _, _ = server
    response = requests.post(url + "/v1/analyze", headers=auth(), files={"image": ("clip.mp4", CLIP.read_bytes())},
                             timeout=120)
    error = error_of(response, 413)
    assert error["code"] == "video_too_long"
    assert "13.5 s > limit 10 s" in error["message"]


def test_analyze_autoscales_and_every_deployment_bounds_its_queue(server):
    _, application, config = server
    ingress = application._bound_deployment
    stages = ingress.init_args[3]
    configs = {stage._bound_deployment.name: stage._bound_deployment._deployment_config for stage in stages}
    configs["ingress"] = ingress._deployment_config
    assert configs["analyze"].autoscaling_config is not None
    assert configs["analyze"].autoscaling_config.max_replicas == config.autoscaling.max_replicas
    assert all(c.max_queued_requests == config.max_queued_requests for c in configs.values())


def kill_gallery_replicas() -> int:
    import ray

    killed = 0
    for actor in ray.util.list_named_actors(all_namespaces=True):
        deployment = actor["name"].split("#")[1] if actor["name"].startswith("SERVE_REPLICA::") else ""
        if deployment in ("match", "forgery"):
            ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
            killed += 1
    return killed


def test_a_hot_swapped_gallery_survives_a_replica_restart(server, versions, s3_server):
    from core import storage

    url, _, config = server
    root, version_a, version_b = versions
    assert requests.get(url + "/v1/gallery", headers=auth(), timeout=30).json()["gallery_version"] == version_b
    swapped = requests.post(url + "/v1/admin/gallery", headers=auth(ADMIN_KEY), json={"version": version_a},
                            timeout=120)
    assert swapped.status_code == 200, swapped.text
    pointer = json.loads(storage.read_bytes(POINTER, config.storage))
    assert pointer["gallery_version"] == version_a and pointer["gallery_uri"].endswith(f"/versions/{version_a}")

    assert kill_gallery_replicas() >= 1
    deadline = time.monotonic() + 180
    answer = None
    while time.monotonic() < deadline:
        try:
            answer = requests.post(url + "/v1/analyze", headers=auth(), files={"image": OBAMA.read_bytes()},
                                   timeout=120)
            if answer.status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    assert answer is not None and answer.status_code == 200, answer.text if answer is not None else "no answer"
    # Restarted from the configured root, the replicas would have loaded LATEST (B, no Obama).
    body = answer.json()
    assert body["gallery_version"] == version_a
    assert [f["identity_id"] for f in body["faces"]] == ["barack_obama"]
    assert requests.get(url + "/v1/gallery", headers=auth(), timeout=30).json()["gallery_version"] == version_a


def test_a_request_past_the_timeout_is_a_504(server):
    """Last in the module: the app redeployed with a 1 ms limit, which no real chain (decode,
    three deployments, each a remote call) meets."""
    from ray import serve

    from vipwatch.serve.app import APP_NAME, build_app

    url, _, config = server
    serve.run(build_app(config.model_copy(update={"request_timeout_s": 0.001})), name=APP_NAME, route_prefix="/")
    response = requests.post(url + "/v1/analyze", headers=auth(), files={"image": OBAMA.read_bytes()}, timeout=120)
    error = error_of(response, 504)
    assert error["code"] == "request_timeout" and "0.001 s" in error["message"]
