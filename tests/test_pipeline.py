"""The crawl's Ray Data plan: which stages run where (the throughput knobs of README
"Performance" depend on it), checked on the plan Ray Data itself builds."""
from __future__ import annotations

from vipwatch.config import CrawlConfig, RayResources

from conftest import ONNX_PACK, PHOTOS


def physical_plan(ray_cluster, capsys, resources: RayResources) -> str:
    from vipwatch.pipeline import build_dataset

    config = CrawlConfig(input=str(PHOTOS / "scrfd"), gallery="unused-until-execution", output="unused",
                         model=ONNX_PACK, resources=resources)
    uris = sorted(str(p) for p in (PHOTOS / "scrfd").iterdir())
    capsys.readouterr()
    build_dataset(config, uris).explain()
    return capsys.readouterr().out.split("Physical Plan (Optimized)")[1]


def test_read_runs_inside_the_decode_actors(ray_cluster, capsys):
    """Default: files are read and decoded by one CPU actor pool (read fused into it), then the
    analyzer pool; no task pool runs the read. A batch size on the decode stage would silently
    undo the fusion and bring back a worker process per read task (README "Performance")."""
    plan = physical_plan(ray_cluster, capsys, RayResources())
    assert "ActorPoolMapOperator[ReadBinary->MapBatches(ImageDecoder)]" in plan
    assert "ActorPoolMapOperator[MapBatches(FaceAnalyzer)]" in plan
    assert "TaskPoolMapOperator[ReadBinary" not in plan


def test_decode_as_tasks_when_asked(ray_cluster, capsys):
    plan = physical_plan(ray_cluster, capsys, RayResources(decode_actors=0))
    decode_line = next(line for line in plan.splitlines() if "ImageDecoder" in line)
    assert "TaskPoolMapOperator[" in decode_line
