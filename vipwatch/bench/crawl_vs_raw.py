"""The crawl (vipwatch.crawl.run.run_crawl over a local S3 server) against the same operator
objects called in one plain process over the same bytes: the raw-model limit on the same cores."""
from __future__ import annotations

import json
import logging
import os
import statistics
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from core.schema import STATUS_OK, to_output
from operators.decode import ImageDecoder
from operators.runner import ChainRunner, step_name
from operators.stages import face_stages, second_embedder
from vipwatch.bench.corpus import cached_corpus
from vipwatch.bench.sampler import MemorySampler, stage_times
from vipwatch.bench.timeline import actor_activity
from vipwatch.crawl.run import run_crawl
from vipwatch.crawl.summary import summarise
from vipwatch.enrol import enroll
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.scorer import ForgeryScorer
from core import storage
from vipwatch.cli import absolute_uri, model_config
from core.config import SHARED_DIR, CrawlConfig, ForgeryConfig, ModelPackConfig, RayResources
from operators.forgery.fusion import detector_specs
from vipwatch.ray_cluster import init_ray
from vipwatch.s3server import LocalS3Server

log = logging.getLogger(__name__)

FACES_ALIGNED_SUBDIR = ("data", "faces_aligned")


def run_pipeline(config, s3_pid: int) -> dict:
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
    stage of operators.stages.face_stages (detect + align + embed, FAISS search, forgery when
    enabled), through operators.runner. Bytes are read from local disk before the clock starts,
    so this is the model limit (the crawl also pays for S3 reads and the Parquet write)."""
    # threads 0: onnxruntime's default, one intra-op thread per core of this machine.
    runner = ChainRunner.from_stages(face_stages(config, cluster_cpus=float(os.cpu_count() or 1)),
                                     ImageDecoder(config.decode, uri_prefix), overrides={"threads": 0},
                                     finish=[to_output])
    blobs = [(path.name, path.read_bytes()) for path in corpus_files]
    faces = identified = images = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(blobs), batch_size):
        chunk = blobs[start:start + batch_size]
        table = pa.table({"path": [name for name, _ in chunk], "bytes": pa.array([b for _, b in chunk], pa.binary())})
        table = runner.run_batch(table)
        ok = pc.equal(table.column("status"), STATUS_OK)
        faces += int(pc.sum(ok).as_py() or 0)
        identified += int(pc.sum(pc.and_(ok, pc.is_valid(table.column("identity_id")))).as_py() or 0)
        images += len(set(table.column("image_uri").to_pylist()))
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    operators = [step_name(step) for step in runner.steps[1:-1]]
    scorers = [step for step in runner.steps if isinstance(step, ForgeryScorer)]
    return {"seconds": seconds, "cpu_s": round(cpu_s, 1), "images": images, "faces": faces, "identified_faces": identified,
            "operators": operators, "stage_s": {k: round(v, 2) for k, v in runner.seconds.items()},
            "forgery_model": scorers[0].model_version if scorers else None}


def stage_shares(stage_s: dict[str, float]) -> dict[str, float]:
    """Each step's share of the raw loop's time: the forgery stage's share of the CPU bill (the
    raw loop runs every step in one process, one after another, so its time is its CPU)."""
    total = sum(stage_s.values())
    return {name: round(seconds / total, 3) for name, seconds in stage_s.items()} if total > 0 else {}


def image_benchmark(args) -> dict:
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
        forgery = ForgeryConfig(enabled=args.forgery)
        if getattr(args, "second_pack", None):
            second = ModelPackConfig(pack=absolute_uri(args.second_pack), embedder_file=args.second_embedder_file,
                                     device=model.device)
            second_enrolment = enroll(str(SHARED_DIR.joinpath(*FACES_ALIGNED_SUBDIR)), second, aligned=True,
                                      max_per_identity=args.gallery_per_identity)
            second_enrolment.gallery.save("s3://bench/gallery-second", server.storage())
            forgery = ForgeryConfig(enabled=args.forgery, second_pack=second, second_gallery="s3://bench/gallery-second")
        forgery.region_consistency = getattr(args, "region_consistency", None) or forgery.region_consistency
        if getattr(args, "forgery_detector", None):
            forgery.detectors = list(args.forgery_detector)
        if getattr(args, "forgery_fusion", None):
            forgery.fusion_model = args.forgery_fusion
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
                                      forgery=forgery)
            warm = run_crawl(warm_config)
            warmup = {"images": warm.inputs, "seconds": round(warm.seconds, 1)}
            log.info("warm-up crawl: %d images in %.1f s", warm.inputs, warm.seconds)

        runs = []
        for repeat in range(args.repeat):
            config = CrawlConfig(input=corpus_uri, gallery=gallery_uri, output=f"s3://bench/out-{repeat}",
                                 job_id=f"benchmark-{repeat}", model=model, resources=resources,
                                 storage=server.storage(), forgery=forgery,
                                 **({"min_rows_per_file": args.min_rows_per_file}
                                    if args.min_rows_per_file is not None else {}),
                                 **({"shard_size": args.shard_size} if args.shard_size else {}))
            # The host's speed drifts by up to ~20% over minutes here: odd repeats run the raw
            # loop first (pipeline, raw, raw, pipeline, ...), so a drift does not favour one side.
            raw_first = repeat % 2 == 1
            if raw_first:
                raw = run_raw(config, corpus_files, "bench/corpus/", args.raw_batch_size)
            crawl_started = time.time()
            pipeline = run_pipeline(config, server.process.pid)
            if args.timeline:
                # Chrome trace of every task and actor method (chrome://tracing, Perfetto), and
                # what each actor of this crawl did in it.
                events = ray.timeline()
                Path(args.timeline.replace(".json", f"-{repeat}.json")).write_text(json.dumps(events))
                pipeline["actor_activity"] = actor_activity(events, crawl_started)
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
        "second_pack": forgery.second_pack.pack if forgery.second_pack is not None else None,
        "region_consistency": forgery.region_consistency, "forgery_detectors": detector_specs(
            forgery.detectors, forgery.fusion_model, pack_name=model.pack, second_embedder_id=second_embedder(config)),
        "shard_size": config.shard_size, "min_rows_per_file": config.min_rows_per_file,
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
        "actor_activity": last.get("actor_activity"),
        # The raw loop's time per image in each step (decode, each operator, the projection).
        "raw_stage_ms_per_image": {name: round(seconds * 1000 / count, 1)
                                   for name, seconds in runs[-1]["raw"]["stage_s"].items()},
        "raw_stage_share": stage_shares(runs[-1]["raw"]["stage_s"]),
        "forgery_share_of_raw": stage_shares(runs[-1]["raw"]["stage_s"]).get(ForgeryScorer.__name__, 0.0),
        "forgery_model": runs[-1]["raw"]["forgery_model"],
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
