"""The crawl's reader: a Ray Data datasource over row ranges of a job's ``_inputs.parquet``.

Why not ``ray.data.read_binary_files(paths)``: it takes one Python list of every pending path
and, before the first byte is read, asks storage for each path's size from the driver (a HEAD per
object on S3: ~2 KB of driver memory and ~3 ms per path, so ~21 GB and hours at 10M inputs;
docs/performance.md). Here the driver hands Ray only row ranges of the frozen input list; each
read task reads its rows of ``_inputs.parquet`` and fetches the objects itself, on the workers.

A read task yields blocks of ``block_inputs`` rows (``path``, ``bytes``, ``read_error``), the
unit the decoder takes. An object that is gone or too large becomes a row with ``read_error``
(the decoder turns it into an error row: counts in = counts out); a storage outage is retried
with backoff, then fails the task, so a shard is never committed with inputs it could not read.
"""
from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from core import storage
from core.config import StorageConfig
from vipwatch.crawl.shards import PendingInputs

log = logging.getLogger(__name__)

# Errors of a storage outage (S3 restarting, connection refused or reset, 5xx). The reader retries
# them itself; Ray Data retries its own reads and writes on them too (dataset.configure_io_retries).
TRANSIENT_IO_ERRORS = ("AWS Error NETWORK_CONNECTION", "AWS Error INTERNAL_FAILURE", "AWS Error SLOW_DOWN",
                       "AWS Error SERVICE_UNAVAILABLE", "HTTP status 500", "HTTP status 502", "HTTP status 503",
                       "HTTP status 504", "Couldn't connect to server", "Connection refused",
                       "Connection reset", "curlCode: 7", "curlCode: 52", "curlCode: 56")

READ_SCHEMA = pa.schema([("path", pa.string()), ("bytes", pa.large_binary()), ("read_error", pa.string())])

T = TypeVar("T")


@dataclass(frozen=True)
class ReadRetry:
    """Backoff for transient storage errors: 0.5, 1, 2, 4, 8, 8, ... s, ~60 s in all by default
    (an S3 endpoint restarting, a throttled prefix), on top of the S3 client's own retries."""

    attempts: int = 10
    first_wait_s: float = 0.5
    max_wait_s: float = 8.0

    def waits(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield min(self.max_wait_s, self.first_wait_s * 2 ** attempt)


def is_transient(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, OSError) and any(marker in text for marker in TRANSIENT_IO_ERRORS)


def with_retries(action: Callable[[], T], retry: ReadRetry, what: str) -> T:
    waits = retry.waits()
    while True:
        try:
            return action()
        except OSError as error:
            wait = next(waits, None) if is_transient(error) else None
            if wait is None:
                raise
            log.warning("%s: %s; retrying in %.1f s", what, error, wait)
            time.sleep(wait)


def read_uris(inputs_uri: str, start: int, stop: int, storage_config: Optional[StorageConfig]) -> list[str]:
    """Rows [start, stop) of ``_inputs.parquet``'s ``uri`` column, reading only the row groups
    that hold them (the footer, then ~0.5 MB per 8,192-row group)."""
    filesystem, path = storage.resolve(inputs_uri, storage_config)
    with filesystem.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        groups, first_row, row = [], None, 0
        for number in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(number).num_rows
            if row < stop and row + rows > start:
                groups.append(number)
                first_row = row if first_row is None else first_row
            row += rows
        if first_row is None or row < stop:
            raise ValueError(f"{inputs_uri} holds {row} rows, the crawl asked for rows {start}:{stop}: damaged")
        uris = parquet.read_row_groups(groups, columns=["uri"]).column("uri")
        return uris.slice(start - first_row, stop - start).to_pylist()


def fetch(filesystem: pafs.FileSystem, path: str, max_bytes: int, retry: ReadRetry) -> tuple[Optional[bytes], Optional[str]]:
    """An object's bytes, or why there are none. Size is checked before the body is read, so a
    huge object never reaches memory."""

    def read() -> tuple[Optional[bytes], Optional[str]]:
        with filesystem.open_input_file(path) as handle:
            size = handle.size()
            if size > max_bytes:
                return None, f"file too large: {size} bytes > limit {max_bytes}"
            return handle.read(), None

    try:
        return with_retries(read, retry, f"reading {path}")
    except FileNotFoundError:
        return None, "input missing: the object was listed but is gone"
    except IsADirectoryError:
        return None, "input is a directory, not a file"
    except OSError as error:
        if is_transient(error):
            raise  # the storage is down: fail the task, never commit the shard without this input
        return None, f"read failed: {type(error).__name__}: {error}"


def read_range(inputs_uri: str, start: int, stop: int, storage_config: Optional[StorageConfig],
               block_inputs: int, max_bytes: int, retry: ReadRetry) -> Iterator[pa.Table]:
    """Blocks of {path, bytes, read_error} for rows [start, stop); ``path`` is the ``image_uri``
    the rows will carry (s3://bucket/key, or the absolute local path)."""
    uris = with_retries(lambda: read_uris(inputs_uri, start, stop, storage_config), retry, f"reading {inputs_uri}")
    filesystems: dict[bool, pafs.FileSystem] = {}
    for block_start in range(0, len(uris), block_inputs):
        paths, blobs, errors = [], [], []
        for uri in uris[block_start:block_start + block_inputs]:
            on_s3 = storage.is_s3(uri)
            if on_s3 not in filesystems:
                filesystems[on_s3] = storage.resolve(uri, storage_config)[0]
            path = uri[len("s3://"):] if on_s3 else storage.resolve(uri)[1]
            data, error = fetch(filesystems[on_s3], path, max_bytes, retry)
            paths.append(uri if on_s3 else path)
            blobs.append(data)
            errors.append(error)
        yield pa.table([paths, blobs, errors], schema=READ_SCHEMA)


class InputsDatasource(Datasource):
    """Read tasks over the pending row ranges, none crossing a range (a shard); each task covers
    ``block_inputs`` rows or more, so that no more than ``max_read_tasks`` tasks exist (the driver
    holds each task's few arguments, not its paths)."""

    def __init__(self, pending: PendingInputs, storage_config: Optional[StorageConfig] = None,
                 block_inputs: int = 16, max_read_tasks: int = 10_000, max_bytes: int = 200 * 1024 * 1024,
                 retry: ReadRetry = ReadRetry()):
        super().__init__()
        if block_inputs < 1 or max_read_tasks < 1:
            raise ValueError("block_inputs and max_read_tasks must be >= 1")
        self.pending = pending
        self.storage_config = storage_config
        self.block_inputs = block_inputs
        self.max_read_tasks = max_read_tasks
        self.max_bytes = max_bytes
        self.retry = retry

    def get_name(self) -> str:
        return "Inputs"

    def estimate_inmemory_data_size(self) -> Optional[int]:
        return None

    def task_rows(self, parallelism: int) -> int:
        wanted = max(1, min(parallelism, self.max_read_tasks)) if parallelism > 0 else self.max_read_tasks
        rows = max(self.block_inputs, math.ceil(self.pending.count / wanted))
        # Whole blocks per task, so every block but a range's last has block_inputs rows.
        return math.ceil(rows / self.block_inputs) * self.block_inputs

    def task_ranges(self, parallelism: int) -> Iterator[tuple[int, int]]:
        rows = self.task_rows(parallelism)
        for start, stop in self.pending.ranges:
            for task_start in range(start, stop, rows):
                yield task_start, min(stop, task_start + rows)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None,
                       data_context=None) -> list[ReadTask]:
        tasks = []
        for start, stop in self.task_ranges(parallelism):
            read = functools.partial(read_range, self.pending.inputs_uri, start, stop, self.storage_config,
                                     self.block_inputs, self.max_bytes, self.retry)
            metadata = BlockMetadata(num_rows=stop - start, size_bytes=None, input_files=None, exec_stats=None)
            tasks.append(ReadTask(read, metadata, schema=READ_SCHEMA, per_task_row_limit=per_task_row_limit))
        return tasks
