"""A job's inputs frozen as listed, cut into shards, read back on resume (vipwatch/crawl/shards.py)."""
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import LineRange
from vipwatch.crawl.inputs import iter_inputs
from vipwatch.crawl.shards import INPUTS_FILE, JOB_FILE, ShardedJob, freeze_inputs, plan_shards, read_shards


def test_shards_cut_across_arrays_of_any_size(tmp_path):
    keys = [f"k{n:03d}" for n in range(23)]
    arrays = [pa.array(keys[0:7]), pa.array(keys[7:12]), pa.array(keys[12:23])]
    uri = str(tmp_path / INPUTS_FILE)
    shards = freeze_inputs(arrays, 4, uri)
    expected = plan_shards(keys, 4)
    assert [(s.index, s.first, s.count) for s in shards] == [(i, chunk[0], len(chunk)) for i, chunk in enumerate(expected)]
    table = pq.read_table(uri)
    assert table.column("uri").to_pylist() == keys
    assert table.column("shard").to_pylist() == [n // 4 for n in range(23)]
    assert pq.ParquetFile(uri).metadata.num_row_groups == 3  # written as the arrays came
    assert [(s.index, s.first, s.count) for s in read_shards(uri)] == [(s.index, s.first, s.count) for s in shards]


def manifest_of(tmp_path, uris):
    path = tmp_path / "inputs.txt"
    path.write_text("\n".join(uris) + "\n")
    return str(path)


def test_a_manifest_job_is_sorted_sharded_and_resumed(tmp_path):
    uris = [f"s3://in/p{n % 7}/img{n:04d}.jpg" for n in range(1000)]
    random.Random(2).shuffle(uris)
    manifest = manifest_of(tmp_path, uris + uris[:10])
    out = str(tmp_path / "out")
    lines = LineRange(start=100, end=600)

    def pages():
        return iter_inputs(manifest, lines=lines)

    job = ShardedJob.open(out, "j", manifest, pages, 64, manifest_lines=lines, run_keys=120)
    chosen = sorted(set(uris[100:600]))
    assert not job.resumed and job.inputs == 500
    assert [s.first for s in job.shards] == [chunk[0] for chunk in plan_shards(chosen, 64)]
    assert job.uris(job.shards).to_pylist() == chosen
    assert job.uris([job.shards[1], job.shards[3]]).to_pylist() == chosen[64:128] + chosen[192:256]
    meta = json.loads((tmp_path / "out" / "j" / JOB_FILE).read_text())
    assert meta["manifest_lines"] == "100:600" and meta["inputs"] == 500 and meta["shards"] == 8

    again = ShardedJob.open(out, "j", manifest, lambda: pytest.fail("a resumed job lists again"), 64,
                            manifest_lines=lines)
    assert again.resumed
    assert [(s.index, s.first, s.count) for s in again.shards] == [(s.index, s.first, s.count) for s in job.shards]
    with pytest.raises(ValueError, match="lines 100:600"):
        ShardedJob.open(out, "j", manifest, pages, 64, manifest_lines=LineRange(start=600))


def test_nothing_to_crawl_is_refused(tmp_path):
    manifest = manifest_of(tmp_path, ["# nothing"])
    with pytest.raises(ValueError, match="no input files"):
        ShardedJob.open(str(tmp_path / "out"), "j", manifest, lambda: iter_inputs(manifest), 10)
    assert not (tmp_path / "out" / "j" / JOB_FILE).exists()
