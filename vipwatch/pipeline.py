"""The crawl as a Ray Data pipeline:

    read_binary_files (object storage) -> ImageDecoder (CPU actor pool; Ray Data fuses the read
      into it) -> FaceAnalyzer (actor pool; GPU when present) -> GalleryMatcher -> [ForgeryScorer]
      -> output projection (+ alerts) -> write_parquet

The face stages share one actor pool unless one needs GPUs of its own (`stage_pools`).

Streaming: blocks flow through every stage at once, so memory stays bounded by the
in-flight blocks, not by the input size.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow.fs as pafs

from core import storage
from vipwatch.alerts import AlertProjection, alerts_uri
from core.config import CrawlConfig
from core.schema import to_output
from operators.stages import Stage, chain_steps, face_stages, load_checked_gallery

log = logging.getLogger(__name__)
MANIFEST_EXTENSIONS = (".txt", ".lst", ".csv", ".manifest")


def default_job_id() -> str:
    return f"crawl-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


def list_inputs(input_uri: str, storage_config=None) -> list[str]:
    """A prefix (every file below it, hidden and '_' marker files aside) or a manifest file
    with one URI per line (lines starting with '#' ignored)."""
    if input_uri.lower().endswith(MANIFEST_EXTENSIONS) and storage.exists(input_uri, storage_config):
        text = storage.read_bytes(input_uri, storage_config).decode("utf-8")
        uris = [line.strip().split(",")[0] for line in text.splitlines()]
        return [storage.normalise(u) for u in uris if u and not u.startswith("#") and u != "uri"]
    files = storage.list_files(input_uri, storage=storage_config)
    return [u for u in files if not u.rsplit("/", 1)[-1].startswith((".", "_"))]


@dataclass
class CrawlResult:
    job_id: str
    output: str
    inputs: int
    seconds: float
    stats: str
    # Resumed jobs: inputs crawled by this run (the rest were committed by an earlier run).
    processed_inputs: int = 0
    shards: int = 0
    shards_processed: int = 0


@dataclass
class Pool:
    """Consecutive stages run by one actor pool (operators.chain.OperatorChain when several)."""

    stages: list[Stage]
    num_cpus: float
    num_gpus: float

    @property
    def name(self) -> str:
        return "+".join(stage.operator.__name__ for stage in self.stages)

    def steps(self) -> list:
        return chain_steps(self.stages)


def stage_pools(stages: list[Stage], fuse: bool, cluster_cpus: float, reserved_cpus: float,
                nodes: list[tuple[float, float]] | None = None) -> list[Pool]:
    """Group stages into actor pools. Fused, a stage joins the previous pool unless it needs GPUs
    of its own: a GPU forgery scorer keeps its pool, the CPU matcher rides with the analyzer.
    A fused pool asks for the sum of its stages' CPUs, capped so that every actor of every pool
    still leaves ``reserved_cpus`` (read, decode, write) free. Every pool is also capped to the
    largest node that has the GPUs it needs (``nodes``: (cpus, gpus) per node): an actor bigger
    than every such node is never placed, and the job hangs."""
    groups: list[list[Stage]] = []
    for stage in stages:
        if fuse and groups and stage.num_gpus == 0:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    pools = [Pool(group, sum(s.num_cpus for s in group), sum(s.num_gpus for s in group)) for group in groups]
    for pool in pools:
        if len(pool.stages) > 1:
            others = sum(p.num_cpus * p.stages[0].actors for p in pools if p is not pool)
            room = (cluster_cpus - reserved_cpus - others) / pool.stages[0].actors
            pool.num_cpus = max(0.25, min(pool.num_cpus, room))
        fitting = [cpus for cpus, gpus in (nodes or []) if gpus >= pool.num_gpus]
        if fitting:
            pool.num_cpus = min(pool.num_cpus, max(fitting))
    return pools


# Actor faults: Ray Data 2.60 gives every actor pool max_restarts=-1 and max_task_retries=-1
# (ActorPoolMapOperator._apply_default_remote_args), so a killed analyzer process is restarted
# and its in-flight batches re-run; a failed attempt's blocks never reach the writer, so nothing
# is duplicated. Not restated here: extra map_batches remote args are deprecated in 2.60 and go
# in 2.64. tests/integration/test_reliability.py kills the actor mid-crawl to pin this behaviour.

# Errors of a storage outage (S3 restarting, connection refused or reset, 5xx): Ray Data retries
# reads and writes that fail with these, on top of the pyarrow S3 client's own retries.
TRANSIENT_IO_ERRORS = ("AWS Error NETWORK_CONNECTION", "AWS Error INTERNAL_FAILURE", "AWS Error SLOW_DOWN",
                       "AWS Error SERVICE_UNAVAILABLE", "HTTP status 500", "HTTP status 502", "HTTP status 503",
                       "HTTP status 504", "Couldn't connect to server", "Connection refused",
                       "Connection reset", "curlCode: 7", "curlCode: 52", "curlCode: 56")


def configure_io_retries() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.retried_io_errors = list(dict.fromkeys([*context.retried_io_errors, *TRANSIENT_IO_ERRORS]))


def build_dataset(config: CrawlConfig, uris: list[str], alerts_dir: str | None = None, shard_name: str = "shard"):
    import ray

    from operators.chain import chain_class
    from operators.decode import ImageDecoder
    from vipwatch.ray_cluster import cluster_cpus, node_resources

    if not uris:
        raise ValueError(f"no input files at {config.input}")
    schemes = {storage.is_s3(u) for u in uris}
    if len(schemes) != 1:
        raise ValueError("inputs mix s3:// and local paths; crawl them as separate jobs")
    filesystem, _ = storage.resolve(uris[0], config.storage)
    paths = [storage.resolve(u, config.storage)[1] for u in uris]
    uri_prefix = "s3://" if isinstance(filesystem, pafs.S3FileSystem) else ""
    res = config.resources

    dataset = ray.data.read_binary_files(paths, filesystem=filesystem, include_paths=True,
                                         ignore_missing_paths=False, num_cpus=res.read_num_cpus,
                                         override_num_blocks=max(1, -(-len(paths) // res.files_per_read_task)))
    if res.decode_actors > 0:
        # batch_size=None: one read block per call, which lets Ray Data fuse the read into the
        # decode actors (a batch size would stop that fusion).
        dataset = dataset.map_batches(ImageDecoder, batch_format="pyarrow", batch_size=None,
                                      fn_constructor_kwargs={"config": config.decode, "uri_prefix": uri_prefix},
                                      compute=ray.data.ActorPoolStrategy(size=res.decode_actors),
                                      num_cpus=res.decode_num_cpus)
    else:
        dataset = dataset.map_batches(ImageDecoder(config.decode, uri_prefix), batch_format="pyarrow",
                                      batch_size=8, num_cpus=res.decode_num_cpus)
    # Alerts need the aligned crop, which to_output drops: the same step writes them first.
    project = to_output if alerts_dir is None else AlertProjection(alerts_dir, shard_name, config.storage)
    total_cpus = cluster_cpus()
    reserved = res.read_num_cpus + res.decode_num_cpus * max(1, res.decode_actors) + res.write_num_cpus
    pools = stage_pools(face_stages(config, total_cpus), res.fuse_face_stages, total_cpus, reserved, node_resources())
    for number, pool in enumerate(pools):
        first = pool.stages[0]
        steps, name = pool.steps(), pool.name
        if res.fuse_face_stages and number == len(pools) - 1:
            steps.append(project)
            name += "+" + getattr(project, "__name__", type(project).__name__)
        if len(steps) == 1:
            operator, kwargs = first.operator, first.kwargs
        else:
            operator, kwargs = chain_class(name), {"steps": steps}
        dataset = dataset.map_batches(operator, batch_format="pyarrow", batch_size=first.batch_size,
                                      fn_constructor_kwargs=kwargs,
                                      compute=ray.data.ActorPoolStrategy(size=first.actors),
                                      num_cpus=pool.num_cpus, num_gpus=pool.num_gpus)
    if res.fuse_face_stages:
        return dataset
    return dataset.map_batches(project, batch_format="pyarrow", batch_size=None, num_cpus=res.write_num_cpus)


def run_crawl(config: CrawlConfig) -> CrawlResult:
    from vipwatch.ray_cluster import init_ray

    from ray.data import SaveMode

    from vipwatch.shards import ShardedJob, deterministic_filenames

    config.job_id = config.job_id or default_job_id()
    # Refuse a missing / corrupt / other-embedder gallery before any work starts.
    load_checked_gallery(config)
    # Output goes to <output>/<job_id>/, one committed shard at a time: re-running a job id
    # crawls only the shards an earlier run did not commit (see vipwatch/shards.py).
    job = ShardedJob.open(config.output, config.job_id, config.input,
                          lambda: list_inputs(config.input, config.storage), config.shard_size, config.storage)
    pending = job.pending()
    if job.resumed:
        log.info("resuming job %s: %d of %d shards left", config.job_id, len(pending), len(job.shards))
    init_ray()
    configure_io_retries()
    started = time.perf_counter()
    stats = []
    for shard in pending:
        shard_started = time.perf_counter()
        job.clear(shard)
        dataset = build_dataset(config, shard.uris, alerts_uri(job.uri, shard.name), shard.name)
        out_fs, out_path = storage.resolve(job.shard_uri(shard), config.storage)
        dataset.write_parquet(out_path, filesystem=out_fs, filename_provider=deterministic_filenames(shard),
                              mode=SaveMode.OVERWRITE, min_rows_per_file=config.min_rows_per_file,
                              ray_remote_args={"num_cpus": config.resources.write_num_cpus})
        job.commit(shard, time.perf_counter() - shard_started)
        stats.append(f"{shard.name}:\n{dataset.stats()}")
    job.finish()
    seconds = time.perf_counter() - started
    return CrawlResult(job_id=config.job_id, output=job.uri, inputs=job.inputs, seconds=seconds,
                       stats="\n".join(stats), processed_inputs=sum(len(s.uris) for s in pending),
                       shards=len(job.shards), shards_processed=len(pending))
