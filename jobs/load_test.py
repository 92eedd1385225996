"""python -m jobs.load_test --url http://127.0.0.1:PORT --image PATH [--concurrency 1,4,16]
                           [--requests N] [--max-seconds S]

POSTs one image to /v1/analyze from C concurrent clients, for each C, and prints requests/s,
p50/p95/p99 latency and the error count per level (exit status 1 when any request failed).
Loopback URLs only, and every level stops after N requests or S seconds: it is a measuring
tool, not a way to flood a server. The key comes from $VIPWATCH_API_KEY.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import requests

from core.schema import STATUS_NO_FACE, STATUS_OK
from vipwatch.cli import parse_job_args

MAX_REQUESTS = 10_000
MAX_SECONDS = 600.0


def loopback_url(url: str) -> str:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        is_loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if parsed.scheme not in ("http", "https") or not is_loopback:
        raise SystemExit(f"refusing {url!r}: only http(s) URLs on a loopback address (127.0.0.0/8, ::1, localhost)")
    return url.rstrip("/")


def run_level(url: str, key: str, image: bytes, name: str, concurrency: int, total: int, max_seconds: float) -> dict:
    issued, lock = 0, threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        nonlocal issued
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        while True:
            with lock:
                if issued >= total or time.monotonic() >= deadline:
                    return
                issued += 1
            started = time.perf_counter()
            try:
                response = session.post(f"{url}/v1/analyze", files={"image": (name, image)}, timeout=120)
                ok = response.status_code == 200 and response.json().get("status") in (STATUS_OK, STATUS_NO_FACE)
                problem = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
            except (requests.RequestException, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000.0
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "seconds": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 2) if wall else 0.0,
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) if len(ms) else None for q in (50, 95, 99)},
            "first_error": errors[0] if errors else None}


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
