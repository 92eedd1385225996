"""Listing a crawl's inputs at scale, measured: N one-byte objects seeded in the local S3 server
(moto's S3 app on 127.0.0.1, vipwatch/s3server.py: created inside the server process before it
listens, since PUTs over HTTP run at 65-325 keys/s here), then, over HTTP, the crawl's own opening of a job
(``ShardedJob.open``: the listing streamed page by page, sorted in runs, frozen into
``_inputs.parquet`` on the same server, shards cut), its resumption, the read tasks the crawl's
reader hands Ray Data for the pending shards, and a manifest of the same keys split by line ranges. Each step timed, with the
driver's memory: Python allocations (tracemalloc peak), Arrow allocations (peak of a fresh
pool) and RSS growth, and the driver's CPU seconds (the S3 server's time aside).

    python -m vipwatch.bench.listing --keys 100000 [--shard-size 10000] [--run-keys N]
        [--also-run-keys 20000] [--manifest-jobs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import tracemalloc
from typing import Callable

import pyarrow as pa

from core import storage
from core.config import LineRange
from vipwatch.crawl.reader import InputsDatasource, read_uris
from vipwatch.crawl.inputs import iter_inputs
from vipwatch.crawl.shards import INPUTS_FILE, ShardedJob, plan_shards
from vipwatch.s3server import LocalS3Server

PREFIXES = 100


def key_of(number: int) -> str:
    return f"images/p{number % PREFIXES:02d}/img{number:08d}.jpg"


def write_seed(path: str, bucket: str, keys: int) -> None:
    """The seed file of ``LocalS3Server(seed_file=...)``: ``keys`` objects spread over 100
    prefixes, as a crawl bucket would be."""
    with open(path, "w", encoding="utf-8") as lines:
        lines.writelines(f"{bucket}/{key_of(number)}\n" for number in range(keys))


def timed(step: Callable[[], object]) -> tuple[object, dict]:
    """Run ``step`` untraced (tracemalloc slows every allocation): its seconds and driver CPU seconds."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = step()
    return result, {"s": round(time.perf_counter() - started, 2),
                    "driver_cpu_s": round(time.process_time() - cpu_started, 2)}


def measured(step: Callable[[], object]) -> tuple[object, dict]:
    """Run ``step``; its seconds and the driver memory it took (peaks over the step)."""
    import psutil

    process = psutil.Process()
    pool = pa.proxy_memory_pool(pa.default_memory_pool())  # its peak counts this step only
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    rss_before = process.memory_info().rss
    tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        result = step()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    return result, {"s": round(seconds, 2), "driver_cpu_s": round(cpu_seconds, 2), "python_peak_mb": round(python_peak / 2**20, 2),
                    "arrow_peak_mb": round(pool.max_memory() / 2**20, 2),
                    "rss_growth_mb": round((process.memory_info().rss - rss_before) / 2**20, 1)}


def per_key(figures: dict, keys: int) -> dict:
    out = {**figures, "keys_per_s": round(keys / max(figures["s"], 1e-9), 1),
           "driver_cpu_us_per_key": round(figures["driver_cpu_s"] * 1e6 / keys, 1)}
    if "python_peak_mb" in figures:
        out["python_peak_bytes_per_key"] = round(figures["python_peak_mb"] * 2**20 / keys, 1)
        out["arrow_peak_bytes_per_key"] = round(figures["arrow_peak_mb"] * 2**20 / keys, 1)
    return out


def reader_plan(job: ShardedJob, pending, config, block_inputs: int = 16, max_read_tasks: int = 10_000) -> dict:
    """What the crawl's reader (vipwatch/crawl/reader.py) costs the driver for these shards
    before the first byte is read: its read tasks (row ranges), each pickled as Ray ships it,
    and what one task reads of ``_inputs.parquet`` before fetching its objects."""
    import cloudpickle  # lazy: Ray's own serialiser, only needed for this figure

    inputs = job.pending_inputs(pending)
    source = InputsDatasource(inputs, config, block_inputs=block_inputs, max_read_tasks=max_read_tasks)
    parallelism = min(max_read_tasks, -(-inputs.count // block_inputs))
    tasks, figures = measured(lambda: source.get_read_tasks(parallelism))
    pickled = [len(cloudpickle.dumps(task)) for task in tasks[:50]]
    start, stop = next(source.task_ranges(parallelism))
    _, one_task = timed(lambda: read_uris(inputs.inputs_uri, start, stop, config))
    return {"inputs": inputs.count, "read_tasks": len(tasks), "rows_per_task": source.task_rows(parallelism),
            "pickled_task_bytes": max(pickled), "one_task_reads_inputs_parquet": one_task,
            **per_key(figures, inputs.count)}


def reader_at_scale(rows: int, shard_size: int) -> dict:
    """The reader's driver cost for one job of ``rows`` inputs, without a server: the keys are
    frozen into a local ``_inputs.parquet`` (as a listing would), then the plan is built for every
    shard but the first. Measures what a 10M-input job hands Ray Data, not the listing."""
    with tempfile.TemporaryDirectory(prefix="vipwatch-reader-") as scratch:
        def keys():
            for start in range(0, rows, 65_536):
                yield [f"s3://listing/{key_of(n)}" for n in range(start, min(rows, start + 65_536))]

        job, freezing = timed(lambda: ShardedJob.open(scratch, "scale", "s3://listing/images/", keys, shard_size,
                                                      run_keys=rows))
        filesystem, inputs_path = storage.resolve(storage.join(job.uri, INPUTS_FILE))
        return {"mode": "reader_at_scale", "rows": rows, "shards": len(job.shards), "freeze_local": freezing,
                "inputs_parquet_bytes": filesystem.get_file_info(inputs_path).size,
                "reader_for_pending_shards": reader_plan(job, job.shards[1:], None)}


def measure(keys: int, shard_size: int, run_keys: int, manifest_jobs: int,
            other_run_keys: tuple[int, ...] = ()) -> dict:
    with tempfile.TemporaryDirectory(prefix="vipwatch-listing-") as scratch:
        seed_file = os.path.join(scratch, "seed.txt")
        write_seed(seed_file, "listing", keys)
        started = time.perf_counter()
        server = LocalS3Server(seed_file=seed_file).start()
        seed_s = time.perf_counter() - started
    try:
        server.create_bucket("listing-out")
        config = server.storage()
        input_uri = "s3://listing/images/"
        expected = sorted(f"s3://listing/{key_of(n)}" for n in range(keys))

        # S3's order, checked on the pages the crawl consumes: each page sorted, each after the last.
        order = {"pages": 0, "ascending": True, "last": ""}

        def pages():
            for page in iter_inputs(input_uri, config):
                order["ascending"] &= page == sorted(page) and page[0] > order["last"]
                order["pages"] += 1
                order["last"] = page[-1]
                yield page

        # The listing alone, untraced: its speed and the driver's CPU per key.
        listed, listing = timed(lambda: sum(len(page) for page in iter_inputs(input_uri, config)))
        job, opening = measured(lambda: ShardedJob.open("s3://listing-out", "prefix", input_uri, pages, shard_size,
                                                        config, run_keys=run_keys))
        # The same listing with runs of other sizes (spilled and streamed back when smaller than the listing).
        other_runs = {}
        for size in other_run_keys:
            _, figures = measured(lambda: ShardedJob.open("s3://listing-out", f"prefix-runs-{size}", input_uri,
                                                          lambda: iter_inputs(input_uri, config), shard_size, config,
                                                          run_keys=size))
            other_runs[str(size)] = per_key(figures, keys)
        resumed, resuming = measured(lambda: ShardedJob.open("s3://listing-out", "prefix", input_uri, pages,
                                                             shard_size, config))
        pending = job.shards[1:]  # as after a first shard committed
        reader = reader_plan(job, pending, config)
        # Every pending URI, in order, from the reader's task ranges (100 tasks: each reads its groups).
        coarse = InputsDatasource(job.pending_inputs(pending), config, max_read_tasks=100)
        paths = [uri for start, stop in coarse.task_ranges(100)
                 for uri in read_uris(coarse.pending.inputs_uri, start, stop, config)]
        frozen = job.uris(job.shards).to_pylist()
        planned = plan_shards(expected, shard_size)
        checks = {
            "listed_untraced": listed, "listed": job.inputs, "pages": order["pages"], "s3_pages_ascending": order["ascending"],
            "frozen_equals_sorted_keys": frozen == expected,
            "shards": len(job.shards), "shards_as_planned": [(s.first, s.count) for s in job.shards]
            == [(chunk[0], len(chunk)) for chunk in planned],
            "resumed_same_shards": resumed.resumed and [(s.first, s.count) for s in resumed.shards]
            == [(s.first, s.count) for s in job.shards],
            "pending_uris_read_by_tasks_equal_planned": paths == [uri for chunk in planned[1:] for uri in chunk],
        }
        del frozen, paths
        filesystem, inputs_path = storage.resolve(storage.join(job.uri, INPUTS_FILE), config)
        checks["inputs_parquet_bytes"] = filesystem.get_file_info(inputs_path).size

        # A manifest of the same keys in random order, split into adjacent line ranges, one job each.
        shuffled = expected[:]
        random.Random(0).shuffle(shuffled)
        storage.write_bytes("s3://listing-out/manifest.txt", ("\n".join(shuffled) + "\n").encode(), config)
        del shuffled
        bounds = [keys * part // manifest_jobs for part in range(manifest_jobs + 1)]
        manifest_runs, union = [], []
        for part, (start, end) in enumerate(zip(bounds, bounds[1:])):
            lines = LineRange(start=start, end=end)
            manifest_job, figures = measured(lambda: ShardedJob.open(
                "s3://listing-out", f"manifest-{part}", "s3://listing-out/manifest.txt",
                lambda: iter_inputs("s3://listing-out/manifest.txt", config, lines), shard_size, config,
                manifest_lines=lines, run_keys=run_keys))
            manifest_runs.append({"lines": str(lines), "inputs": manifest_job.inputs,
                                  **per_key(figures, manifest_job.inputs)})
            union.extend(manifest_job.uris(manifest_job.shards).to_pylist())
        checks["manifest_ranges_partition_keys"] = sorted(union) == expected and len(union) == keys
        return {"mode": "listing", "keys": keys, "shard_size": shard_size, "run_keys": run_keys,
                "server_start_and_seed_s": round(seed_s, 1),
                "checks": checks, "listing_untraced": per_key(listing, keys), "open_new_job": per_key(opening, keys),
                "open_new_job_other_run_keys": other_runs, "open_resumed_job": per_key(resuming, keys),
                "reader_for_pending_shards": reader, "manifest_jobs": manifest_runs}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--run-keys", type=int, default=1_000_000,
                        help="CrawlConfig.listing_run_keys: keys sorted in memory before a run is spilled")
    parser.add_argument("--also-run-keys", default="",
                        help="comma-separated run sizes to open the same listing with again (memory bound)")
    parser.add_argument("--manifest-jobs", type=int, default=2, help="line ranges the manifest is split into")
    parser.add_argument("--reader-rows", type=int, default=0,
                        help="instead: the crawl reader's plan for one job of this many inputs frozen locally (no server)")
    args = parser.parse_args(argv)
    if args.reader_rows:
        report = reader_at_scale(args.reader_rows, args.shard_size)
        print(json.dumps(report), flush=True)
        return report
    report = measure(args.keys, args.shard_size, args.run_keys, args.manifest_jobs,
                     tuple(int(size) for size in args.also_run_keys.split(",") if size))
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
