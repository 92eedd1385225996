"""Memory and CPU of the crawl's processes, sampled from the driver while it runs (psutil), and
Ray Data's per-operator times parsed from its stats text."""
from __future__ import annotations

import logging
import re
import threading
import time

log = logging.getLogger(__name__)


class MemorySampler:
    """Samples this process, its descendants (the local Ray node: GCS, raylet, workers) and the
    object store while the crawl runs. Processes in ``exclude`` ({pid: label}, the S3 server) are
    not counted in the crawl's figures; their CPU is reported under their label."""

    def __init__(self, interval_s: float = 1.0, exclude: dict[int, str] | None = None):
        import psutil

        self._psutil = psutil
        self.interval_s = interval_s
        self.exclude = dict(exclude or {})
        self.peak = {"driver_rss_mb": 0.0, "workers_rss_mb": 0.0, "ray_node_rss_mb": 0.0,
                     "total_rss_mb": 0.0, "total_private_mb": 0.0, "object_store_used_mb": 0.0}
        self.samples = 0
        # CPU seconds per process (last value seen): on a shared machine wall time measures the
        # neighbours too, CPU time per image does not.
        self.cpu_s: dict[int, float] = {}
        # Last name seen per process, to split CPU seconds by role (cpu_by_role).
        self.role: dict[int, str] = {}
        # Every process title seen per process (a task worker's title follows its task).
        self.titles: dict[int, set] = {}
        self.cmdlines: dict[int, str] = {}
        self.peak_rss_by_role: dict[str, float] = {}
        # CPU seconds spent by the sampler thread itself (part of the driver's figure).
        self.own_cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _object_store_mb(self) -> float:
        try:
            import ray
            from ray._private import internal_api

            reply = internal_api.get_memory_info_reply(ray._private.state.state, timeout_seconds=5)
            return reply.store_stats.object_store_bytes_used / 2**20
        except Exception:  # best effort: the figure is reported as 0 if the RPC is unavailable
            return 0.0

    def sample(self) -> None:
        psutil = self._psutil
        me = psutil.Process()
        driver = me.memory_info()
        times = me.cpu_times()
        self.cpu_s[me.pid] = times.user + times.system
        self.role[me.pid] = "driver"
        for pid, label in self.exclude.items():
            try:
                times = psutil.Process(pid).cpu_times()
                self.cpu_s[pid] = times.user + times.system
                self.role[pid] = "excluded:" + label
            except psutil.Error:
                pass
        workers = node = private = 0.0
        rss_by_role: dict[str, float] = {"driver": driver.rss / 2**20}
        for child in me.children(recursive=True):
            if child.pid in self.exclude:
                continue
            try:
                with child.oneshot():
                    info = child.memory_info()
                    name = child.name()
                    times = child.cpu_times()
                # The command line only for processes not yet known: it is the costly read.
                if child.pid not in self.cmdlines:
                    self.cmdlines[child.pid] = " ".join(child.cmdline()[:3])
                cmdline = self.cmdlines[child.pid]
            except psutil.Error:
                continue
            self.cpu_s[child.pid] = times.user + times.system
            self.titles.setdefault(child.pid, set()).add(name)
            self.role[child.pid] = role_of(name, cmdline, self.role.get(child.pid))
            node += info.rss
            private += info.rss - info.shared
            role = self.role[child.pid]
            rss_by_role[role] = rss_by_role.get(role, 0.0) + info.rss / 2**20
            if name.startswith("ray::") or "default_worker" in cmdline:
                workers += info.rss
        mb = 2**20
        current = {"driver_rss_mb": driver.rss / mb, "workers_rss_mb": workers / mb, "ray_node_rss_mb": node / mb,
                   "total_rss_mb": (driver.rss + node) / mb,
                   "total_private_mb": (driver.rss - driver.shared + private) / mb,
                   # The object store figure is one RPC that fans out to every worker process:
                   # sampled at a quarter of the rate so that measuring costs the crawl little.
                   "object_store_used_mb": self._object_store_mb() if self.samples % 4 == 0 else 0.0}
        for key, value in current.items():
            self.peak[key] = max(self.peak[key], value)
        for role, value in rss_by_role.items():
            self.peak_rss_by_role[role] = max(self.peak_rss_by_role.get(role, 0.0), value)
        self.samples += 1

    def cpu_by_role(self, before: dict[int, float]) -> dict[str, float]:
        """CPU seconds since ``before`` per role: driver, each actor pool, task workers, the Ray
        node's own daemons, and the excluded processes (the S3 server), which cost wall time on
        the same cores although they are not part of the crawl's bill."""
        totals: dict[str, float] = {}
        for pid, seconds in self.cpu_s.items():
            role = self.role.get(pid, "other")
            totals[role] = totals.get(role, 0.0) + seconds - before.get(pid, 0.0)
        processes: dict[str, int] = {}
        for pid in self.cpu_s:
            role = self.role.get(pid, "other")
            processes[role] = processes.get(role, 0) + 1
        return {f"{role} ({processes[role]} proc)": round(seconds, 1)
                for role, seconds in sorted(totals.items(), key=lambda kv: -kv[1])}

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.thread_time()
            try:
                self.sample()
            except Exception as exc:  # a sampling hiccup must not kill the benchmark
                log.debug("memory sample failed: %s", exc)
            self.own_cpu_s += time.thread_time() - started
            self._stop.wait(self.interval_s)


def role_of(name: str, cmdline: str, previous: str | None) -> str:
    # A task worker's process title follows the task it runs; an actor's names its class for life
    # (its title changes again as it shuts down: keep the first name).
    if previous and previous.startswith("actor:"):
        return previous
    if "MapWorker(" in name:
        return "actor:" + name.split("MapWorker(", 1)[1].split(")")[0] + ")"
    if name.startswith("ray::_"):  # Ray Data's own actors (_StatsActor, ...), named for life
        return "actor:" + name[5:].split(".")[0]
    if name.startswith("ray::") or "default_worker" in cmdline:
        return previous if previous and previous.startswith("actor:") else "ray task workers"
    return "ray daemon:" + name


# ---- Ray Data stats ---------------------------------------------------------------------------

_OPERATOR = re.compile(r"^Operator \d+ (?P<name>.+?): (?P<tasks>\d+) tasks executed, (?P<blocks>\d+) blocks produced in (?P<seconds>[\d.]+)s")
_WALL = re.compile(r"^\s*\* Remote wall time: .*?(?P<total>[\d.]+)(?P<unit>us|ms|s) total")
_CPU = re.compile(r"^\s*\* Remote cpu time: .*?(?P<total>[\d.]+)(?P<unit>us|ms|s) total")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def stage_times(stats: str) -> dict:
    """Per operator, summed over the crawl's shards (one Ray Data execution each): wall time it
    was active, and total remote wall / CPU seconds of its tasks."""
    stages: dict[str, dict] = {}
    current = None
    for line in stats.splitlines():
        match = _OPERATOR.match(line.strip())
        if match:
            current = stages.setdefault(match["name"], {"tasks": 0, "active_s": 0.0, "remote_wall_total_s": 0.0,
                                                        "remote_cpu_total_s": 0.0})
            current["tasks"] += int(match["tasks"])
            current["active_s"] = round(current["active_s"] + float(match["seconds"]), 2)
            continue
        for key, pattern in (("remote_wall_total_s", _WALL), ("remote_cpu_total_s", _CPU)):
            found = pattern.match(line)
            if found and current is not None:
                current[key] = round(current[key] + float(found["total"]) * _UNITS[found["unit"]], 2)
    return stages
