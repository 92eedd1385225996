"""python -m jobs.load_test --url http://127.0.0.1:PORT --image PATH [--concurrency 1,4,16]
                           [--requests N] [--max-seconds S]

POSTs one image to /v1/analyze from C concurrent clients, for each C, and prints requests/s,
p50/p95/p99 latency and the error count per level (exit status 1 when any request failed).
Loopback URLs only, and every level stops after N requests or S seconds: it is a measuring
tool, not a way to flood a server (vipwatch/bench/load.py). The key comes from $VIPWATCH_API_KEY.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vipwatch.bench.load import MAX_REQUESTS, MAX_SECONDS, loopback_url, run_level
from vipwatch.cli import parse_job_args


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=100, help=f"per level (at most {MAX_REQUESTS})")
    parser.add_argument("--max-seconds", type=float, default=60.0, help=f"per level (at most {MAX_SECONDS:.0f})")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests before the first level")
    args = parse_job_args(parser, argv)
    url = loopback_url(args.url)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not levels or min(levels) < 1 or max(levels) > 64:
        raise SystemExit("--concurrency: client counts between 1 and 64")
    if not 1 <= args.requests <= MAX_REQUESTS or not 0 < args.max_seconds <= MAX_SECONDS:
        raise SystemExit(f"--requests in 1..{MAX_REQUESTS}, --max-seconds in (0, {MAX_SECONDS:.0f}]")
    key = os.environ.get("VIPWATCH_API_KEY")
    if not key:
        raise SystemExit("$VIPWATCH_API_KEY is not set")
    image_path = Path(args.image)
    image = image_path.read_bytes()
    if args.warmup:
        run_level(url, key, image, image_path.name, 1, args.warmup, args.max_seconds)
    results = []
    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for concurrency in levels:
        result = run_level(url, key, image, image_path.name, concurrency, args.requests, args.max_seconds)
        results.append(result)
        print(f"{result['concurrency']:>7} {result['requests']:>8} {result['errors']:>6} {result['requests_per_s']:>7} "
              f"{result['p50_ms']:>8} {result['p95_ms']:>8} {result['p99_ms']:>8}", flush=True)
        if result["first_error"]:
            print(f"  first error: {result['first_error']}", file=sys.stderr)
    print(json.dumps({"url": url, "image": str(image_path), "image_bytes": len(image), "levels": results}))
    if any(r["errors"] for r in results):
        sys.exit(1)
    return results


if __name__ == "__main__":
    main()
