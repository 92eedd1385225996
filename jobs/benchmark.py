"""Throughput, memory and gallery-scale figures, printed (never asserted).

    python -m jobs.benchmark --images N [--model-pack P] [--repeat R] [--batch-size B] [--actors A] ...
    python -m jobs.benchmark --gallery-sizes 10000,100000,1000000 [--dims 128,512]

--images: builds a crawl-like corpus of N images from ../shared/data/photos (resized to mixed
sizes, re-encoded as JPEG / PNG / WebP, ~12% background crops with no face, ~1% truncated
files), puts it in a local S3 server (moto's S3 on 127.0.0.1, started and stopped here),
enrols a gallery from ../shared/data/faces_aligned, runs the Ray crawl (vipwatch.pipeline.run_crawl)
and then the same operator objects in one plain process over the same bytes (the raw-model
limit on the same cores), back to back. The last line printed is one JSON object.

--gallery-sizes: synthetic L2-normalised vectors (clustered like identities); per size the
build time, memory, batch query throughput and recall@10 against exact search for the index
that index.faiss_index chooses and for the alternatives.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("jobs.benchmark")

PHOTOS_SUBDIR = ("data", "photos")
FACES_ALIGNED_SUBDIR = ("data", "faces_aligned")
DEFAULT_DETECTOR = "scrfd_500m_kps.onnx"
DEFAULT_EMBEDDER = "mobilefacenet_128.onnx"
LONG_SIDES = (320, 480, 640, 800, 1024, 1280, 1600, 2048)
NO_FACE_FRACTION = 0.12
TRUNCATED_FRACTION = 0.01
CORPUS_FORMAT_VERSION = 1  # bump when the generator changes, so cached corpora are rebuilt


# ---- corpus -----------------------------------------------------------------------------------

def _source_photos(shared: Path) -> list[Path]:
    root = shared.joinpath(*PHOTOS_SUBDIR)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _background_crop(rgb: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator):
    """A crop that overlaps no detected face (boxes grown by half their size), or None."""
    height, width = rgb.shape[:2]
    grown = []
    for x1, y1, x2, y2 in boxes:
        pad_x, pad_y = (x2 - x1) / 2, (y2 - y1) / 2
        grown.append((x1 - pad_x, y1 - pad_y, x2 + pad_x, y2 + pad_y))
    for _ in range(60):
        crop_w = int(width * rng.uniform(0.2, 0.5))
        crop_h = int(height * rng.uniform(0.2, 0.5))
        if min(crop_w, crop_h) < 64:
            continue
        x, y = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        if all(x + crop_w <= gx1 or gx2 <= x or y + crop_h <= gy1 or gy2 <= y for gx1, gy1, gx2, gy2 in grown):
            return rgb[y:y + crop_h, x:x + crop_w]
    return None


def _encode(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    from PIL import Image

    sink = io.BytesIO()
    image = Image.fromarray(rgb)
    if fmt == "jpg":
        image.save(sink, "JPEG", quality=quality)
    elif fmt == "webp":
        image.save(sink, "WEBP", quality=quality, method=0)
    else:
        image.save(sink, "PNG", compress_level=1)
    return sink.getvalue()


def _resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    factor = long_side / max(height, width)
    if abs(factor - 1) < 1e-3:
        return rgb
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=interpolation)


def build_corpus(count: int, out_dir: Path, shared: Path, pack, seed: int = 0) -> dict:
    """Write ``count`` images to out_dir (flat); returns the mix. Deterministic for (count, seed)."""
    rng = np.random.default_rng(seed)
    sources = _source_photos(shared)
    pixels = [_load_rgb(p) for p in sources]
    # Faces are found once per source photo so that background crops can avoid them.
    boxes = [[d.bbox for d in pack.detect(rgb)] for rgb in pixels]
    out_dir.mkdir(parents=True, exist_ok=True)
    mix = {"jpg": 0, "png": 0, "webp": 0, "background": 0, "truncated": 0}
    for number in range(count):
        source = int(rng.integers(len(sources)))
        rgb = pixels[source]
        if rng.random() < NO_FACE_FRACTION:
            crop = _background_crop(rgb, boxes[source], rng)
            if crop is not None:
                rgb = crop
                mix["background"] += 1
        long_side = int(rng.choice(LONG_SIDES))
        # Background crops and small sources are not blown up past 1.5x: crawls rarely upscale.
        long_side = min(long_side, int(1.5 * max(rgb.shape[:2])))
        rgb = _resize_long_side(rgb, max(64, long_side))
        fmt = str(rng.choice(["jpg", "jpg", "jpg", "webp", "webp", "png"]))
        data = _encode(rgb, fmt, int(rng.integers(60, 96)))
        mix[fmt] += 1
        if rng.random() < TRUNCATED_FRACTION:
            data = data[: len(data) // 3]
            mix["truncated"] += 1
        (out_dir / f"img{number:06d}_{sources[source].stem}.{fmt}").write_bytes(data)
    (out_dir / "_COMPLETE").write_text(json.dumps(mix))
    return mix


def cached_corpus(count: int, cache_root: Path, shared: Path, pack, seed: int) -> tuple[Path, dict]:
    directory = cache_root / f"corpus-v{CORPUS_FORMAT_VERSION}-n{count}-s{seed}"
    marker = directory / "_COMPLETE"
    if marker.exists():
        return directory, json.loads(marker.read_text())
    started = time.perf_counter()
    mix = build_corpus(count, directory, shared, pack, seed)
    log.info("corpus of %d images generated in %.1f s: %s", count, time.perf_counter() - started, mix)
    return directory, mix


# ---- memory sampling --------------------------------------------------------------------------

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
            self.role[child.pid] = _role(name, cmdline, self.role.get(child.pid))
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


def _role(name: str, cmdline: str, previous: str | None) -> str:
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


# ---- crawl vs raw -----------------------------------------------------------------------------

def run_pipeline(config, s3_pid: int) -> dict:
    from vipwatch.pipeline import run_crawl
    from vipwatch.summary import summarise

    with MemorySampler(exclude={s3_pid: "S3 server"}) as sampler:
        sampler.sample()
        cpu_before = dict(sampler.cpu_s)
        result = run_crawl(config)
        sampler.sample()
    by_role = sampler.cpu_by_role(cpu_before)
    # Task workers one by one: which tasks each ran (its titles) and what it cost.
    task_workers = sorted(({"cpu_s": round(sampler.cpu_s[pid] - cpu_before.get(pid, 0.0), 1),
                            "titles": sorted(sampler.titles.get(pid, ()))}
                           for pid, role in sampler.role.items() if role == "ray task workers"),
                          key=lambda worker: -worker["cpu_s"])
    cpu_s = sum(v - cpu_before.get(pid, 0.0) for pid, v in sampler.cpu_s.items() if pid not in sampler.exclude)
    summary = summarise(result.output, result.seconds, result.inputs, config.storage)
    log.info("Ray Data stats:\n%s", result.stats)
    return {"seconds": result.seconds, "inputs": result.inputs, "images_in_output": summary["images_in_output"],
            "faces": summary["faces"], "identified_faces": summary["identified_faces"],
            "no_face_images": summary["no_face_images"], "error_images": summary["error_images"],
            "memory": {k: round(v, 1) for k, v in sampler.peak.items()}, "memory_samples": sampler.samples,
            "cpu_s": round(cpu_s, 1), "cpu_s_by_role": by_role, "task_workers": task_workers, "sampler_cpu_s": round(sampler.own_cpu_s, 1),
            "peak_rss_mb_by_role": {k: round(v) for k, v in sorted(sampler.peak_rss_by_role.items(), key=lambda kv: -kv[1])},
            "stages": stage_times(result.stats)}


def run_raw(config, corpus_files: list[Path], uri_prefix: str, batch_size: int) -> dict:
    """The crawl's operators called directly in this process, no Ray: ImageDecoder, then every
    stage of pipeline.face_stages (detect + align + embed, FAISS search, forgery when enabled).
    Bytes are read from local disk before the clock starts, so this is the model limit (the
    crawl also pays for S3 reads and the Parquet write)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from operators.decode import ImageDecoder
    from vipwatch.pipeline import face_stages
    from vipwatch.schema import to_output

    decoder = ImageDecoder(config.decode, uri_prefix)
    operators = []
    for stage in face_stages(config, cluster_cpus=float(os.cpu_count() or 1)):
        kwargs = dict(stage.kwargs)
        if "threads" in kwargs:
            kwargs["threads"] = 0  # onnxruntime's default: one intra-op thread per core of this machine
        operators.append(stage.operator(**kwargs))
    blobs = [(path.name, path.read_bytes()) for path in corpus_files]
    faces = identified = images = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(blobs), batch_size):
        chunk = blobs[start:start + batch_size]
        table = decoder(pa.table({"path": [name for name, _ in chunk],
                                  "bytes": pa.array([b for _, b in chunk], pa.binary())}))
        for operator in operators:
            table = operator(table)
        table = to_output(table)
        ok = pc.equal(table.column("status"), "ok")
        faces += int(pc.sum(ok).as_py() or 0)
        identified += int(pc.sum(pc.and_(ok, pc.is_valid(table.column("identity_id")))).as_py() or 0)
        images += len(set(table.column("image_uri").to_pylist()))
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    return {"seconds": seconds, "cpu_s": round(cpu_s, 1), "images": images, "faces": faces, "identified_faces": identified,
            "operators": [type(o).__name__ for o in operators]}


def image_benchmark(args) -> dict:
    from index.builder import enroll
    from operators.face_analyzer import FaceAnalyzer
    from vipwatch import storage
    from vipwatch.cli import model_config
    from vipwatch.config import SHARED_DIR, CrawlConfig, ForgeryConfig, RayResources
    from vipwatch.ray_cluster import init_ray
    from vipwatch.pipeline import run_crawl
    from vipwatch.s3server import LocalS3Server

    model = model_config(args)
    analyzer = FaceAnalyzer(model)
    cache_root = Path(args.cache_dir)
    corpus_dir, mix = cached_corpus(args.images, cache_root, SHARED_DIR, analyzer.pack, args.seed)
    corpus_files = sorted(p for p in corpus_dir.iterdir() if not p.name.startswith("_"))
    resources = RayResources(**{k: v for k, v in {
        "batch_size": args.batch_size, "analyzer_actors": args.actors, "analyzer_num_cpus": args.actor_cpus,
        "analyzer_num_gpus": args.actor_gpus, "analyzer_threads": args.threads,
        "fuse_face_stages": False if args.separate_pools else None}.items() if v is not None})

    with LocalS3Server() as server:
        server.create_bucket("bench")
        started = time.perf_counter()
        corpus_uri = "s3://bench/corpus"
        storage.upload_dir(str(corpus_dir), corpus_uri, server.storage())
        storage.delete_dir(corpus_uri + "/_COMPLETE", server.storage())
        upload_s = time.perf_counter() - started
        enrolment = enroll(str(SHARED_DIR.joinpath(*FACES_ALIGNED_SUBDIR)), model, aligned=True,
                           max_per_identity=args.gallery_per_identity, analyzer=FaceAnalyzer(model, aligned=True))
        gallery_uri = "s3://bench/gallery"
        enrolment.gallery.save(gallery_uri, server.storage())
        # Ray starts its workers at nice 15. Alone on a node that changes nothing; on a shared
        # machine it hands the workers' CPU to everyone else's nice-0 processes while the raw loop
        # runs at nice 0, so the comparison would measure the neighbours. Same niceness for both.
        os.environ["RAY_worker_niceness"] = str(args.ray_worker_niceness)
        # Workers inherit the S3 endpoint exported by the server: start Ray after it.
        init_ray(num_cpus=args.num_cpus, object_store_mb=args.object_store_mb)
        _apply_data_context(args)
        import ray

        warmup = None
        if args.warmup_images > 0:
            # A scheduled crawl is submitted to a running cluster, where Ray Data's detached
            # actors (_StatsActor, _AutoscalingCoordinatorActor, ActorLocationTracker) and idle
            # worker processes are already up. A short crawl first gives the measured one that
            # cluster; its own time is reported (the cold-cluster figure: --warmup-images 0).
            manifest = "s3://bench/warmup-inputs.txt"
            storage.write_bytes(manifest, "\n".join(f"{corpus_uri}/{p.name}" for p in
                                                    corpus_files[:args.warmup_images]).encode(), server.storage())
            warm_config = CrawlConfig(input=manifest, gallery=gallery_uri, output="s3://bench/warmup-out",
                                      job_id="warmup", model=model, resources=resources, storage=server.storage(),
                                      forgery=ForgeryConfig(enabled=args.forgery))
            warm = run_crawl(warm_config)
            warmup = {"images": warm.inputs, "seconds": round(warm.seconds, 1)}
            log.info("warm-up crawl: %d images in %.1f s", warm.inputs, warm.seconds)

        runs = []
        for repeat in range(args.repeat):
            config = CrawlConfig(input=corpus_uri, gallery=gallery_uri, output=f"s3://bench/out-{repeat}",
                                 job_id=f"benchmark-{repeat}", model=model, resources=resources,
                                 storage=server.storage(), forgery=ForgeryConfig(enabled=args.forgery),
                                 **({"shard_size": args.shard_size} if args.shard_size else {}))
            # The host's speed drifts by up to ~20% over minutes here: odd repeats run the raw
            # loop first (pipeline, raw, raw, pipeline, ...), so a drift does not favour one side.
            raw_first = repeat % 2 == 1
            if raw_first:
                raw = run_raw(config, corpus_files, "bench/corpus/", args.raw_batch_size)
            pipeline = run_pipeline(config, server.process.pid)
            if args.timeline:
                # Chrome trace of every task and actor method (chrome://tracing, Perfetto).
                ray.timeline(filename=args.timeline.replace(".json", f"-{repeat}.json"))
            if not raw_first:
                raw = run_raw(config, corpus_files, "bench/corpus/", args.raw_batch_size)
            runs.append({"pipeline": pipeline, "raw": raw})
            log.info("run %d: pipeline %.1f s, raw %.1f s", repeat, pipeline["seconds"], raw["seconds"])
            print(json.dumps({"run": repeat, **runs[-1]}), flush=True)

        cluster = ray.cluster_resources()
        ray.shutdown()

    count = len(corpus_files)
    pipeline_rates = [count / r["pipeline"]["seconds"] for r in runs]
    raw_rates = [count / r["raw"]["seconds"] for r in runs]
    ratios = [p / r for p, r in zip(pipeline_rates, raw_rates)]
    last = runs[-1]["pipeline"]
    return {
        "mode": "images", "images": count, "corpus_mix": mix, "repeats": args.repeat,
        "model_pack": analyzer.pack.name, "resources": resources.model_dump(), "forgery_stage": args.forgery,
        "shard_size": config.shard_size if hasattr(config, "shard_size") else None,
        "raw_operators": runs[-1]["raw"]["operators"],
        "warmup": warmup, "cluster_cpus": cluster.get("CPU"), "ray_worker_niceness": args.ray_worker_niceness, "raw_niceness": os.nice(0), "upload_s": round(upload_s, 1),
        "gallery_references": enrolment.gallery.manifest["reference_count"],
        "pipeline_images_per_s": round(statistics.median(pipeline_rates), 2),
        "raw_images_per_s": round(statistics.median(raw_rates), 2),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        # CPU seconds per image, all processes of the crawl (driver + Ray node, not the S3 server)
        # vs the raw loop: the efficiency figure that neighbours on a shared machine do not move.
        "pipeline_cpu_ms_per_image": round(statistics.median(r["pipeline"]["cpu_s"] for r in runs) * 1000 / count, 1),
        "raw_cpu_ms_per_image": round(statistics.median(r["raw"]["cpu_s"] for r in runs) * 1000 / count, 1),
        "cpu_ratio": round(statistics.median(r["raw"]["cpu_s"] / r["pipeline"]["cpu_s"] for r in runs), 3),
        "pipeline_faces_per_s": round(statistics.median(r["pipeline"]["faces"] / r["pipeline"]["seconds"] for r in runs), 2),
        "raw_faces_per_s": round(statistics.median(r["raw"]["faces"] / r["raw"]["seconds"] for r in runs), 2),
        "faces": last["faces"], "raw_faces": runs[-1]["raw"]["faces"],
        "identified_faces": last["identified_faces"], "no_face_images": last["no_face_images"],
        "error_images": last["error_images"], "images_in_output": last["images_in_output"],
        "peak_rss_mb": round(max(r["pipeline"]["memory"]["total_rss_mb"] for r in runs), 1),
        "peak_private_mb": round(max(r["pipeline"]["memory"]["total_private_mb"] for r in runs), 1),
        "peak_driver_rss_mb": round(max(r["pipeline"]["memory"]["driver_rss_mb"] for r in runs), 1),
        "peak_workers_rss_mb": round(max(r["pipeline"]["memory"]["workers_rss_mb"] for r in runs), 1),
        "peak_object_store_mb": round(max(r["pipeline"]["memory"]["object_store_used_mb"] for r in runs), 1),
        "stages": last["stages"],
        "pipeline_cpu_s_by_role": last["cpu_s_by_role"],
        "pipeline_task_workers": last["task_workers"],
        # The sampler runs in the driver: its CPU is in the crawl's figures, it is not the crawl's.
        "sampler_cpu_s": last["sampler_cpu_s"],
        "peak_rss_mb_by_role": last["peak_rss_mb_by_role"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _apply_data_context(args) -> None:
    import ray

    context = ray.data.DataContext.get_current()
    if args.target_max_block_mb:
        context.target_max_block_size = args.target_max_block_mb * 2**20
    if args.object_store_limit_mb:
        context.execution_options.resource_limits = context.execution_options.resource_limits.copy(
            object_store_memory=args.object_store_limit_mb * 2**20)


# ---- gallery scale ----------------------------------------------------------------------------

def synthetic_gallery(count: int, dim: int, rng: np.random.Generator, per_identity: int = 10) -> np.ndarray:
    """Clustered like a face gallery: identities are random directions, references are noisy
    copies (same-identity cosine ~0.5, as mobilefacenet gives on faces_aligned)."""
    centres = rng.standard_normal((max(1, count // per_identity), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owners = rng.integers(0, len(centres), count)
    vectors = centres[owners] + rng.standard_normal((count, dim), dtype=np.float32) * (1.0 / np.sqrt(dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _build(kind: str, vectors: np.ndarray, ids: np.ndarray):
    import faiss

    from index import faiss_index

    if kind in ("flat_ip", "hnsw_ip"):
        return faiss_index.build_index(vectors, ids, kind=kind)
    # IVF: nlist ~ 4 sqrt(n), trained on a sample (not chosen by the rule; shown as the other option).
    nlist = int(4 * np.sqrt(len(vectors)))
    quantiser = faiss.IndexFlatIP(vectors.shape[1])
    ivf = faiss.IndexIVFFlat(quantiser, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(1).choice(len(vectors), min(len(vectors), 64 * nlist), replace=False)]
    ivf.train(sample)
    ivf.nprobe = 32
    index = faiss.IndexIDMap2(ivf)
    index.add_with_ids(vectors, ids)
    return index


def gallery_benchmark(sizes: list[int], dims: list[int], kinds: list[str], queries: int, k: int,
                      hnsw_max: int, use_gpu: bool) -> dict:
    import faiss

    from index import faiss_index

    results = []
    for dim in dims:
        for size in sizes:
            rng = np.random.default_rng(size + dim)
            vectors = synthetic_gallery(size, dim, rng)
            ids = np.arange(size, dtype=np.int64)
            # Queries: other noisy views of enrolled identities (same-identity cosine ~0.5).
            probes = vectors[rng.integers(0, size, queries)] + rng.standard_normal((queries, dim), dtype=np.float32) / np.sqrt(dim)
            probes = np.ascontiguousarray(probes / np.linalg.norm(probes, axis=1, keepdims=True), dtype=np.float32)
            exact = None
            chosen = faiss_index.index_kind_for(size)
            for kind in kinds:
                if kind == "hnsw_ip" and size > hnsw_max:
                    results.append({"dim": dim, "size": size, "kind": kind, "skipped": f"HNSW build above {hnsw_max} "
                                    "vectors takes too long on this 2-core machine (see the projection in README)"})
                    print(json.dumps(results[-1]), flush=True)
                    continue
                before = _rss_mb()
                started = time.perf_counter()
                index = _build(kind, vectors, ids)
                build_s = time.perf_counter() - started
                rss_delta_mb = _rss_mb() - before
                index_mb = len(faiss.serialize_index(index)) / 2**20
                search_index = faiss_index.to_search_device(index, use_gpu) if use_gpu else index
                search_index.search(probes[:16], k)  # warm-up
                started = time.perf_counter()
                _, found = search_index.search(probes, k)
                query_s = time.perf_counter() - started
                if kind == "flat_ip":
                    exact = found
                recall = None
                if exact is not None:
                    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)]))
                results.append({"dim": dim, "size": size, "kind": kind, "chosen_by_rule": kind == chosen,
                                "build_s": round(build_s, 2), "index_mb": round(index_mb, 1),
                                "rss_delta_mb": round(rss_delta_mb, 1),
                                "queries_per_s": round(queries / query_s, 1), "recall_at_10": recall,
                                "device": "gpu" if use_gpu else "cpu", "faiss_threads": faiss.omp_get_max_threads()})
                print(json.dumps(results[-1]), flush=True)
                del index, search_index
    return {"mode": "gallery", "queries": queries, "k": k, "vectors": "synthetic, L2-normalised, clustered",
            "rule": f"flat_ip up to {faiss_index.EXACT_MAX_VECTORS} vectors, hnsw_ip above", "results": results}


# ---- command line -----------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from vipwatch.cli import add_model_args
    from vipwatch.config import SHARED_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--images", type=int, help="corpus size for the crawl-vs-raw benchmark")
    mode.add_argument("--gallery-sizes", type=str, help="comma-separated gallery sizes for the FAISS benchmark")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pipeline+raw pairs, back to back (odd pairs raw first); medians reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=os.environ.get("VIPWATCH_BENCH_CACHE",
                                                              str(Path(tempfile.gettempdir()) / "vipwatch-bench")))
    parser.add_argument("--gallery-per-identity", type=int, default=20)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray node (default: all)")
    parser.add_argument("--object-store-mb", type=int, default=None,
                        help="object store of the local Ray node (default: the crawl's, VIPWATCH_OBJECT_STORE_MB or 2048)")
    parser.add_argument("--raw-batch-size", type=int, default=16)
    parser.add_argument("--warmup-images", type=int, default=32,
                        help="crawl this many images first, untimed, so the measured crawl finds a running "
                             "cluster as a scheduled one does (0: measure a cold local cluster)")
    parser.add_argument("--ray-worker-niceness", type=int, default=os.nice(0),
                        help="nice value of the Ray workers (Ray's default is 15); default: this process's")
    parser.add_argument("--forgery", action="store_true",
                        help="include the forgery stage (both sides); default: the face chain only")
    parser.add_argument("--timeline", default=None, help="write Ray's task timeline (Chrome trace JSON) here")
    tuning = parser.add_argument_group("tuning (default: vipwatch.config.RayResources)")
    tuning.add_argument("--batch-size", type=int, default=None)
    tuning.add_argument("--actors", type=int, default=None)
    tuning.add_argument("--actor-cpus", type=float, default=None)
    tuning.add_argument("--actor-gpus", type=float, default=None)
    tuning.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads per analyzer actor")
    tuning.add_argument("--separate-pools", action="store_true", help="one actor pool per face stage (not fused)")
    tuning.add_argument("--shard-size", type=int, default=None,
                        help="inputs per committed shard (CrawlConfig.shard_size): one Ray Data run each")
    tuning.add_argument("--target-max-block-mb", type=int, default=None, help="DataContext.target_max_block_size")
    tuning.add_argument("--object-store-limit-mb", type=int, default=None,
                        help="DataContext execution_options.resource_limits.object_store_memory")
    gallery = parser.add_argument_group("gallery scale")
    gallery.add_argument("--dims", default="128")
    gallery.add_argument("--kinds", default="flat_ip,hnsw_ip,ivf_flat")
    gallery.add_argument("--queries", type=int, default=4096)
    gallery.add_argument("--k", type=int, default=10)
    gallery.add_argument("--hnsw-max", type=int, default=1_000_000, help="skip HNSW builds above this size")
    gallery.add_argument("--faiss-gpu", action="store_true", help="search on the GPU (faiss-gpu)")
    add_model_args(parser)
    parser.set_defaults(model_pack=str(SHARED_DIR / "models"), detector_file=DEFAULT_DETECTOR,
                        embedder_file=DEFAULT_EMBEDDER)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    from vipwatch.cli import setup_logging

    for key, value in {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", "AWS_EC2_METADATA_DISABLED": "true",
                       "RAY_AUTH_MODE": "disabled"}.items():
        os.environ.setdefault(key, value)
    args = parse_args(argv)
    setup_logging()
    if args.images:
        report = image_benchmark(args)
    else:
        from index.faiss_index import gpu_count

        report = gallery_benchmark([int(s) for s in args.gallery_sizes.split(",")],
                                   [int(d) for d in args.dims.split(",")], args.kinds.split(","),
                                   args.queries, args.k, args.hnsw_max, args.faiss_gpu or gpu_count() > 0)
    sys.stdout.flush()
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
