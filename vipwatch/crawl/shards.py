"""Resumable, idempotent crawl output: a job's inputs in deterministic shards, each written once.

Layout under ``<output>/<job_id>/``:
    _job.json                  the input URI, shard size, input count (checked on resume)
    _inputs.parquet            the job's inputs, sorted, with their shard number (frozen at first run)
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
from typing import Callable, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from core import storage
from core.config import StorageConfig
from vipwatch.crawl.alerts import alerts_uri

log = logging.getLogger(__name__)

JOB_FILE = "_job.json"
INPUTS_FILE = "_inputs.parquet"
DONE_DIR = "_done"
SUCCESS_FILE = "_SUCCESS"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def plan_shards(uris: list[str], shard_size: int) -> list[list[str]]:
    """Sorted, then cut in order: the same inputs always give the same shards."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    ordered = sorted(set(uris))
    return [ordered[start:start + shard_size] for start in range(0, len(ordered), shard_size)]


@dataclass
class Shard:
    index: int
    uris: list[str]

    @property
    def name(self) -> str:
        return shard_name(self.index)


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
    def open(cls, output_uri: str, job_id: str, input_uri: str, list_inputs: Callable[[], list[str]],
             shard_size: int, storage_config: Optional[StorageConfig] = None) -> "ShardedJob":
        """A new job lists its inputs and freezes them; an existing job id reuses that list, so a
        resumed run has the same shards whatever was added to the input prefix since."""
        job_uri = storage.join(output_uri, job_id)
        job_file = storage.join(job_uri, JOB_FILE)
        if storage.exists(job_file, storage_config):
            meta = json.loads(storage.read_bytes(job_file, storage_config))
            if storage.normalise(meta["input"]) != storage.normalise(input_uri):
                raise ValueError(f"job {job_id} at {job_uri} crawls {meta['input']}, not {input_uri}: "
                                 f"use another --job-id or --output")
            table = pq.read_table(pa.BufferReader(storage.read_bytes(storage.join(job_uri, INPUTS_FILE),
                                                                     storage_config)))
            grouped: dict[int, list[str]] = {}
            for uri, index in zip(table.column("uri").to_pylist(), table.column("shard").to_pylist()):
                grouped.setdefault(index, []).append(uri)
            shards = [Shard(index, grouped[index]) for index in sorted(grouped)]
            if sum(len(s.uris) for s in shards) != meta["inputs"]:
                raise ValueError(f"job {job_id}: {INPUTS_FILE} holds {sum(len(s.uris) for s in shards)} inputs, "
                                 f"{JOB_FILE} says {meta['inputs']}: the job directory is damaged")
            return cls(job_uri, shards, resumed=True, storage_config=storage_config)
        uris = list_inputs()
        if not uris:
            raise ValueError(f"no input files at {input_uri}")
        shards = [Shard(index, chunk) for index, chunk in enumerate(plan_shards(uris, shard_size))]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"uri": [u for s in shards for u in s.uris],
                                 "shard": [s.index for s in shards for _ in s.uris]}), sink)
        storage.write_bytes(storage.join(job_uri, INPUTS_FILE), sink.getvalue().to_pybytes(), storage_config)
        # The job file last: without it the directory is an unfinished start, planned again next time.
        storage.write_bytes(job_file, json.dumps({
            "job_id": job_id, "input": input_uri, "shard_size": shard_size,
            "inputs": sum(len(s.uris) for s in shards), "shards": len(shards),
            "created_at": datetime.now(timezone.utc).isoformat()}, indent=2).encode(), storage_config)
        return cls(job_uri, shards, resumed=False, storage_config=storage_config)

    # ---- state --------------------------------------------------------------------------
    @property
    def inputs(self) -> int:
        return sum(len(s.uris) for s in self.shards)

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
            "shard": shard.index, "inputs": len(shard.uris), "seconds": round(seconds, 3),
            "finished_at": datetime.now(timezone.utc).isoformat()}).encode(), self.storage)

    def finish(self) -> None:
        storage.write_bytes(storage.join(self.uri, SUCCESS_FILE), b"", self.storage)

