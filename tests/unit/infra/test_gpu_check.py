"""infra/gpu_check.sh's argument handling and plan, run for real on this GPU-less machine."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "infra" / "gpu_check.sh"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_plan_runs_cuda_forgery_and_faiss_gpu_steps_under_eight_minutes():
    done = _run("--dry-run", "--images", "500", "--gallery-sizes", "100000")
    assert done.returncode == 0, done.stderr
    steps = dict(re.findall(r"^step (\w+) cap=(\d+)s", done.stdout, re.M))
    assert list(steps) == ["install", "providers", "images", "gallery"]
    total = int(re.search(r"^total cap=(\d+)s", done.stdout, re.M).group(1))
    assert total == sum(map(int, steps.values())) and total <= 470  # 8 min with bookkeeping to spare
    assert "install.sh --gpu" in done.stdout
    images = next(line for line in done.stdout.splitlines() if line.startswith("step images"))
    for flag in ("--images 500", "--device cuda", "--actor-gpus 1", "--forgery"):
        assert flag in images
    assert "--faiss-gpu" in done.stdout and "--gallery-sizes 100000" in done.stdout
    assert "--device cuda" in next(line for line in done.stdout.splitlines() if line.startswith("step providers"))


def test_skip_install_drops_the_install_step():
    done = _run("--dry-run", "--skip-install")
    assert done.returncode == 0 and "step install" not in done.stdout


def test_bad_arguments_exit_2_with_usage():
    for args in (["--images", "many"], ["--gallery-sizes", "1e6"], ["--frobnicate"], ["--images"]):
        done = _run(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "gpu_check" in done.stderr


def test_help_exits_0():
    done = _run("--help")
    assert done.returncode == 0 and "usage: infra/gpu_check.sh" in done.stdout


def test_without_a_gpu_it_measures_nothing_and_says_so(tmp_path):
    if shutil.which("nvidia-smi"):
        return  # a GPU machine: the check would run for real
    done = _run("--skip-install", "--out", str(tmp_path / "out"))
    assert done.returncode == 3 and "no NVIDIA GPU" in done.stderr
    assert not (tmp_path / "out").exists()
