"""What each actor of a crawl's pools did, from Ray's task timeline (``ray.timeline()``, Chrome
trace events, timestamps in microseconds since the epoch): whether the model actor ever waited
for input, and how busy the decode actor was."""
from __future__ import annotations

import re

_ACTOR_CALL = re.compile(r"^task::MapWorker\((?P<pool>.+)\)\.(?P<method>__init__|submit)$")
# Gaps shorter than this between two calls are dispatch, not waiting for input.
GAP_S = 0.01


def actor_activity(events: list[dict], since_s: float) -> dict:
    """Per actor pool, for the actors constructed at or after ``since_s`` (the measured crawl,
    not a warm-up before it): per actor, seconds from the constructor's start to its first
    batch, seconds busy in batches, the span from first batch start to last batch end, and the
    idle time in gaps longer than GAP_S within that span."""
    since_us = since_s * 1e6
    calls: dict[tuple[str, str], dict[str, list]] = {}
    for event in events:
        match = _ACTOR_CALL.match(event.get("cat", ""))
        if match and event["ts"] >= since_us:
            actor = calls.setdefault((match["pool"], event["tid"]), {"__init__": [], "submit": []})
            actor[match["method"]].append(event)
    pools: dict[str, list] = {}
    for (pool, _), actor in sorted(calls.items()):
        batches = sorted(actor["submit"], key=lambda e: e["ts"])
        if not actor["__init__"] or not batches:
            continue
        init = actor["__init__"][0]
        ends = [e["ts"] + e["dur"] for e in batches]
        gaps = [(later["ts"] - end) / 1e6 for end, later in zip(ends, batches[1:])]
        pools.setdefault(pool, []).append({
            "batches": len(batches),
            "first_batch_after_init_s": round((batches[0]["ts"] - init["ts"]) / 1e6, 2),
            "busy_s": round(sum(e["dur"] for e in batches) / 1e6, 1),
            "span_s": round((max(ends) - batches[0]["ts"]) / 1e6, 1),
            "idle_gaps_s": round(sum(g for g in gaps if g > GAP_S), 2),
            "longest_gap_s": round(max(gaps, default=0.0), 3),
        })
    return pools
