"""run_crawl: a crawl job, shard by shard. Each shard is one Ray Data execution (dataset.py)
written to Parquet and committed (shards.py), so a re-run of the job id resumes."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from core import storage
from core.config import CrawlConfig
from operators.stages import load_checked_gallery
from vipwatch.crawl.alerts import alerts_uri
from vipwatch.crawl.dataset import build_dataset, configure_io_retries
from vipwatch.crawl.inputs import list_inputs
from vipwatch.crawl.shards import ShardedJob, deterministic_filenames
from vipwatch.ray_cluster import init_ray

log = logging.getLogger(__name__)


def default_job_id() -> str:
    return f"crawl-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


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


def run_crawl(config: CrawlConfig) -> CrawlResult:
    from ray.data import SaveMode

    config.job_id = config.job_id or default_job_id()
    # Refuse a missing / corrupt / other-embedder gallery before any work starts.
    load_checked_gallery(config)
    # Output goes to <output>/<job_id>/, one committed shard at a time: re-running a job id
    # crawls only the shards an earlier run did not commit (see vipwatch/crawl/shards.py).
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
