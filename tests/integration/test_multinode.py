"""The crawl submitted with `ray job submit` to a two-node local cluster (`ray start --head` +
`ray start --address`, each with its own temp dir, both on 127.0.0.1) gives the same rows as
the same operators run in one plain process.

Teardown stops only this cluster: every process whose command line names this cluster's temp
root or GCS address (never `ray stop`, which would stop every Ray cluster on the machine).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pytest

from tests.support.shared_data import ONNX_PACK, PHOTOS
from core.config import REPO_ROOT, SHARED_DIR
from vipwatch.s3server import free_port

pytestmark = pytest.mark.slow

IMAGES = ["face_recognition/obama.jpg", "face_recognition/two_people.jpg", "face_recognition/biden.jpg",
          "facenet_pytorch/multiface.jpg", "ultralight/13.jpg", "scrfd/s_l.jpg"]
BUCKET = "multinode"
WORKER_LOOPBACK = "::ffff:127.0.0.1"


class LocalRayCluster:
    """A head and one worker node, each `ray start`ed with its own temp dir and explicit ports."""

    def __init__(self, cpus_per_node: int = 1, object_store_mb: int = 300):
        # Short root: Ray's unix socket paths under it must stay below 108 characters.
        self.root = Path(tempfile.mkdtemp(prefix="vwmn", dir="/tmp"))
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.cpus_per_node = cpus_per_node
        self.object_store = str(object_store_mb * 2**20)
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                    # Loopback-only binding for the head; see _start_worker for the worker.
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        self.env.pop("RAY_ADDRESS", None)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _ports(self) -> list[str]:
        # Explicit free ports: the defaults (8265, 52365, 10001, ...) collide with other clusters here.
        return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]

    def _ray_start(self, args: list[str], env: dict) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        result = subprocess.run([ray, "start", "--num-cpus", str(self.cpus_per_node),
                                 "--object-store-memory", self.object_store, "--disable-usage-stats", *args,
                                 *self._ports()], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"ray start failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"

    def start(self) -> "LocalRayCluster":
        self._ray_start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.gcs_port),
                         "--temp-dir", str(self.root / "head"),
                         "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                         "--dashboard-port", str(self.dashboard_port),
                         "--ray-client-server-port", str(free_port())], self.env)
        # `ray start --address` refuses to join while this variable is 0 ("multi-node not
        # supported"); with it at 1, Ray rewrites 127.0.0.1 (address and node IP) to the machine's
        # network address. The IPv4-mapped spelling of loopback is not rewritten, so the worker
        # dials the head's loopback-only GCS and advertises loopback.
        self._ray_start(["--address", f"[{WORKER_LOOPBACK}]:{self.gcs_port}", "--node-ip-address", WORKER_LOOPBACK,
                         "--temp-dir", str(self.root / "worker")],
                        {**self.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"})
        return self

    def processes(self) -> list[psutil.Process]:
        marks = (str(self.root), self.address, f"{WORKER_LOOPBACK}]:{self.gcs_port}")
        found = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            try:
                command = " ".join(process.info["cmdline"] or [])
            except psutil.Error:
                continue
            if process.pid != os.getpid() and any(mark in command for mark in marks):
                found.append(process)
        return found

    def ray_cli(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        ray = str(Path(sys.executable).with_name("ray"))
        return subprocess.run([ray, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=REPO_ROOT)

    def alive_nodes(self) -> list[dict]:
        result = self.ray_cli("list", "nodes", "--address", self.dashboard, "--format", "json")
        assert result.returncode == 0, result.stderr[-2000:]
        return [n for n in json.loads(result.stdout) if n.get("state") == "ALIVE"]

    def stop(self) -> None:
        processes = self.processes()
        for process in processes:
            try:
                process.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(processes, timeout=15)
        for process in alive:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(s3_server):
    """Started after the S3 server so that the nodes (and the job driver) inherit its endpoint."""
    local = LocalRayCluster().start()
    try:
        yield local
    finally:
        local.stop()
        leftover = local.processes()
        assert not leftover, f"processes of the test cluster still running: {[p.pid for p in leftover]}"


@pytest.fixture(scope="module")
def crawl_inputs(s3_server, onnx_gallery):
    from core import storage

    s3 = s3_server.storage()
    s3_server.create_bucket(BUCKET)
    for name in IMAGES:
        storage.write_bytes(f"s3://{BUCKET}/in/{name}", (PHOTOS / name).read_bytes(), s3)
    # A truncated JPEG: the error row must come out of both runs alike.
    storage.write_bytes(f"s3://{BUCKET}/in/broken.jpg", (PHOTOS / IMAGES[0]).read_bytes()[:2000], s3)
    storage.upload_dir(onnx_gallery, f"s3://{BUCKET}/gallery", s3)
    return {"input": f"s3://{BUCKET}/in/", "gallery": f"s3://{BUCKET}/gallery"}


def single_process_rows(crawl_inputs, s3_storage, analyzer) -> pa.Table:
    from operators.decode import ImageDecoder
    from operators.matcher import GalleryMatcher
    from core import storage
    from core.schema import to_output

    uris = storage.list_files(crawl_inputs["input"], storage=s3_storage)
    batch = pa.table({"path": [u[len("s3://"):] for u in uris],
                      "bytes": pa.array([storage.read_bytes(u, s3_storage) for u in uris], pa.binary())})
    matcher = GalleryMatcher(crawl_inputs["gallery"], storage=s3_storage)
    return to_output(matcher(analyzer(ImageDecoder(uri_prefix="s3://")(batch))))


def by_face(table: pa.Table) -> dict:
    columns = ["image_uri", "status", "error", "face_index", "bbox", "det_score", "identity_id", "match_score",
               "embedding", "image_sha256", "model_pack", "gallery_version"]
    return {(r["image_uri"], r["face_index"]): r for r in table.select(columns).to_pylist()}


def test_ray_job_submit_to_two_node_cluster_matches_single_process(cluster, crawl_inputs, s3_server, onnx_analyzer):
    from vipwatch.crawl.summary import read_results

    nodes = cluster.alive_nodes()
    assert len(nodes) == 2, f"expected head + worker, got {nodes}"
    assert {n["node_ip"] for n in nodes} == {"127.0.0.1", WORKER_LOOPBACK}

    output = f"s3://{BUCKET}/out-cluster"
    runtime_env = {"env_vars": {k: os.environ[k] for k in (
        "VIPWATCH_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED") if k in os.environ} | {
        # The job runs from an unpacked copy of --working-dir: ../shared beside it does not exist.
        "VIPWATCH_SHARED": str(SHARED_DIR)},
        "excludes": [".git", ".venv", "*.onnx", "*.parquet", "out"]}
    submitted = cluster.ray_cli(
        "job", "submit", "--address", cluster.dashboard, "--working-dir", ".",
        "--runtime-env-json", json.dumps(runtime_env), "--",
        sys.executable, "-m", "jobs.crawl", "--input", crawl_inputs["input"], "--gallery", crawl_inputs["gallery"],
        "--output", output, "--job-id", "multinode", "--model-pack", ONNX_PACK.pack,
        "--detector-file", ONNX_PACK.detector_file, "--embedder-file", ONNX_PACK.embedder_file,
        timeout=900)
    assert submitted.returncode == 0, f"job failed:\n{submitted.stdout[-4000:]}\n{submitted.stderr[-4000:]}"
    assert "succeeded" in (submitted.stdout + submitted.stderr).lower()

    cluster_rows = by_face(read_results(output, storage_config=s3_server.storage()))
    local_rows = by_face(single_process_rows(crawl_inputs, s3_server.storage(), onnx_analyzer))
    assert set(cluster_rows) == set(local_rows)
    images = {uri for uri, _ in local_rows}
    assert len(images) == len(IMAGES) + 1
    statuses = {r["status"] for r in local_rows.values()}
    assert {"ok", "error"} <= statuses, "the inputs should give face rows and an error row"
    for key, local in local_rows.items():
        remote = cluster_rows[key]
        for column in ("status", "error", "identity_id", "image_sha256", "model_pack", "gallery_version"):
            assert remote[column] == local[column], (key, column)
        if local["status"] == "ok":
            np.testing.assert_allclose(remote["bbox"], local["bbox"], atol=1.0)
            assert remote["det_score"] == pytest.approx(local["det_score"], abs=1e-3)
            assert remote["match_score"] == pytest.approx(local["match_score"], abs=1e-3)
            assert float(np.dot(remote["embedding"], local["embedding"])) > 0.999


def test_teardown_finds_only_this_clusters_processes(cluster):
    """The processes the teardown would stop all belong to this cluster's temp root / GCS address,
    and both nodes' raylets are among them."""
    processes = cluster.processes()
    raylets = [p for p in processes if p.name() == "raylet"]
    assert len(raylets) == 2
    for process in processes:
        command = " ".join(process.cmdline())
        assert str(cluster.root) in command or cluster.address in command
    # Each node got its own temp dir.
    assert (cluster.root / "head").is_dir() and (cluster.root / "worker").is_dir()
