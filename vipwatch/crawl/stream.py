"""Committing shards while one Ray Data execution streams: rows arrive in input order
(``preserve_order``), each is routed to its shard by ``image_uri`` (locate.py); when a row of a
later shard arrives, or the stream ends, the shard in hand is whole: its Parquet is written to the
shard's directory under a deterministic name, then its ``_done`` marker (shards.py).

Why the driver writes rather than Ray Data's write tasks: a Ray Data write commits only when the
whole execution ends, so a shard could not be marked done while the stream goes on. The driver
holds at most one shard's output rows (no crops: those stay in the actors, alerts.py)."""
from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from vipwatch.crawl.locate import ShardLocator
from vipwatch.crawl.shards import Shard, ShardedJob


def shard_file_name(shard: Shard) -> str:
    return f"{shard.name}-part-00000.parquet"


class ShardCommitter:
    def __init__(self, job: ShardedJob, shards: list[Shard], locator: ShardLocator):
        self.job = job
        self.shards = shards
        self.locator = locator
        self.current = 0
        self.tables: list[pa.Table] = []
        self.committed = 0
        self.since = time.perf_counter()

    def add(self, batch: pa.Table) -> None:
        if not batch.num_rows:
            return
        positions = pa.array([self.locator.position(uri) for uri in batch.column("image_uri").to_pylist()])
        for position in sorted(set(positions.to_pylist())):
            if position < self.current:
                raise RuntimeError(f"rows of {self.shards[position].name} arrived after it was committed")
            while position > self.current:
                self._commit()
            self.tables.append(batch.filter(pc.equal(positions, position)))

    def close(self) -> None:
        while self.current < len(self.shards):
            self._commit()

    def _commit(self) -> None:
        shard = self.shards[self.current]
        table = pa.concat_tables(self.tables) if self.tables else None
        seen = len(pc.unique(table.column("image_uri"))) if table is not None else 0
        if seen != shard.count:
            # Counts in = counts out: every input gives at least one row, never a shard short.
            raise RuntimeError(f"{shard.name}: {seen} of its {shard.count} inputs have rows")
        filesystem, path = storage.resolve(storage.join(self.job.shard_uri(shard), shard_file_name(shard)),
                                           self.job.storage)
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, path, filesystem=filesystem)
        now = time.perf_counter()
        self.job.commit(shard, now - self.since)
        self.since, self.tables = now, []
        self.current += 1
        self.committed += 1
