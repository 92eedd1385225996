"""Committing shards while one execution streams (vipwatch/crawl/stream.py)."""
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.schema import OUTPUT_SCHEMA
from vipwatch.crawl.locate import ShardLocator
from vipwatch.crawl.shards import DONE_DIR, Shard, ShardedJob, plan_shards
from vipwatch.crawl.stream import ShardCommitter, shard_file_name


def rows(uris: list[str]) -> pa.Table:
    return pa.Table.from_pylist([{"image_uri": uri, "status": "ok"} for uri in uris],
                                schema=pa.schema([OUTPUT_SCHEMA.field("image_uri"), OUTPUT_SCHEMA.field("status")]))


def open_job(tmp_path: Path, inputs: list[str], shard_size: int):
    shards = [Shard(index, uris[0], len(uris)) for index, uris in enumerate(plan_shards(inputs, shard_size))]
    job = ShardedJob(str(tmp_path / "job"), shards, resumed=False)
    locator = ShardLocator([s.first for s in shards], [s.name for s in shards])
    return job, ShardCommitter(job, shards, locator)


def committed(job: ShardedJob) -> list[str]:
    return sorted(p.stem for p in Path(job.uri, DONE_DIR).glob("*.json"))


def test_each_shard_is_committed_when_the_next_begins(tmp_path):
    inputs = [f"/in/img{n:03d}.jpg" for n in range(10)]
    job, committer = open_job(tmp_path, inputs, 4)
    # A batch straddling shards 0 and 1, the second image with two faces (two rows).
    committer.add(rows(inputs[:3]))
    assert committed(job) == []
    committer.add(rows([inputs[3], inputs[4], inputs[4], inputs[5]]))
    assert committed(job) == ["shard-00000"]
    committer.add(rows(inputs[6:10]))
    assert committed(job) == ["shard-00000", "shard-00001"]
    committer.close()
    assert committed(job) == ["shard-00000", "shard-00001", "shard-00002"]
    for shard, uris in zip(job.shards, plan_shards(inputs, 4)):
        table = pq.read_table(Path(job.shard_uri(shard)) / shard_file_name(shard))
        assert set(table.column("image_uri").to_pylist()) == set(uris)
    assert pq.read_table(Path(job.shard_uri(job.shards[1])) / shard_file_name(job.shards[1])).num_rows == 5
    marker = json.loads((Path(job.uri) / DONE_DIR / "shard-00001.json").read_text())
    assert marker["inputs"] == 4


def test_a_shard_with_an_input_missing_is_never_committed(tmp_path):
    inputs = [f"/in/img{n:03d}.jpg" for n in range(6)]
    job, committer = open_job(tmp_path, inputs, 3)
    committer.add(rows(inputs[:2]))
    with pytest.raises(RuntimeError, match="2 of its 3 inputs"):
        committer.add(rows(inputs[3:]))
    assert committed(job) == []


def test_rows_of_a_committed_shard_arriving_late_are_refused(tmp_path):
    inputs = [f"/in/img{n:03d}.jpg" for n in range(6)]
    job, committer = open_job(tmp_path, inputs, 3)
    committer.add(rows(inputs[:4]))
    with pytest.raises(RuntimeError, match="after it was committed"):
        committer.add(rows(inputs[2:3]))

