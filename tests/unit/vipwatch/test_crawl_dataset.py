"""The crawl's Ray Data plan: which stages run where (the throughput knobs of
docs/performance.md depend on it), checked on the plan Ray Data itself builds."""
from __future__ import annotations

from core.config import CrawlConfig, RayResources

from tests.support.shared_data import ONNX_PACK, PHOTOS


def physical_plan(ray_cluster, capsys, tmp_path, resources: RayResources) -> str:
    from vipwatch.crawl.dataset import build_dataset
    from vipwatch.crawl.shards import ShardedJob

    config = CrawlConfig(input=str(PHOTOS / "scrfd"), gallery="unused-until-execution", output="unused",
                         model=ONNX_PACK, resources=resources)
    uris = sorted(str(p) for p in (PHOTOS / "scrfd").iterdir())
    job = ShardedJob.open(str(tmp_path), "plan", config.input, lambda: [uris], 10)
    capsys.readouterr()
    build_dataset(config, job.pending_inputs(job.shards)).explain()
    return capsys.readouterr().out.split("Physical Plan (Optimized)")[1]


def test_read_runs_inside_the_decode_actors(ray_cluster, capsys, tmp_path):
    """Default: files are read and decoded by one CPU actor pool (read fused into it), then the
    analyzer pool; no task pool runs the read. A batch size on the decode stage would silently
    undo the fusion and bring back a worker process per read task (docs/performance.md)."""
    plan = physical_plan(ray_cluster, capsys, tmp_path, RayResources())
    assert "ActorPoolMapOperator[ReadInputs->MapBatches(ImageDecoder)]" in plan
    assert "ActorPoolMapOperator[MapBatches(FaceAnalyzer" in plan
    assert "TaskPoolMapOperator[ReadInputs" not in plan


def test_decode_as_tasks_when_asked(ray_cluster, capsys, tmp_path):
    plan = physical_plan(ray_cluster, capsys, tmp_path, RayResources(decode_actors=0))
    decode_line = next(line for line in plan.splitlines() if "ImageDecoder" in line)
    assert "TaskPoolMapOperator[" in decode_line


def test_face_stages_share_one_pool_and_the_write_gets_bare_rows(ray_cluster, capsys, tmp_path):
    """Default: analyzer, matcher and (CPU) forgery scorer run in one actor pool that also drops
    the crops (the plan ends with it: no projection task before the write), so the write tasks
    receive output rows only."""
    plan = physical_plan(ray_cluster, capsys, tmp_path, RayResources())
    operators = [line.strip(" +-") for line in plan.splitlines() if "Operator[" in line]
    assert operators[0] == "ActorPoolMapOperator[MapBatches(FaceAnalyzer+GalleryMatcher+ForgeryScorer+to_output)]"
    assert not any("GalleryMatcher)]" in op or "TaskPoolMapOperator" in op for op in operators)


def test_one_pool_per_stage_when_not_fused(ray_cluster, capsys, tmp_path):
    plan = physical_plan(ray_cluster, capsys, tmp_path, RayResources(fuse_face_stages=False))
    for operator in ("FaceAnalyzer", "GalleryMatcher", "ForgeryScorer"):
        assert f"ActorPoolMapOperator[MapBatches({operator})]" in plan
    assert "TaskPoolMapOperator[MapBatches(to_output)]" in plan


def test_a_gpu_stage_keeps_its_own_pool_and_cpus_stay_free():
    from core.config import ForgeryConfig
    from operators.stages import face_stages
    from vipwatch.crawl.pools import stage_pools

    config = CrawlConfig(input="in", gallery="g", output="out", model=ONNX_PACK,
                         resources=RayResources(analyzer_num_gpus=1.0),
                         forgery=ForgeryConfig(num_gpus=0.5, num_cpus=0.5))
    pools = stage_pools(face_stages(config, 8.0), fuse=True, cluster_cpus=8.0, reserved_cpus=0.75)
    assert [pool.name for pool in pools] == ["FaceAnalyzer+GalleryMatcher", "ForgeryScorer"]
    assert [pool.num_gpus for pool in pools] == [1.0, 0.5]
    assert pools[0].num_cpus == 1.0 + 0.25  # analyzer + matcher

    # Two analyzer actors on 2 CPUs: each fused actor is capped so that read, decode and write
    # (0.75 CPU) still fit beside both, or the job would hang.
    small = CrawlConfig(input="in", gallery="g", output="out", model=ONNX_PACK,
                        resources=RayResources(analyzer_actors=2), forgery=ForgeryConfig(enabled=False))
    (pool,) = stage_pools(face_stages(small, 2.0), fuse=True, cluster_cpus=2.0, reserved_cpus=0.75)
    assert pool.stages[0].actors == 2
    assert 2 * pool.num_cpus + 0.75 <= 2.0

    # Two nodes of 1 CPU (tests/integration/test_multinode.py): the fused actor must fit on one of them.
    default = CrawlConfig(input="in", gallery="g", output="out", model=ONNX_PACK)
    (pool,) = stage_pools(face_stages(default, 2.0), fuse=True, cluster_cpus=2.0, reserved_cpus=0.75,
                          nodes=[(1.0, 0.0), (1.0, 0.0)])
    assert pool.num_cpus <= 1.0

    # A 16-CPU head without GPUs and 4-CPU GPU nodes: the GPU pool must fit a GPU node.
    gpu = CrawlConfig(input="in", gallery="g", output="out", model=ONNX_PACK,
                      resources=RayResources(analyzer_num_cpus=4.0, analyzer_num_gpus=1.0))
    pools = stage_pools(face_stages(gpu, 24.0), fuse=True, cluster_cpus=24.0, reserved_cpus=0.75,
                        nodes=[(16.0, 0.0), (4.0, 1.0), (4.0, 1.0)])
    assert pools[0].num_gpus == 1.0 and pools[0].num_cpus <= 4.0


def test_fused_forgery_scorer_shares_the_gallery_and_the_pack():
    """In one process the scorer takes the matcher's gallery and the analyzer's model pack
    instead of loading second copies."""
    from operators.chain import OperatorChain, Shared
    from operators.face_analyzer import FaceAnalyzer
    from operators.matcher import GalleryMatcher
    from operators.stages import face_stages
    from vipwatch.crawl.pools import stage_pools

    config = CrawlConfig(input="in", gallery="g", output="out", model=ONNX_PACK)
    (pool,) = stage_pools(face_stages(config, 2.0), fuse=True, cluster_cpus=2.0, reserved_cpus=0.75)
    forgery_kwargs = pool.steps()[2][1]
    assert forgery_kwargs["gallery"] == Shared(GalleryMatcher, "gallery")
    assert forgery_kwargs["pack"] == Shared(FaceAnalyzer, "pack")
    separate = stage_pools(face_stages(config, 2.0), fuse=False, cluster_cpus=2.0, reserved_cpus=0.75)
    assert "gallery" not in separate[2].steps()[0][1]

    class Holder:
        def __init__(self):
            self.gallery = object()

    class Taker:
        def __init__(self, gallery):
            self.gallery = gallery

    chain = OperatorChain([(Holder, {}), (Taker, {"gallery": Shared(Holder, "gallery")})])
    assert chain.operators[1].gallery is chain.operators[0].gallery


def rounded(value):
    # Batches may group faces differently between runs; the recogniser's float results then
    # differ in the last bits only.
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item) for item in value]
    return value


def test_fused_and_separate_pools_write_the_same_rows(ray_cluster, onnx_gallery, tmp_path):
    """The fused chain is an execution choice only: both layouts give the same rows."""
    import shutil

    from vipwatch.crawl.run import run_crawl
    from vipwatch.crawl.summary import read_results

    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted((PHOTOS / "scrfd").iterdir())[:4]:
        shutil.copy(path, inputs / path.name)
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    tables = {}
    for fused in (True, False):
        config = CrawlConfig(input=str(inputs), gallery=onnx_gallery, output=str(tmp_path / f"out-{fused}"),
                             job_id="same-rows", model=ONNX_PACK,
                             resources=RayResources(batch_size=2, analyzer_num_cpus=0.5, fuse_face_stages=fused))
        config.forgery.enabled = False
        result = run_crawl(config)
        table = read_results(result.output, storage_config=None).drop_columns(["processed_at"])
        keys = ["image_uri", "frame_index", "face_index"]
        tables[fused] = rounded(table.sort_by([(key, "ascending") for key in keys]).to_pylist())
    assert len(tables[True]) > 5  # faces of four photos plus the broken file's error row
    assert any(row["status"] == "error" for row in tables[True])
    assert tables[True] == tables[False]
