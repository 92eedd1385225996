"""Listing a crawl's inputs at scale, measured: N small objects in the local S3 server (moto's S3
app on 127.0.0.1, vipwatch/s3server.py), then the crawl's own listing (vipwatch.crawl.inputs.
list_inputs) and shard planning (vipwatch.crawl.shards.plan_shards) timed, with the driver's
Python memory for the listed keys (tracemalloc peak) and its RSS growth.

    python -m vipwatch.bench.listing --keys 100000 [--threads 16] [--shard-size 10000]
"""
from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

from vipwatch.crawl.inputs import list_inputs
from vipwatch.crawl.shards import plan_shards
from vipwatch.s3server import LocalS3Server


def upload(server, bucket: str, keys: int, threads: int) -> float:
    """Put ``keys`` one-byte objects, spread over 100 prefixes as a crawl bucket would be."""
    client = server.client()
    client.create_bucket(Bucket=bucket)
    started = time.perf_counter()

    def put(start: int) -> None:
        own = server.client()  # boto3 clients are thread-safe, but one per thread avoids its pool limit
        for number in range(start, min(keys, start + 1000)):
            own.put_object(Bucket=bucket, Key=f"images/p{number % 100:02d}/img{number:08d}.jpg", Body=b"x")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(0, keys, 1000)))
    return time.perf_counter() - started


def measure(keys: int, threads: int, shard_size: int) -> dict:
    import psutil

    server = LocalS3Server().start()
    try:
        upload_s = upload(server, "listing", keys, threads)
        process = psutil.Process()
        rss_before = process.memory_info().rss
        tracemalloc.start()
        started = time.perf_counter()
        uris = list_inputs("s3://listing/images/", server.storage())
        list_s = time.perf_counter() - started
        _, list_peak = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        shards = plan_shards(uris, shard_size)
        plan_s = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        seen = [u for shard in shards for u in shard]
        return {"mode": "listing", "keys": keys, "listed": len(uris), "distinct": len(set(uris)),
                "shards": len(shards), "shard_size": shard_size, "shards_partition": seen == sorted(set(uris)),
                "upload_s": round(upload_s, 1), "upload_keys_per_s": round(keys / upload_s, 1),
                "list_s": round(list_s, 2), "keys_listed_per_s": round(keys / list_s, 1),
                "plan_s": round(plan_s, 2),
                "python_peak_mb_listing": round(list_peak / 2**20, 1),
                "python_peak_mb_listing_and_plan": round(peak / 2**20, 1),
                "bytes_per_key_listing_peak": round(list_peak / keys, 1),
                "rss_growth_mb": round((process.memory_info().rss - rss_before) / 2**20, 1)}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=10_000)
    args = parser.parse_args(argv)
    report = measure(args.keys, args.threads, args.shard_size)
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
