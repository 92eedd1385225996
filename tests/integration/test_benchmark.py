"""jobs.benchmark and vipwatch/bench: the corpus is what its names say, the sampler sees the
processes it reports, and the benchmark command prints its JSON line with equal counts on both
sides (the gallery-scale benchmark: tests/unit/vipwatch/test_gallery_scale.py). Only behaviour is
asserted here; the speed and memory figures are the command's output (docs/performance.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from core.config import SHARED_DIR

from tests.support.shared_data import ONNX_PACK

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_corpus(onnx_analyzer, tmp_path_factory):
    """40 images with more background crops and truncated files than the benchmark's mix, so a
    small corpus has some of each."""
    from vipwatch.bench.corpus import build_corpus

    directory = tmp_path_factory.mktemp("corpus")
    mix = build_corpus(40, directory, SHARED_DIR, onnx_analyzer.pack, seed=5, no_face_fraction=0.3,
                       truncated_fraction=0.15)
    return directory, mix


def _images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("_"))


def test_corpus_is_deterministic_and_its_names_match_its_mix(small_corpus, onnx_analyzer, tmp_path):
    from vipwatch.bench.corpus import build_corpus

    directory, mix = small_corpus
    files = _images(directory)
    assert len(files) == 40
    assert json.loads((directory / "_COMPLETE").read_text()) == mix
    assert sum(mix[fmt] for fmt in ("jpg", "png", "webp")) == 40
    for fmt in ("jpg", "png", "webp"):
        assert sum(p.suffix == "." + fmt for p in files) == mix[fmt]
    assert sum("_background_" in p.name for p in files) == mix["background"] > 0
    assert sum("_truncated_" in p.name for p in files) == mix["truncated"] > 0

    again = build_corpus(40, tmp_path / "again", SHARED_DIR, onnx_analyzer.pack, seed=5, no_face_fraction=0.3,
                         truncated_fraction=0.15)
    assert again == mix
    assert [(p.name, p.read_bytes()) for p in _images(tmp_path / "again")] == [(p.name, p.read_bytes()) for p in files]


def test_corpus_rows_are_what_the_names_say(small_corpus, onnx_analyzer):
    """Truncated files become error rows, background crops no-face rows, and every intact photo
    decodes: what the benchmark's error and no-face counts rest on."""
    from operators.decode import ImageDecoder

    directory, _ = small_corpus
    files = _images(directory)
    decoded = ImageDecoder()(pa.table({"path": [str(p) for p in files],
                                       "bytes": pa.array([p.read_bytes() for p in files], pa.binary())}))
    rows = onnx_analyzer(decoded).to_pylist()
    statuses: dict[str, set] = {}
    for row in rows:
        statuses.setdefault(Path(row["image_uri"]).name, set()).add(row["status"])
    assert set(statuses) == {p.name for p in files}
    for name, seen in statuses.items():
        if "_truncated_" in name:
            assert seen == {"error"}, name
        elif "_background_" in name:
            assert seen == {"no_face"}, name
        else:
            assert "error" not in seen, name
    photos = [name for name in statuses if "_photo_" in name and "_truncated_" not in name]
    assert sum("ok" in statuses[name] for name in photos) >= len(photos) // 2


def test_role_of_names_ray_processes():
    from vipwatch.bench.sampler import role_of

    pool = "ray::MapWorker(MapBatches(FaceAnalyzer+GalleryMatcher+AlertProjection))"
    assert role_of(pool, "", None) == "actor:MapBatches(FaceAnalyzer+GalleryMatcher+AlertProjection)"
    # An actor keeps its role when its title changes as it shuts down.
    assert role_of("ray::IDLE", "", "actor:MapBatches(ImageDecoder)") == "actor:MapBatches(ImageDecoder)"
    assert role_of("ray::_StatsActor.update_metrics", "", None) == "actor:_StatsActor"
    assert role_of("ray::Write", "python default_worker.py", None) == "ray task workers"
    assert role_of("raylet", "/ray/raylet --flags", None) == "ray daemon:raylet"


def test_sampler_sees_a_child_process_memory_and_cpu():
    from vipwatch.bench.sampler import MemorySampler

    # A child that holds 300 MB and spins for a second: the sampler must count both.
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nblock = bytearray(300 * 2**20)\nfor i in range(0, len(block), 4096): block[i] = 1\n"
                              "end = time.time() + 1.0\nwhile time.time() < end: pass\nprint('ready', flush=True)\n"
                              "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        sampler = MemorySampler(interval_s=60)
        sampler.sample()
        assert sampler.peak["ray_node_rss_mb"] >= 300
        assert sampler.peak["total_rss_mb"] > sampler.peak["ray_node_rss_mb"]
        assert sampler.cpu_s[child.pid] >= 0.5
        assert sampler.role[child.pid].startswith("ray daemon:")
        by_role = sampler.cpu_by_role(before={})
        assert any(role.startswith("driver (1 proc)") for role in by_role)
    finally:
        child.kill()
        child.wait()


def test_benchmark_command_prints_one_json_line_with_equal_counts(tmp_path):
    """The whole command on a cold local cluster: its own S3 server, its own Ray, 24 images."""
    env = {**os.environ, "VIPWATCH_BENCH_CACHE": str(tmp_path / "cache")}
    env.pop("RAY_ADDRESS", None)
    timeline = tmp_path / "timeline.json"
    command = [sys.executable, "-m", "jobs.benchmark", "--images", "24", "--warmup-images", "0",
               "--object-store-mb", "512", "--model-pack", ONNX_PACK.pack, "--timeline", str(timeline)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=420, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["mode"] == "images" and report["images"] == 24
    assert report["images_in_output"] == 24
    assert report["faces"] == report["raw_faces"] > 0
    assert report["error_images"] == report["corpus_mix"]["truncated"]
    assert report["model_pack"].startswith("onnx:scrfd_500m_kps@")
    for key in ("pipeline_images_per_s", "raw_images_per_s", "peak_rss_mb", "peak_object_store_mb"):
        assert report[key] > 0, key
    assert report["ratio"] == pytest.approx(report["pipeline_images_per_s"] / report["raw_images_per_s"], rel=0.02)
    assert report["warmup"] is None
    assert report["min_rows_per_file"] == 5000  # the crawl's default reaches the benchmark's config
    # Per-stage times come from Ray Data's own stats text, parsed.
    analyzer_stage = [stats for name, stats in report["stages"].items() if "FaceAnalyzer" in name]
    assert analyzer_stage and analyzer_stage[0]["tasks"] > 0 and analyzer_stage[0]["remote_cpu_total_s"] > 0
    roles = report["pipeline_cpu_s_by_role"]
    assert any(role.startswith("actor:MapBatches(FaceAnalyzer") for role in roles)
    assert any(role.startswith("excluded:S3 server") for role in roles)
    # What each actor did, from Ray's timeline (also written to the file).
    assert (tmp_path / "timeline-0.json").exists()
    model_pool = [actors for pool, actors in report["actor_activity"].items() if pool.startswith("MapBatches(FaceAnalyzer")]
    assert model_pool and len(model_pool[0]) == 1
    model_actor = model_pool[0][0]
    assert model_actor["batches"] == analyzer_stage[0]["tasks"]
    assert 0 < model_actor["busy_s"] <= model_actor["span_s"] + 0.05
    assert model_actor["first_batch_after_init_s"] > 0
    # The raw loop's time per step: decode, each operator, the projection.
    assert set(report["raw_stage_ms_per_image"]) >= {"ImageDecoder", "FaceAnalyzer", "GalleryMatcher",
                                                     "ForgeryScorer", "to_output"}
    # As shipped: the forgery stage on both sides, with the default ForgeryConfig's models.
    assert report["forgery_stage"] is True and "ForgeryScorer" in report["raw_operators"]
    # The ONNX default brings the detector it was fitted with (fusion-lr@dfd5903e, session 31).
    assert report["forgery_model"].startswith("fusion-lr@") and report["forgery_detectors"] == ["sbi:sbi-mfn-v6"]
    assert 0 < report["forgery_share_of_raw"] < 1
    assert report["forgery_share_of_raw"] == report["raw_stage_share"]["ForgeryScorer"]
    assert sum(report["raw_stage_share"].values()) == pytest.approx(1.0, abs=0.01)
    assert report["raw_stage_ms_per_image"]["FaceAnalyzer"] > report["raw_stage_ms_per_image"]["to_output"]
    # The crawl's wall time is inside the command's.
    assert report["images"] / report["pipeline_images_per_s"] < time.perf_counter() - started
