"""The face chain, declared once: which operator classes run, in which order, built how, with
what resources. A Stage is plain data; three executors run the same list:

- the crawl (vipwatch/crawl): Ray Data actor pools, consecutive stages fused in one actor;
- Serve (vipwatch/serve): one deployment per stage;
- in process (operators/runner.py): the benchmark's raw loop, enrolment, calibration, evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config import CrawlConfig
from index.gallery import Gallery
from operators.chain import Shared
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.fusion import SHIPPED, detector_specs
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from operators.packs import load_model_pack
from operators.packs.embedder_id import expected_embedder_id


@dataclass
class Stage:
    """One operator of the face chain: the class, how to construct it, and what it needs."""

    name: str
    operator: type
    kwargs: dict
    batch_size: int
    num_cpus: float
    num_gpus: float = 0.0
    actors: int = 1
    # Constructor arguments this stage can take from an earlier stage's operator when both run
    # in one process: {kwarg: (operator class, attribute)}.
    shares: dict = field(default_factory=dict)


def pool_sizes(config: CrawlConfig, cluster_cpus: float) -> dict:
    """Actor pool sizing from the cluster's resources: never reserve every CPU, or the read and
    decode tasks starve and the job hangs."""
    res = config.resources
    tasks = res.read_num_cpus + res.decode_num_cpus * max(1, res.decode_actors) + res.write_num_cpus
    forgery_cpus = config.forgery.num_cpus if config.forgery.enabled else 0.0
    free_for_analyzers = cluster_cpus - res.matcher_num_cpus - forgery_cpus - tasks
    actors = max(1, res.analyzer_actors)
    analyzer_cpus = max(0.25, min(res.analyzer_num_cpus, free_for_analyzers / actors))
    return {"analyzer_actors": actors, "analyzer_num_cpus": analyzer_cpus}


def second_embedder(config: CrawlConfig) -> str | None:
    """The embedder_id of the forgery scorer's second pack, which chooses the shipped fusion; None
    without a second pack or when no shipped fusion is to be chosen. Told from the files where it
    can be, else by loading the pack."""
    second = config.forgery.second_pack
    if second is None or config.forgery.fusion_model != SHIPPED or config.forgery.detectors is not None:
        return None
    return expected_embedder_id(second, config.storage) or \
        load_model_pack(second, config.storage, threads=1).embedder_id


def face_stages(config: CrawlConfig, cluster_cpus: float = 2.0) -> list[Stage]:
    """Decoded images -> scored face rows. Stages after FaceAnalyzer take and return WORK_SCHEMA
    tables, so a stage is added by appending it here (the forgery scorer is one). Without a
    gallery (an evaluation of artefact signals only) there is no match stage."""
    res = config.resources
    sizes = pool_sizes(config, cluster_cpus)
    stages = [
        Stage("analyze", FaceAnalyzer,
              {"model": config.model, "aligned": config.aligned, "job_id": config.job_id,
               "storage": config.storage, "threads": res.analyzer_threads or max(1, int(sizes["analyzer_num_cpus"])),
               # The 224 px context crop (150 KB a face) feeds only the artefact detectors.
               "context_crops": config.forgery.enabled and bool(
                   detector_specs(config.forgery.detectors, config.forgery.fusion_model, config.storage,
                                  pack_name=config.model.pack, second_embedder_id=second_embedder(config)))},
              batch_size=res.batch_size, num_cpus=sizes["analyzer_num_cpus"], num_gpus=res.analyzer_num_gpus,
              actors=sizes["analyzer_actors"]),
    ]
    if config.gallery:
        stages.append(Stage("match", GalleryMatcher,
                            {"gallery_uri": config.gallery, "match": config.match, "storage": config.storage},
                            batch_size=256, num_cpus=res.matcher_num_cpus))
    if config.forgery.enabled:
        stages.append(Stage("forgery", ForgeryScorer,
                            {"gallery_uri": config.gallery or None, "forgery": config.forgery, "model": config.model,
                             "storage": config.storage},
                            batch_size=config.forgery.batch_size, num_cpus=config.forgery.num_cpus,
                            num_gpus=config.forgery.num_gpus,
                            shares={"gallery": (GalleryMatcher, "gallery"), "pack": (FaceAnalyzer, "pack")}))
    return stages


def chain_steps(stages: list[Stage], overrides: dict[str, Any] | None = None) -> list[tuple[type, dict]]:
    """OperatorChain steps for stages that run in one process: a stage takes what it shares
    (Stage.shares) from an earlier stage instead of loading its own copy. ``overrides`` replace
    constructor arguments a stage has (the raw loop's onnxruntime threads)."""
    built: set = set()
    steps = []
    for stage in stages:
        kwargs = {**stage.kwargs, **{k: v for k, v in (overrides or {}).items() if k in stage.kwargs}}
        for name, (operator, attribute) in stage.shares.items():
            if operator in built:
                kwargs[name] = Shared(operator, attribute)
        steps.append((stage.operator, kwargs))
        built.add(stage.operator)
    return steps


def load_checked_gallery(config: CrawlConfig) -> Gallery:
    """The chain's gallery, refused (GalleryError) when missing, corrupt, or built with another
    embedder than the model pack's: checked on the driver before any worker loads a model."""
    gallery = Gallery.load(config.gallery, config.storage)
    embedder = expected_embedder_id(config.model, config.storage)
    if embedder is not None:
        gallery.check_compatible(embedder)
    return gallery
