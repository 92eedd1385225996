"""A crawl's listing against the S3 server process: streamed page by page, frozen in order, cut
into shards, resumed without listing again, and a manifest split by line ranges; 100,000 keys
listed over HTTP from a second server process seeded with them before it listens (PUTs over HTTP
run at 65-325 keys/s here). Figures: python -m vipwatch.bench.listing --keys 100000
(docs/performance.md, Listing at scale)."""
from __future__ import annotations

import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq
import pytest

from core import storage
from core.config import LineRange
from vipwatch.bench.listing import key_of, write_seed
from vipwatch.crawl.reader import InputsDatasource, read_uris
from vipwatch.crawl.inputs import iter_inputs
from vipwatch.crawl.shards import INPUTS_FILE, ShardedJob, plan_shards
from vipwatch.s3server import LocalS3Server

KEYS = 2_000
SEEDED_KEYS = 100_000


@pytest.fixture(scope="module")
def bucket(s3_server):
    s3_server.create_bucket("listing-in")
    s3_server.create_bucket("listing-out")
    keys = [f"images/p{n % 100:02d}/img{n:06d}.jpg" for n in range(KEYS)]
    # Not inputs: markers, a hidden file, a directory marker, a sibling prefix sharing the name's start.
    others = ["images/_SUCCESS", "images/p00/.hidden.jpg", "images/p01/", "images2/img.jpg"]

    def put(chunk: list[str]) -> None:
        client = s3_server.client()
        for key in chunk:
            client.put_object(Bucket="listing-in", Key=key, Body=b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, [keys[start:start + 250] for start in range(0, KEYS, 250)] + [others]))
    return sorted(f"s3://listing-in/{key}" for key in keys)


def test_s3_pages_arrive_in_binary_order(s3_server, bucket):
    """ordering.py streams a sorted listing without merging; this is the order it relies on."""
    pages = list(iter_inputs("s3://listing-in/images", s3_server.storage()))
    assert len(pages) == 3 and all(len(page) <= 1000 for page in pages)  # 2,003 keys under images/
    assert [uri for page in pages for uri in page] == bucket


def test_a_prefix_job_is_frozen_in_shards_and_resumed(s3_server, bucket):
    config = s3_server.storage()
    listed = []

    def pages():
        for page in iter_inputs("s3://listing-in/images/", config):
            listed.append(len(page))
            yield page

    tracemalloc.start()
    # Runs of 500 keys: the listing is spilled to scratch in 4 runs and streamed back.
    job = ShardedJob.open("s3://listing-out", "prefix", "s3://listing-in/images/", pages, 300, config, run_keys=500)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\nlisting {KEYS} keys: driver Python peak {peak / 2**20:.2f} MB ({peak / KEYS:.0f} B/key)")
    assert sum(listed) == KEYS and job.inputs == KEYS and not job.resumed
    planned = plan_shards(bucket, 300)
    assert [(s.index, s.first, s.count) for s in job.shards] == [(n, c[0], len(c)) for n, c in enumerate(planned)]
    filesystem, path = storage.resolve(storage.join(job.uri, INPUTS_FILE), config)
    with filesystem.open_input_file(path) as handle:
        frozen = pq.read_table(handle)
    assert frozen.column("uri").to_pylist() == bucket
    assert frozen.column("shard").to_pylist() == [n // 300 for n in range(KEYS)]

    again = ShardedJob.open("s3://listing-out", "prefix", "s3://listing-in/images/",
                            lambda: pytest.fail("a resumed job lists again"), 300, config)
    assert again.resumed and [(s.first, s.count) for s in again.shards] == [(s.first, s.count) for s in job.shards]
    assert again.uris(again.shards[5:]).to_pylist() == [uri for chunk in planned[5:] for uri in chunk]


def test_manifest_jobs_by_line_range_cover_it_once(s3_server, bucket):
    config = s3_server.storage()
    manifest = "s3://listing-out/inputs.txt"
    storage.write_bytes(manifest, ("uri\n" + "\n".join(reversed(bucket)) + "\n").encode(), config)
    ranges = [LineRange(end=700), LineRange(start=700, end=1500), LineRange(start=1500)]
    crawled = []
    for number, lines in enumerate(ranges):
        job = ShardedJob.open("s3://listing-out", f"manifest-{number}", manifest,
                              lambda: iter_inputs(manifest, config, lines), 250, config, manifest_lines=lines)
        uris = job.uris(job.shards).to_pylist()
        assert uris == sorted(uris)  # a job's shards follow the sorted order of its lines' URIs
        crawled.extend(uris)
    assert sorted(crawled) == bucket and len(crawled) == KEYS


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory):
    """A second S3 server process holding SEEDED_KEYS one-byte objects in bucket ``seeded``."""
    seed_file = tmp_path_factory.mktemp("seed") / "seed.txt"
    write_seed(str(seed_file), "seeded", SEEDED_KEYS)
    with pytest.MonkeyPatch.context() as env:
        # start() points this process's environment at the new server: give the session's back after.
        env.delenv("VIPWATCH_S3_ENDPOINT", raising=False)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        server = LocalS3Server(seed_file=str(seed_file)).start()
        try:
            server.create_bucket("seeded-out")
            yield server
        finally:
            server.stop()


def test_100k_keys_are_listed_once_as_a_stream_and_frozen_in_shards(seeded_server):
    config = seeded_server.storage()
    input_uri = "s3://seeded/images/"
    pages: list[tuple[int, str, str]] = []

    def listing():
        for page in iter_inputs(input_uri, config):
            pages.append((len(page), page[0], page[-1]))
            yield page

    tracemalloc.start()
    started = time.perf_counter()
    # Runs of 30,000 keys: the listing is sorted and spilled in 4 runs, which S3's order lets
    # it stream back without a merge.
    job = ShardedJob.open("s3://seeded-out", "big", input_uri, listing, 10_000, config, run_keys=30_000)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    expected = sorted(f"s3://seeded/{key_of(n)}" for n in range(SEEDED_KEYS))
    as_one_list = sys.getsizeof(expected) + sum(sys.getsizeof(uri) for uri in expected)
    print(f"\nlisted and froze {SEEDED_KEYS:,} keys over HTTP in {seconds:.1f} s "
          f"({SEEDED_KEYS / seconds:,.0f} keys/s); driver Python peak {peak / 2**20:.2f} MB "
          f"({peak / SEEDED_KEYS:.1f} B/key; one Python list of them: {as_one_list / SEEDED_KEYS:.0f} B/key)")
    assert [count for count, _, _ in pages] == [1000] * 100
    assert all(earlier[2] < later[1] for earlier, later in zip(pages, pages[1:]))  # S3's order, page after page
    # Streamed: the peak is a page of boto3 response objects, never the whole listing as Python strings.
    assert peak < as_one_list
    planned = plan_shards(expected, 10_000)
    assert [(s.index, s.first, s.count) for s in job.shards] == [(n, c[0], len(c)) for n, c in enumerate(planned)]
    assert job.uris(job.shards).to_pylist() == expected

    resumed = ShardedJob.open("s3://seeded-out", "big", input_uri, lambda: pytest.fail("a resumed job lists again"),
                              10_000, config)
    assert resumed.resumed and resumed.inputs == SEEDED_KEYS
    # What the crawl's reader gets for the shards still pending: row ranges, not paths; its read
    # tasks fetch exactly those URIs, in order.
    pending = resumed.pending_inputs(resumed.shards[7:])
    assert pending.ranges == tuple((n * 10_000, (n + 1) * 10_000) for n in range(7, 10))
    source = InputsDatasource(pending, config, max_read_tasks=100)
    assert [uri for start, stop in source.task_ranges(100) for uri in read_uris(pending.inputs_uri, start, stop, config)] \
        == [uri for chunk in planned[7:] for uri in chunk]
