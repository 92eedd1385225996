"""The crawl's reader (vipwatch/crawl/reader.py): read tasks over row ranges of _inputs.parquet,
objects fetched by the tasks, a reason for every input it cannot read, retries through an outage."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import StorageConfig
from core.schema import STATUS_ERROR
from operators.decode import ImageDecoder
from vipwatch.crawl.reader import InputsDatasource, ReadRetry, fetch, read_uris, with_retries
from vipwatch.crawl.shards import INPUTS_FILE, INPUTS_ROW_GROUP, PendingInputs, ShardedJob, freeze_inputs

from tests.support.shared_data import PHOTOS


def frozen(tmp_path, count: int) -> str:
    uri = str(tmp_path / INPUTS_FILE)
    keys = pa.array([f"s3://b/k{n:06d}" for n in range(count)])
    freeze_inputs([keys.slice(0, count // 2), keys.slice(count // 2)], 1000, uri)
    return uri


def test_inputs_are_frozen_in_small_row_groups_and_read_by_range(tmp_path):
    uri = frozen(tmp_path, 20_000)
    metadata = pq.ParquetFile(uri).metadata
    assert max(metadata.row_group(n).num_rows for n in range(metadata.num_row_groups)) == INPUTS_ROW_GROUP
    assert metadata.row_group(0).column(0).statistics is None  # a small footer: each read task reads it
    assert read_uris(uri, 8_190, 8_195, None) == [f"s3://b/k{n:06d}" for n in range(8_190, 8_195)]
    assert read_uris(uri, 0, 20_000, None)[-1] == "s3://b/k019999"
    with pytest.raises(ValueError, match="damaged"):
        read_uris(uri, 19_990, 20_010, None)


def test_read_tasks_cover_the_pending_ranges_in_order_and_never_cross_a_shard(tmp_path):
    pending = PendingInputs(frozen(tmp_path, 20_000), ((1_000, 2_000), (5_000, 5_037), (9_000, 20_000)))
    small = InputsDatasource(pending, block_inputs=16, max_read_tasks=10_000)
    ranges = list(small.task_ranges(parallelism=10_000))
    # Small jobs: one block per task, as read_binary_files did (every decode actor gets work).
    assert all(stop - start <= 16 for start, stop in ranges)
    covered = [row for start, stop in ranges for row in range(start, stop)]
    assert covered == [row for start, stop in pending.ranges for row in range(start, stop)]
    assert not any(start < 2_000 < stop or start < 5_037 < stop for start, stop in ranges)

    capped = InputsDatasource(pending, block_inputs=16, max_read_tasks=50)
    tasks = capped.get_read_tasks(parallelism=50)
    assert len(tasks) <= 50 + len(pending.ranges)
    assert sum(task.metadata.num_rows for task in tasks) == pending.count
    rows = capped.task_rows(parallelism=50)
    assert rows == 256  # 12,037 rows / 50 tasks, rounded up to whole blocks of 16
    stops = {stop for _, stop in pending.ranges}
    assert all(stop - start == rows for start, stop in capped.task_ranges(50) if stop not in stops)


def test_a_read_task_fetches_its_rows_and_says_why_it_could_not(tmp_path):
    photos = sorted(PHOTOS.rglob("*.jpg"))[:5]
    folder = tmp_path / "in"
    folder.mkdir()
    for number, photo in enumerate(photos):
        (folder / f"{number}.jpg").write_bytes(photo.read_bytes())
    (folder / "zz-gone.jpg").write_bytes(b"listed, then deleted")
    job = ShardedJob.open(str(tmp_path / "out"), "j", str(folder),
                          lambda: [sorted(str(p) for p in folder.iterdir())], 3)
    names = sorted([f"{number}.jpg" for number in range(5)] + ["zz-gone.jpg"])[3:]  # shard 1 of 3 inputs each
    (folder / "zz-gone.jpg").unlink()
    largest = max((folder / name).stat().st_size for name in names if name != "zz-gone.jpg")
    source = InputsDatasource(job.pending_inputs(job.shards[1:]), block_inputs=2, max_bytes=largest - 1)
    blocks = [block for task in source.get_read_tasks(parallelism=100) for block in task()]
    assert [block.num_rows for block in blocks] == [2, 1]
    rows = pa.concat_tables(blocks).to_pylist()
    assert [row["path"] for row in rows] == [str(folder / name) for name in names]
    for row in rows:
        if row["path"].endswith("zz-gone.jpg"):
            assert row["bytes"] is None and row["read_error"].startswith("input missing")
        elif (folder / row["path"]).stat().st_size == largest:
            assert row["bytes"] is None and row["read_error"].startswith("file too large")
        else:
            assert row["bytes"] == (folder / row["path"]).read_bytes() and row["read_error"] is None
    # The decoder turns a reason into an error row; nothing is lost.
    decoded = ImageDecoder()(pa.concat_tables(blocks))
    assert sorted(set(decoded.column("image_uri").to_pylist())) == [row["path"] for row in rows]
    errors = {row["image_uri"]: row["error"] for row in decoded.to_pylist() if row["status"] == STATUS_ERROR}
    assert errors[str(folder / "zz-gone.jpg")].startswith("input missing")


def test_transient_errors_are_retried_and_others_are_not():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 7")
        return "read"

    assert with_retries(flaky, ReadRetry(attempts=5, first_wait_s=0.01), "x") == "read" and len(calls) == 3
    calls.clear()
    with pytest.raises(OSError):
        with_retries(flaky, ReadRetry(attempts=2, first_wait_s=0.01), "x")
    assert len(calls) == 2

    def denied():
        calls.append(1)
        raise OSError("AWS Error ACCESS_DENIED during GetObject operation")

    calls.clear()
    with pytest.raises(OSError):
        with_retries(denied, ReadRetry(attempts=5, first_wait_s=0.01), "x")
    assert len(calls) == 1


def test_an_object_is_read_once_the_storage_comes_back(s3_server, tmp_path):
    """A real outage: nothing listens on the port at first; the S3 server starts 2 s later."""
    from core import storage
    from vipwatch.s3server import free_port

    port = free_port()
    seed = tmp_path / "seed.txt"
    seed.write_text("late/one.jpg\n")
    started: dict = {}

    def start_late():
        time.sleep(2)
        started["process"] = subprocess.Popen([sys.executable, "-m", "vipwatch.s3server", str(port), str(seed)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started["at"] = time.perf_counter()

    config = StorageConfig(endpoint_url=f"http://127.0.0.1:{port}", retry_attempts=1)
    filesystem, path = storage.resolve("s3://late/one.jpg", config)
    thread = threading.Thread(target=start_late)
    began = time.perf_counter()
    thread.start()
    try:
        data, error = fetch(filesystem, path, 1024, ReadRetry(attempts=12, first_wait_s=0.5, max_wait_s=2))
        assert (data, error) == (b"x", None)
        assert started["at"] - began >= 2
    finally:
        thread.join()
        started["process"].terminate()
        started["process"].wait(timeout=10)
