"""Connect to the Ray cluster a job was submitted to, or start a local one bound to 127.0.0.1."""
from __future__ import annotations

import json
import logging
import os

log = logging.getLogger(__name__)

# Read when ray is first imported: a local node then advertises 127.0.0.1, not the machine's address.
for _key, _value in {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

# Variables the workers need to reach the same object storage as the driver.
FORWARDED_ENV = ("VIPWATCH_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED", "VIPWATCH_SHARED", "VIPWATCH_CACHE")


def runtime_env() -> dict:
    # Inside `ray job submit` the job's own runtime env already reaches every worker, and Ray
    # refuses a driver runtime env that repeats any of its env var keys: forward only the rest.
    job_env = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}").get("runtime_env") or {}
    taken = set(job_env.get("env_vars") or {})
    return {"env_vars": {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ and key not in taken}}


def init_ray(num_cpus: int | None = None, object_store_mb: int | None = None) -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        # Inside `ray job submit`, or pointed at a cluster: join it.
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env(), log_to_driver=True)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Ray kills idle workers above a soft limit of one per CPU. Fractional-CPU tasks and actors
    # on a small node exceed that, so every read / write task then paid for a fresh worker
    # process (~2 s of CPU for imports): 18 worker processes for 300 images, 40 s of CPU, in
    # jobs.benchmark --images 300. Read by the raylet at start, hence only for a local cluster;
    # a cluster started with `ray start` takes it from the environment there (docs/performance.md).
    os.environ.setdefault("RAY_num_workers_soft_limit", str(max(16, os.cpu_count() or 1)))
    object_store = (object_store_mb or int(os.environ.get("VIPWATCH_OBJECT_STORE_MB", "2048"))) * 1024 * 1024
    ray.init(num_cpus=num_cpus, object_store_memory=object_store, include_dashboard=False,
             _node_ip_address="127.0.0.1", runtime_env=runtime_env(), log_to_driver=True)
    log.info("local Ray started: %s", ray.cluster_resources())


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 1))


def node_resources() -> list[tuple[float, float]]:
    """(CPUs, GPUs) of every alive node: an actor must fit on one of them."""
    import ray

    return [(float(node["Resources"].get("CPU", 0)), float(node["Resources"].get("GPU", 0)))
            for node in ray.nodes() if node.get("Alive")]


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))
