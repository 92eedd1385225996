"""Reliability of the crawl: hostile input over S3, an actor process killed mid-crawl, the S3
server restarted mid-crawl, corrupt or mismatched galleries refused up front, and resuming an
interrupted job. A real S3 server process (moto), real local Ray, real ONNX models; nothing is patched."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.shared_data import ONNX_PACK, PHOTOS
from tests.support.hostile_inputs import ERROR, READ_FACE, READ_NO_FACE, make_cases
from index.gallery import Gallery, GalleryError
from core import storage
from core.config import CrawlConfig, ModelPackConfig, RayResources
from vipwatch.crawl.run import CrawlResult, run_crawl
from core.schema import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK
from vipwatch.crawl.shards import DONE_DIR, plan_shards
from vipwatch.crawl.summary import read_results, summarise

REPO = Path(__file__).resolve().parents[2]
FACE_PHOTOS = sorted(p for p in (PHOTOS / "ultralight").glob("*.jpg"))[:12] + [
    PHOTOS / "face_recognition" / name for name in ("obama.jpg", "biden.jpg", "two_people.jpg")]


def crawl_config(input_uri: str, gallery: str, output: str, job_id: str, shard_size: int, **kwargs) -> CrawlConfig:
    # Small batches so that a shard is several actor tasks: faults land between and inside them.
    # Small read blocks so that rows stream out, and shards commit, while the job runs.
    return CrawlConfig(input=input_uri, gallery=gallery, output=output, job_id=job_id, shard_size=shard_size,
                       model=ONNX_PACK, resources=RayResources(batch_size=4, analyzer_num_cpus=0.5, files_per_read_task=2),
                       **kwargs)


def assert_each_input_once(output_uri: str, inputs: list[str], storage_config=None):
    """Every input in the output, none twice: the (image, frame, face) keys are unique."""
    table = read_results(output_uri, ["image_uri", "frame_index", "face_index", "status"], storage_config)
    keys = Counter(zip(*(table.column(c).to_pylist() for c in ("image_uri", "frame_index", "face_index"))))
    duplicated = {k: n for k, n in keys.items() if n > 1}
    assert not duplicated, f"duplicated rows: {list(duplicated)[:5]}"
    assert set(table.column("image_uri").to_pylist()) == set(inputs)
    return table


def upload(s3_server, bucket: str, files: dict[str, bytes]) -> str:
    client = s3_server.client()
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)
    for key, data in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}"


def face_photo_key(path: Path) -> str:
    return f"in/{path.parent.name}_{path.name}"


def upload_face_photos(s3_server, bucket: str) -> tuple[str, list[str]]:
    """FACE_PHOTOS under s3://<bucket>/in/: the bucket URI and every input's URI."""
    bucket_uri = upload(s3_server, bucket, {face_photo_key(p): p.read_bytes() for p in FACE_PHOTOS})
    return bucket_uri, [f"{bucket_uri}/{face_photo_key(p)}" for p in FACE_PHOTOS]


# ---- 1. hostile input, crawl level --------------------------------------------------------------

def test_hostile_inputs_crawl(s3_server, ray_cluster, onnx_gallery, tmp_path):
    cases = make_cases()
    input_uri = upload(s3_server, "hostile", {f"in/{c.name}": c.data for c in cases}) + "/in"
    config = crawl_config(input_uri, onnx_gallery, str(tmp_path / "out"), "hostile", shard_size=10,
                          storage=s3_server.storage())
    result = run_crawl(config)
    summary = summarise(result.output, result.seconds, result.inputs)
    print("hostile crawl summary:", json.dumps(summary))
    assert summary["inputs"] == summary["images_in_output"] == len(cases)

    table = assert_each_input_once(result.output, [f"{input_uri}/{c.name}" for c in cases])
    rows = read_results(result.output).to_pylist()
    gallery_version = Gallery.load(onnx_gallery).version
    assert all(r["job_id"] == "hostile" and r["model_pack"] for r in rows)
    by_uri: dict[str, list[dict]] = {}
    for row in rows:
        by_uri.setdefault(row["image_uri"].rsplit("/", 1)[-1], []).append(row)
    for case in cases:
        got = by_uri[case.name]
        statuses = {r["status"] for r in got}
        if case.expect == ERROR:
            assert statuses == {STATUS_ERROR} and len(got) == 1, (case.name, got[0]["error"])
            assert case.reason in got[0]["error"].lower(), (case.name, got[0]["error"])
        elif case.expect == READ_FACE:
            assert STATUS_OK in statuses, f"{case.name}: no face found ({statuses}, {got[0]['error']})"
            faces = [r for r in got if r["status"] == STATUS_OK]
            assert all(r["gallery_version"] == gallery_version and len(r["embedding"]) == 128 for r in faces)
        elif case.expect == READ_NO_FACE:
            assert statuses == {STATUS_NO_FACE}
    assert len(table) == len(rows)


def test_a_stale_manifest_entry_is_an_error_row_and_the_job_goes_on(s3_server, ray_cluster, onnx_gallery, tmp_path):
    """A manifest names an object that is not (or no longer) in the bucket: that input becomes an
    error row saying so, and every other input is crawled (the crawl's reader, not Ray Data's
    path check, reads the objects)."""
    photos = FACE_PHOTOS[:3]
    bucket_uri = upload(s3_server, "stale", {face_photo_key(p): p.read_bytes() for p in photos})
    present = [f"{bucket_uri}/{face_photo_key(p)}" for p in photos]
    gone = f"{bucket_uri}/in/deleted-since-the-manifest.jpg"
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("\n".join([present[0], gone, *present[1:]]) + "\n")
    config = no_forgery(crawl_config(str(manifest), onnx_gallery, str(tmp_path / "out"), "stale", shard_size=2,
                                     storage=s3_server.storage()))
    result = run_crawl(config)
    assert result.inputs == 4 and result.shards == 2
    table = assert_each_input_once(result.output, [*present, gone])
    rows = {r["image_uri"]: r for r in read_results(result.output).to_pylist() if r["image_uri"] == gone}
    assert rows[gone]["status"] == STATUS_ERROR and rows[gone]["error"].startswith("input missing")
    statuses = [s for uri, s in zip(table.column("image_uri").to_pylist(), table.column("status").to_pylist())
                if uri != gone]
    assert STATUS_OK in statuses


# ---- 2c. gallery refused before any work --------------------------------------------------------

def test_corrupt_gallery_refused_before_work(onnx_gallery, tmp_path):
    broken = tmp_path / "gallery"
    shutil.copytree(onnx_gallery, broken)
    version = (broken / "LATEST").read_text().strip()
    index_file = broken / "versions" / version / "index.faiss"
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    output = tmp_path / "out"
    config = crawl_config(str(PHOTOS / "scrfd"), str(broken), str(output), "corrupt", shard_size=10)
    with pytest.raises(GalleryError, match="index.faiss .* is corrupt"):
        run_crawl(config)
    assert not output.exists(), "work started before the gallery was checked"


def test_mismatched_gallery_refused_before_work(onnx_gallery, tmp_path):
    """Crawling with the dlib pack against a gallery of ONNX (MobileFaceNet) embeddings: refused
    on the driver, before Ray or any model starts."""
    output = tmp_path / "out"
    config = crawl_config(str(PHOTOS / "scrfd"), onnx_gallery, str(output), "mismatch", shard_size=10)
    config.model = ModelPackConfig(pack="dlib")
    with pytest.raises(GalleryError, match="mobilefacenet_128@.*dlib_resnet_v1@"):
        run_crawl(config)
    assert not output.exists()


def test_cheap_embedder_id_agrees_with_loaded_pack(onnx_analyzer):
    from operators.packs import load_model_pack
    from operators.packs.embedder_id import expected_embedder_id

    assert expected_embedder_id(ONNX_PACK) == onnx_analyzer.pack.embedder_id
    # Without file names the pack routes every ONNX file by its graph: same answer, no session.
    auto = ModelPackConfig(pack=ONNX_PACK.pack)
    assert expected_embedder_id(auto) == load_model_pack(auto).embedder_id


# ---- shards ---------------------------------------------------------------------------------------

def test_plan_shards_is_deterministic():
    uris = [f"s3://b/{i:03d}.jpg" for i in range(23)]
    shards = plan_shards(list(reversed(uris)) + uris[:3], 10)
    assert [len(s) for s in shards] == [10, 10, 3]
    assert shards == plan_shards(uris, 10)
    assert [u for s in shards for u in s] == uris


# ---- helpers for the fault tests ----------------------------------------------------------------

def descendants(root_pid: int) -> list[int]:
    """PIDs below root_pid (this test's own Ray processes), from /proc: nothing else is touched."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def processes_titled(needle: str, root_pid: int) -> list[int]:
    pids = []
    for pid in descendants(root_pid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in title:
            pids.append(pid)
    return pids


def wait_for(predicate, timeout: float, interval: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def markers(job_uri: str, storage_config=None) -> int:
    done = storage.join(job_uri, DONE_DIR)
    return len(storage.list_files(done, [".json"], storage_config)) if storage.exists(done, storage_config) else 0


def crawl_with_fault(config: CrawlConfig, fault) -> CrawlResult:
    """Run the crawl here while ``fault`` (which waits for its moment itself) runs beside it."""
    injector = threading.Thread(target=fault, daemon=True)
    injector.start()
    result = run_crawl(config)
    injector.join(timeout=120)
    return result


def no_forgery(config: CrawlConfig) -> CrawlConfig:
    # The fault tests are about delivery, not scoring: the forgery stage (torch) only adds minutes.
    config.forgery.enabled = False
    return config


# ---- 2a. kill -9 of the FaceAnalyzer actor's worker process ---------------------------------------

@pytest.mark.slow
def test_killed_analyzer_actor_is_restarted_exactly_once(s3_server, ray_cluster, onnx_gallery, tmp_path):
    input_uri, inputs = upload_face_photos(s3_server, "killed")
    config = no_forgery(crawl_config(input_uri + "/in", onnx_gallery, str(tmp_path / "out"), "killed",
                                     shard_size=4, storage=s3_server.storage()))
    config.resources.batch_size = 2
    job_uri = storage.join(config.output, "killed")
    killed: dict = {}

    def kill_analyzer_mid_shard():
        # One execution per job: the analyzer that finished the first shard works on the next
        # ones; kill it once a shard is committed and others are still to come.
        if not wait_for(lambda: markers(job_uri) >= 1, 240):
            return
        pids = wait_for(lambda: processes_titled("FaceAnalyzer", os.getpid()), 120, 0.05)
        if not pids:
            return
        killed["pid"], killed["shards_done_at_kill"] = pids[0], markers(job_uri)
        os.kill(pids[0], signal.SIGKILL)
        killed["replacement"] = wait_for(
            lambda: [p for p in processes_titled("FaceAnalyzer", os.getpid()) if p != pids[0]], 120, 0.1)

    result = crawl_with_fault(config, kill_analyzer_mid_shard)
    print("kill -9 test:", killed, "seconds", round(result.seconds, 1))
    assert killed.get("pid"), "the analyzer actor was never seen, nothing was killed"
    assert killed["shards_done_at_kill"] < result.shards, "killed after the crawl had finished"
    assert not Path(f"/proc/{killed['pid']}").exists()
    assert killed.get("replacement"), "no replacement actor was started"
    table = assert_each_input_once(result.output, inputs)
    # Every photo here has a face; none may be lost to the kill.
    assert set(table.filter(pa_equal(table, "status", STATUS_OK)).column("image_uri").to_pylist()) == set(inputs)


def pa_equal(table, column, value):
    import pyarrow.compute as pc

    return pc.equal(table.column(column), value)


# ---- 2b. the S3 server restarted mid-crawl ------------------------------------------------------

class DurableS3:
    """tests/support/durable_moto.py as a process: stop it, and start it again on the same port with the
    same objects."""

    def __init__(self, directory: Path):
        from vipwatch.s3server import free_port

        self.port = free_port()
        self.recording = directory / "s3-recording.jsonl"
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "DurableS3":
        import socket

        self.process = subprocess.Popen([sys.executable, str(REPO / "tests" / "support" / "durable_moto.py"), str(self.port),
                                         str(self.recording)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.recording.with_suffix(".log"), "ab"),
                                        start_new_session=True)

        def listening():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                assert self.process.poll() is None, "durable moto exited"
                return False

        assert wait_for(listening, 60, 0.1), "durable moto did not listen"
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def storage(self):
        from core.config import StorageConfig

        return StorageConfig(endpoint_url=self.endpoint_url)


@pytest.mark.slow
def test_s3_restart_mid_crawl_is_retried(ray_cluster, onnx_gallery, tmp_path):
    import boto3

    server = DurableS3(tmp_path).start()
    try:
        client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1")
        client.create_bucket(Bucket="flaky")
        for path in FACE_PHOTOS:
            client.put_object(Bucket="flaky", Key=face_photo_key(path), Body=path.read_bytes())
        inputs = [f"s3://flaky/{face_photo_key(p)}" for p in FACE_PHOTOS]
        # Output on local disk: moto's recorder keeps no multipart part bodies (pyarrow writes
        # multipart), so objects written before the restart could not be restored faithfully.
        # The reads are what the outage hits here: the inputs, which one execution streams from
        # its start, so the outage begins as soon as the analyzer actor is up.
        config = no_forgery(crawl_config("s3://flaky/in", onnx_gallery, str(tmp_path / "out"), "flaky", shard_size=5,
                                         storage=server.storage()))
        job_uri = str(tmp_path / "out" / "flaky")
        outage: dict = {}

        def restart_mid_crawl():
            if not wait_for(lambda: processes_titled("FaceAnalyzer", os.getpid()), 240, 0.05):
                return
            outage["shards_done_at_stop"] = markers(job_uri)
            server.stop()
            outage["recording_bytes_at_stop"] = server.recording.stat().st_size
            time.sleep(4)  # clients see connection refused meanwhile
            server.start()
            outage["restarted"] = True

        result = crawl_with_fault(config, restart_mid_crawl)
        print("S3 restart test:", outage, "seconds", round(result.seconds, 1))
        assert outage.get("restarted"), "the server was never restarted"
        assert outage["shards_done_at_stop"] < result.shards, "the outage came after the crawl"
        # Work went on against the restarted server: it received reads of inputs after the restart.
        after = server.recording.read_text()[outage["recording_bytes_at_stop"]:]
        assert "/flaky/in/" in after
        assert_each_input_once(job_uri, inputs)
    finally:
        server.stop()


# ---- 3. resuming an interrupted job -------------------------------------------------------------

@pytest.mark.slow
def test_resume_after_driver_killed(s3_server, ray_cluster, onnx_gallery, tmp_path):
    input_uri, inputs = upload_face_photos(s3_server, "resume")
    config = no_forgery(crawl_config(input_uri + "/in", onnx_gallery, str(tmp_path / "out"), "resume",
                                     shard_size=3, storage=s3_server.storage()))
    job_uri = storage.join(config.output, "resume")
    # The driver joins this test's cluster, as `ray job submit` drivers do; killing it kills
    # only the driver and the actors it owns.
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    command = [sys.executable, str(REPO / "tests" / "support" / "crawl_driver.py"), config.model_dump_json()]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        landed = wait_for(lambda: markers(job_uri) >= 1 or first.poll() is not None, 300, 0.05)
        assert landed and first.poll() is None, "the first run ended before it could be interrupted"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    committed_before = markers(job_uri)
    total_shards = len(plan_shards(inputs, 3))
    assert 1 <= committed_before < total_shards
    assert not (Path(job_uri) / "_SUCCESS").exists()

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    resumed = json.loads(second.stdout.strip().splitlines()[-1])
    print("resume test: committed before kill", committed_before, "of", total_shards, "second run:", resumed)
    assert resumed["inputs"] == len(inputs)
    assert resumed["shards_processed"] == total_shards - committed_before
    assert resumed["processed_inputs"] < len(inputs)
    assert (Path(job_uri) / "_SUCCESS").exists()
    assert_each_input_once(job_uri, inputs)

    # A third run of a finished job crawls nothing and changes nothing.
    files_before = sorted(p.name for p in Path(job_uri).rglob("*.parquet"))
    third = run_crawl(config.model_copy(deep=True))
    assert third.processed_inputs == 0 and third.shards_processed == 0
    assert sorted(p.name for p in Path(job_uri).rglob("*.parquet")) == files_before
