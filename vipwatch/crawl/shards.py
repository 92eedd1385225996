"""Resumable, idempotent crawl output: a job's inputs in deterministic shards, each written once.

Layout under ``<output>/<job_id>/``:
    _job.json                  the input URI, shard size, input count (checked on resume)
    _inputs.parquet            the job's inputs, sorted, with their shard number (frozen at first run,
                               written as listed: vipwatch/crawl/ordering.py)
    shard-00000/part-*.parquet one directory per shard, replaced whole when the shard is (re)run
    _alerts/shard-00000/*.parquet  the shard's alerts (vipwatch/crawl/alerts.py), cleared with the shard
    _done/shard-00000.json     written after the shard's Parquet: the shard is complete
    _SUCCESS                   every shard is complete
Readers (pyarrow, DuckDB, Spark, Athena) skip ``_``-prefixed paths, so they see only the shards.

Why shards with markers rather than Ray Data's ``DataContext.checkpoint_config``: the checkpoint
filter drops *input rows* whose id was written, but one input here becomes several output rows
(faces, video frames) that Ray Data may write in different blocks; an interruption between two
such blocks would mark the input done with some of its faces missing. A shard is committed only
after all of its Parquet is written (marker last, the same rule as the gallery's manifest), so
an interrupted shard is simply redone from scratch into the same directory, on local disks and
S3 alike (no rename needed). Every pending shard runs in one Ray Data execution whose rows the
driver commits shard by shard as they stream out (stream.py): actor pools start once per job.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from core.config import LineRange, StorageConfig
from vipwatch.crawl.alerts import alerts_uri
from vipwatch.crawl.ordering import sorted_unique

log = logging.getLogger(__name__)

JOB_FILE = "_job.json"
INPUTS_FILE = "_inputs.parquet"
DONE_DIR = "_done"
SUCCESS_FILE = "_SUCCESS"
# Rows of _inputs.parquet read at a time (resume, pending URIs).
INPUTS_BATCH = 65_536
# Rows per row group of _inputs.parquet: a crawl read task reads only the groups holding its rows
# (vipwatch/crawl/reader.py), ~0.5 MB each; 1,221 groups and a ~0.2 MB footer at 10M inputs.
INPUTS_ROW_GROUP = 8_192


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def plan_shards(uris: list[str], shard_size: int) -> list[list[str]]:
    """Sorted, then cut in order: the same inputs always give the same shards (the list form of
    what ``freeze_inputs`` writes, for small lists)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    ordered = sorted(set(uris))
    return [ordered[start:start + shard_size] for start in range(0, len(ordered), shard_size)]


@dataclass
class Shard:
    """A contiguous range of the job's sorted inputs: its first URI and how many. The URIs
    themselves stay in ``_inputs.parquet`` (``ShardedJob.uris``)."""
    index: int
    first: str
    count: int

    @property
    def name(self) -> str:
        return shard_name(self.index)


@dataclass(frozen=True)
class PendingInputs:
    """What a crawl execution reads: row ranges [start, stop) of a job's ``_inputs.parquet`` (one
    per pending shard; the URIs themselves stay in the file)."""

    inputs_uri: str
    ranges: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return sum(stop - start for start, stop in self.ranges)


INPUTS_SCHEMA = pa.schema([pa.field("uri", pa.string()), pa.field("shard", pa.int64())])


def freeze_inputs(keys: Iterable[pa.Array], shard_size: int, inputs_uri: str,
                  storage_config: Optional[StorageConfig] = None) -> list[Shard]:
    """Write sorted, unique URIs (string arrays, vipwatch/crawl/ordering.py) to ``inputs_uri`` as
    (uri, shard) rows, a row group per array as they come (a multipart upload on S3), cut into
    shards of ``shard_size`` in that order. Returns the shards (first URI + count each)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    filesystem, path = storage.resolve(inputs_uri, storage_config)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    shards: list[Shard] = []
    row = 0
    # No column statistics: min/max URIs in every row group's metadata would make the footer,
    # which each read task reads, several times larger.
    with filesystem.open_output_stream(path) as sink, \
            pq.ParquetWriter(sink, INPUTS_SCHEMA, write_statistics=False) as writer:
        for chunk in keys:
            numbers = np.arange(row, row + len(chunk), dtype=np.int64) // shard_size
            writer.write_table(pa.table({"uri": chunk, "shard": numbers}, schema=INPUTS_SCHEMA),
                               row_group_size=INPUTS_ROW_GROUP)
            for first_row in range(-(-row // shard_size) * shard_size, row + len(chunk), shard_size):
                shards.append(Shard(first_row // shard_size, chunk[first_row - row].as_py(), 0))
            row += len(chunk)
    for shard in shards:
        shard.count = min(shard_size, row - shard.index * shard_size)
    return shards


def read_shards(inputs_uri: str, storage_config: Optional[StorageConfig] = None) -> list[Shard]:
    """The shards of a frozen ``_inputs.parquet``, read a batch at a time."""
    filesystem, path = storage.resolve(inputs_uri, storage_config)
    shards: list[Shard] = []
    with filesystem.open_input_file(path) as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=INPUTS_BATCH, columns=["uri", "shard"]):
            numbers = batch.column("shard").to_numpy()
            starts = np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
            for start, stop in zip(starts, [*starts[1:], len(numbers)]):
                index = int(numbers[start])
                if shards and shards[-1].index == index:
                    shards[-1].count += int(stop - start)
                elif shards and index < shards[-1].index:
                    raise ValueError(f"{inputs_uri}: shard {index} after shard {shards[-1].index}: damaged")
                else:
                    shards.append(Shard(index, batch.column("uri")[int(start)].as_py(), int(stop - start)))
    return shards


class ShardedJob:
    """One crawl job's output directory: which shards exist, which are done, committing them."""

    def __init__(self, job_uri: str, shards: list[Shard], resumed: bool,
                 storage_config: Optional[StorageConfig] = None):
        self.uri = job_uri
        self.shards = shards
        self.resumed = resumed
        self.storage = storage_config

    # ---- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, output_uri: str, job_id: str, input_uri: str, list_pages: Callable[[], Iterable[Sequence[str]]],
             shard_size: int, storage_config: Optional[StorageConfig] = None,
             manifest_lines: Optional[LineRange] = None, run_keys: int = 1_000_000) -> "ShardedJob":
        """A new job lists its inputs (``list_pages``: pages of URIs, vipwatch/crawl/inputs.py)
        and freezes them, streamed; an existing job id reuses that list, so a resumed run has the
        same shards whatever was added to the input prefix since."""
        job_uri = storage.join(output_uri, job_id)
        job_file = storage.join(job_uri, JOB_FILE)
        inputs_uri = storage.join(job_uri, INPUTS_FILE)
        lines = str(manifest_lines) if manifest_lines is not None else None
        if storage.exists(job_file, storage_config):
            meta = json.loads(storage.read_bytes(job_file, storage_config))
            if storage.normalise(meta["input"]) != storage.normalise(input_uri):
                raise ValueError(f"job {job_id} at {job_uri} crawls {meta['input']}, not {input_uri}: "
                                 f"use another --job-id or --output")
            if meta.get("manifest_lines") != lines:
                raise ValueError(f"job {job_id} at {job_uri} crawls lines {meta.get('manifest_lines') or 'all'} "
                                 f"of {input_uri}, not {lines or 'all'}: use another --job-id or --output")
            shards = read_shards(inputs_uri, storage_config)
            if sum(s.count for s in shards) != meta["inputs"]:
                raise ValueError(f"job {job_id}: {INPUTS_FILE} holds {sum(s.count for s in shards)} inputs, "
                                 f"{JOB_FILE} says {meta['inputs']}: the job directory is damaged")
            return cls(job_uri, shards, resumed=True, storage_config=storage_config)
        shards = freeze_inputs(sorted_unique(list_pages(), run_keys), shard_size, inputs_uri, storage_config)
        if not shards:
            raise ValueError(f"no input files at {input_uri}" + (f" lines {lines}" if lines else ""))
        # The job file last: without it the directory is an unfinished start, planned again next time.
        storage.write_bytes(job_file, json.dumps({
            "job_id": job_id, "input": input_uri, "manifest_lines": lines, "shard_size": shard_size,
            "inputs": sum(s.count for s in shards), "shards": len(shards),
            "created_at": datetime.now(timezone.utc).isoformat()}, indent=2).encode(), storage_config)
        return cls(job_uri, shards, resumed=False, storage_config=storage_config)

    def uris(self, shards: list[Shard]) -> pa.ChunkedArray:
        """The URIs of these shards, in order, from ``_inputs.parquet`` (Arrow strings: about the
        URI's bytes + 4 per input, not a Python list)."""
        wanted = pa.array(sorted(s.index for s in shards), pa.int64())
        filesystem, path = storage.resolve(storage.join(self.uri, INPUTS_FILE), self.storage)
        parts = []
        with filesystem.open_input_file(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=INPUTS_BATCH, columns=["uri", "shard"]):
                parts.append(batch.column("uri").filter(pc.is_in(batch.column("shard"), value_set=wanted)))
        return pa.chunked_array(parts, pa.string())

    def pending_inputs(self, shards: list[Shard]) -> PendingInputs:
        """These shards as row ranges of ``_inputs.parquet`` (what the crawl's reader takes)."""
        first_rows, row = {}, 0
        for shard in self.shards:
            first_rows[shard.index] = row
            row += shard.count
        return PendingInputs(storage.join(self.uri, INPUTS_FILE),
                             tuple((first_rows[s.index], first_rows[s.index] + s.count) for s in shards))

    # ---- state --------------------------------------------------------------------------
    @property
    def inputs(self) -> int:
        return sum(s.count for s in self.shards)

    def shard_uri(self, shard: Shard) -> str:
        return storage.join(self.uri, shard.name)

    def _marker_uri(self, shard: Shard) -> str:
        return storage.join(self.uri, DONE_DIR, f"{shard.name}.json")

    def done_shards(self) -> set[int]:
        done_dir = storage.join(self.uri, DONE_DIR)
        if not storage.exists(done_dir, self.storage):
            return set()
        names = {u.rsplit("/", 1)[-1] for u in storage.list_files(done_dir, [".json"], self.storage)}
        return {s.index for s in self.shards if f"{s.name}.json" in names}

    def pending(self) -> list[Shard]:
        done = self.done_shards()
        return [s for s in self.shards if s.index not in done]

    # ---- committing ---------------------------------------------------------------------
    def clear(self, shard: Shard) -> None:
        """Remove whatever an interrupted attempt left of this shard before it is redone."""
        storage.delete_dir(self.shard_uri(shard), self.storage)
        storage.delete_dir(alerts_uri(self.uri, shard.name), self.storage)

    def commit(self, shard: Shard, seconds: float) -> None:
        storage.write_bytes(self._marker_uri(shard), json.dumps({
            "shard": shard.index, "inputs": shard.count, "seconds": round(seconds, 3),
            "finished_at": datetime.now(timezone.utc).isoformat()}).encode(), self.storage)

    def finish(self) -> None:
        storage.write_bytes(storage.join(self.uri, SUCCESS_FILE), b"", self.storage)

