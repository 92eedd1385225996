"""Serve load: one image POSTed to /v1/analyze by C concurrent clients (jobs.load_test), with
requests/s, latency percentiles and errors per level. Loopback URLs only, and every level is
capped in requests and seconds: a measuring tool, not a way to flood a server."""
from __future__ import annotations

import ipaddress
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import numpy as np
import requests

from core.schema import STATUS_NO_FACE, STATUS_OK

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
