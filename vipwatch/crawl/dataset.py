"""The crawl's Ray Data plan, one execution for every pending shard of a job: the inputs reader
(reader.py: rows of _inputs.parquet, objects fetched by the read tasks) -> ImageDecoder (actor pool; Ray
Data fuses the read into it) -> the face stages' actor pools -> output projection (+ alerts).
Streaming: blocks flow through every stage at once, so memory stays bounded by the in-flight
blocks, not by the input size."""
from __future__ import annotations

import pyarrow.fs as pafs

from core import storage
from core.config import CrawlConfig
from core.schema import to_output
from operators.chain import chain_class
from operators.decode import ImageDecoder
from operators.stages import face_stages
from vipwatch.crawl.alerts import AlertProjection
from vipwatch.crawl.locate import ShardLocator
from vipwatch.crawl.pools import stage_pools
from vipwatch.crawl.reader import TRANSIENT_IO_ERRORS, InputsDatasource
from vipwatch.crawl.shards import PendingInputs
from vipwatch.ray_cluster import cluster_cpus, node_resources


# Actor faults: Ray Data 2.60 gives every actor pool max_restarts=-1 and max_task_retries=-1
# (ActorPoolMapOperator._apply_default_remote_args), so a killed analyzer process is restarted
# and its in-flight batches re-run; a failed attempt's blocks never reach the writer, so nothing
# is duplicated. Not restated here: extra map_batches remote args are deprecated in 2.60 and go
# in 2.64. tests/integration/test_reliability.py kills the actor mid-crawl to pin this behaviour.

def configure_io_retries() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.retried_io_errors = list(dict.fromkeys([*context.retried_io_errors, *TRANSIENT_IO_ERRORS]))


def emitted_uri(uri: str, storage_config=None) -> str:
    """The ``image_uri`` the decoder writes for an input URI (reader.read_range's ``path``)."""
    filesystem, path = storage.resolve(uri, storage_config)
    return ("s3://" if isinstance(filesystem, pafs.S3FileSystem) else "") + path


def build_dataset(config: CrawlConfig, pending: PendingInputs, alerts_dir: str | None = None,
                  shard_name: str = "shard", locator: ShardLocator | None = None):
    import ray

    if not pending.count:
        raise ValueError(f"no input files at {config.input}")
    res = config.resources
    # Row ranges of _inputs.parquet, not paths: the driver never holds the pending paths, and
    # the objects are fetched by the read tasks (reader.py).
    source = InputsDatasource(pending, config.storage, block_inputs=res.files_per_read_task,
                              max_read_tasks=res.max_read_tasks, max_bytes=config.decode.max_bytes)
    dataset = ray.data.read_datasource(source, ray_remote_args={"num_cpus": res.read_num_cpus},
                                       override_num_blocks=min(res.max_read_tasks,
                                                               -(-pending.count // res.files_per_read_task)))
    if res.decode_actors > 0:
        # batch_size=None: one read block per call, which lets Ray Data fuse the read into the
        # decode actors (a batch size would stop that fusion).
        dataset = dataset.map_batches(ImageDecoder, batch_format="pyarrow", batch_size=None,
                                      fn_constructor_kwargs={"config": config.decode},
                                      compute=ray.data.ActorPoolStrategy(size=res.decode_actors),
                                      num_cpus=res.decode_num_cpus)
    else:
        dataset = dataset.map_batches(ImageDecoder(config.decode), batch_format="pyarrow",
                                      batch_size=8, num_cpus=res.decode_num_cpus)
    # Alerts need the aligned crop, which to_output drops: the same step writes them first.
    project = to_output if alerts_dir is None else AlertProjection(alerts_dir, shard_name, config.storage, locator)
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
