"""Listing a crawl's inputs at scale, measured: N one-byte objects seeded in the local S3 server
(moto's S3 app on 127.0.0.1, vipwatch/s3server.py: created inside the server process before it
listens, since PUTs over HTTP run at 65-325 keys/s here), then, over HTTP, the crawl's own opening of a job
(``ShardedJob.open``: the listing streamed page by page, sorted in runs, frozen into
``_inputs.parquet`` on the same server, shards cut), its resumption, the pending URIs handed
to Ray Data, and a manifest of the same keys split by line ranges. Each step timed, with the
driver's memory: Python allocations (tracemalloc peak), Arrow allocations (peak of a fresh
pool) and RSS growth, and the driver's CPU seconds (the S3 server's time aside).

    python -m vipwatch.bench.listing --keys 100000 [--shard-size 10000] [--run-keys N]
        [--also-run-keys 20000] [--manifest-jobs 2] [--ray-read-paths 20000]
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
from vipwatch.crawl.dataset import input_paths
from vipwatch.crawl.inputs import iter_inputs
from vipwatch.crawl.shards import INPUTS_FILE, ShardedJob, plan_shards
from vipwatch.ray_cluster import init_ray
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


def ray_reader_expansion(filesystem, paths: list[str]) -> dict:
    """What Ray Data's ``read_binary_files(paths)`` (the crawl's reader, vipwatch/crawl/dataset.py)
    costs before the first byte is read: in Ray 2.x its datasource is built in the driver, which
    gets every path's size (paths under several parents: a HEAD each, in Ray tasks of 16)."""
    import ray  # lazy: only this optional step starts Ray

    init_ray(num_cpus=2, object_store_mb=512)
    try:
        _, figures = measured(lambda: ray.data.read_binary_files(paths, filesystem=filesystem, include_paths=True))
    finally:
        ray.shutdown()
    return per_key(figures, len(paths))


def measure(keys: int, shard_size: int, run_keys: int, manifest_jobs: int,
            other_run_keys: tuple[int, ...] = (), ray_read_paths: int = 0) -> dict:
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
        paths, handing = measured(lambda: input_paths(job.uris(pending), config)[1])
        frozen = job.uris(job.shards).to_pylist()
        planned = plan_shards(expected, shard_size)
        checks = {
            "listed_untraced": listed, "listed": job.inputs, "pages": order["pages"], "s3_pages_ascending": order["ascending"],
            "frozen_equals_sorted_keys": frozen == expected,
            "shards": len(job.shards), "shards_as_planned": [(s.first, s.count) for s in job.shards]
            == [(chunk[0], len(chunk)) for chunk in planned],
            "resumed_same_shards": resumed.resumed and [(s.first, s.count) for s in resumed.shards]
            == [(s.first, s.count) for s in job.shards],
            "pending_paths": len(paths), "pending_paths_first": paths[0] == planned[1][0][len("s3://"):],
        }
        del frozen, paths
        filesystem, inputs_path = storage.resolve(storage.join(job.uri, INPUTS_FILE), config)
        checks["inputs_parquet_bytes"] = filesystem.get_file_info(inputs_path).size
        ray_reader = {}
        if ray_read_paths:
            filesystem, paths = input_paths(job.uris(job.shards).slice(0, ray_read_paths), config)
            ray_reader = ray_reader_expansion(filesystem, paths)

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
                "pending_paths_for_ray_data": per_key(handing, keys - job.shards[0].count),
                "manifest_jobs": manifest_runs, "ray_read_binary_files_construction": ray_reader}
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
    parser.add_argument("--ray-read-paths", type=int, default=0,
                        help="also time Ray Data's read_binary_files construction on this many of the paths (0: no)")
    args = parser.parse_args(argv)
    report = measure(args.keys, args.shard_size, args.run_keys, args.manifest_jobs,
                     tuple(int(size) for size in args.also_run_keys.split(",") if size), args.ray_read_paths)
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
