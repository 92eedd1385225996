"""The Serve application: ingress -> one deployment per `face_stages` Stage.

    serve run infra/serve.yaml            # or: serve deploy infra/serve.yaml
    python -m jobs.serve --gallery URI    # local cluster on 127.0.0.1

`build_app` is the import path in serve.yaml; Serve validates the yaml ``args`` into ServeConfig.
"""
# No `from __future__ import annotations` here: Serve reads the builder's parameter annotation
# as a class to validate the yaml args with.
import logging
from typing import Optional

from ray import serve
from ray.serve import Application

from core.config import ServeConfig
from operators.matcher import GalleryMatcher
from operators.stages import face_stages, load_checked_gallery
from vipwatch.serve.deployments import MatcherRunner, StageRunner, read_active_gallery
from vipwatch.serve.ingress import ingress_deployment
from vipwatch.serve.security import digest_from_env
from vipwatch.ray_cluster import cluster_cpus, init_ray

log = logging.getLogger(__name__)
APP_NAME = "vipwatch"


def _cluster_cpus() -> float:
    import ray

    return cluster_cpus() if ray.is_initialized() else 2.0


def build_app(config: ServeConfig) -> Application:
    # Fail before anything starts: an app without a key would either be open or refuse everyone.
    api_key_digest = digest_from_env(config.api_key_env, required=True, key_file=config.api_key_file)
    admin_key_digest = digest_from_env(config.admin_api_key_env, required=False, key_file=config.admin_api_key_file)
    # A missing, corrupt or other-embedder gallery is refused here, as the crawl refuses it,
    # rather than by every request once the replicas are up.
    chain = config.crawl_config()
    load_checked_gallery(chain)
    # A gallery an admin made active earlier is checked too: replicas will load it.
    active = read_active_gallery(config.active_gallery_pointer, config.storage)
    if active is not None:
        load_checked_gallery(chain.model_copy(update={"gallery": active}))
    stages = face_stages(chain, _cluster_cpus())
    bound = []
    matcher_position: Optional[int] = None
    gallery_positions = []
    for position, stage in enumerate(stages):
        is_matcher = issubclass(stage.operator, GalleryMatcher)
        if is_matcher:
            matcher_position = position
        if "gallery_uri" in stage.kwargs:
            gallery_positions.append(position)
        holds_gallery = "gallery_uri" in stage.kwargs
        if holds_gallery or config.autoscaling is None:
            # A gallery swap is sent to one replica per stage, so stages holding a gallery run
            # one replica each (cheap next to the analyzer, which scales).
            replicas = {"num_replicas": 1 if holds_gallery else stage.actors}
        else:
            replicas = {"autoscaling_config": config.autoscaling.model_dump()}
        deployment = serve.deployment(MatcherRunner if is_matcher else StageRunner).options(
            name=stage.name,
            **replicas,
            ray_actor_options={"num_cpus": stage.num_cpus, "num_gpus": stage.num_gpus},
            # Serve's default (5) would cap every batch at 5 requests.
            max_ongoing_requests=max(2 * stage.batch_size, 16),
            max_queued_requests=config.max_queued_requests,
        )
        bound.append(deployment.bind(stage.operator, stage.kwargs, stage.batch_size, config.batch_wait_timeout_s,
                                     config.active_gallery_pointer if holds_gallery else None))
    if matcher_position is None:
        raise RuntimeError("face_stages has no GalleryMatcher stage: nothing to identify faces with")
    ingress = serve.deployment(ingress_deployment()).options(
        name="ingress", ray_actor_options={"num_cpus": config.ingress_num_cpus},
        max_ongoing_requests=config.ingress_max_ongoing_requests, max_queued_requests=config.max_queued_requests)
    return ingress.bind(config, api_key_digest, admin_key_digest, bound, matcher_position, gallery_positions)


def run_local(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start (or join) Ray, bind Serve's HTTP proxy to host:port, deploy, and return once every
    deployment is healthy."""
    application = build_app(config)   # key checks before Ray starts
    init_ray()
    # Serve's end-to-end limit sits above the app's own, which answers first with a clear 504.
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": config.request_timeout_s + 30})
    serve.run(application, name=APP_NAME, route_prefix="/")
    log.info("vipwatch serving on http://%s:%d (docs at /docs)", host, port)
