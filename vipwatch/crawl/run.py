"""run_crawl: a crawl job as ONE Ray Data execution over every shard not yet committed (the
actor pools start once per job), with each shard's Parquet written and committed on the driver as
soon as its last row has streamed out (vipwatch/crawl/stream.py), so a re-run of the job id
resumes from the first uncommitted shard."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from core.config import CrawlConfig
from operators.stages import load_checked_gallery
from vipwatch.crawl.alerts import alerts_uri
from vipwatch.crawl.dataset import build_dataset, configure_io_retries, emitted_uri
from vipwatch.crawl.inputs import iter_inputs
from vipwatch.crawl.locate import ShardLocator
from vipwatch.crawl.shards import ShardedJob
from vipwatch.crawl.stream import ShardCommitter
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
    from ray.data import DataContext

    config.job_id = config.job_id or default_job_id()
    # Refuse a missing / corrupt / other-embedder gallery before any work starts.
    load_checked_gallery(config)
    # Output goes to <output>/<job_id>/, one committed shard at a time: re-running a job id
    # crawls only the shards an earlier run did not commit (see vipwatch/crawl/shards.py).
    # Listed once per job, streamed into _inputs.parquet (never one Python list of every input).
    job = ShardedJob.open(config.output, config.job_id, config.input,
                          lambda: iter_inputs(config.input, config.storage, config.manifest_lines),
                          config.shard_size, config.storage, manifest_lines=config.manifest_lines,
                          run_keys=config.listing_run_keys)
    pending = job.pending()
    if job.resumed:
        log.info("resuming job %s: %d of %d shards left", config.job_id, len(pending), len(job.shards))
    started = time.perf_counter()
    stats = ""
    if pending:
        init_ray()
        configure_io_retries()
        for shard in pending:
            job.clear(shard)
        locator = ShardLocator([emitted_uri(shard.first, config.storage) for shard in pending],
                               [shard.name for shard in pending])
        # Rows leave in input order, so a row of a later shard proves every earlier shard whole
        # (a video's frames may span batches: "every input seen" would not).
        DataContext.get_current().execution_options.preserve_order = True
        dataset = build_dataset(config, job.pending_inputs(pending), alerts_uri(job.uri), locator=locator)
        committer = ShardCommitter(job, pending, locator)
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            committer.add(batch)
        committer.close()
        stats = dataset.stats()
    job.finish()
    seconds = time.perf_counter() - started
    return CrawlResult(job_id=config.job_id, output=job.uri, inputs=job.inputs, seconds=seconds,
                       stats=stats, processed_inputs=sum(s.count for s in pending),
                       shards=len(job.shards), shards_processed=len(pending))
