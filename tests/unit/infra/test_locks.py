"""The hash-locked requirement files (infra/lock.sh) that both infra/install.sh and the image
install: pinned as pyproject.toml says, every entry hashed, test tools kept out of the runtime
lock, and in the GPU lock one CUDA major across torch, onnxruntime-gpu and every nvidia / cuda
wheel. Read from the lock files' resolved names and versions (the package metadata uv resolved;
no GPU and no network needed)."""
from __future__ import annotations

import re
import tomllib

import pytest

from core.config import REPO_ROOT

INFRA = REPO_ROOT / "infra"
# Packages whose version is the CUDA toolkit version itself; the others (cufft 12.x, curand 10.x,
# cusolver 12.x ... for CUDA 13) carry their library's own version, and say the CUDA major only
# through a -cuNN suffix.
CUDA_VERSIONED = {"cuda-toolkit", "cuda-bindings", "nvidia-cuda-runtime", "nvidia-cuda-nvrtc", "nvidia-cuda-cupti",
                  "nvidia-cublas", "nvidia-nvjitlink", "nvidia-nvtx", "nvidia-cuda-nvcc"}


def lock_entries(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip requirements file written with --generate-hashes."""
    entries, name = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            match = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^ ;\\]+)", line)
            assert match, f"not an exact pin: {line!r}"
            name = match.group(1).lower().replace("_", "-")
            entries[name] = (match.group(2), [])
        else:
            entries[name][1].extend(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return entries


def cuda_majors(entries: dict[str, tuple[str, list[str]]]) -> dict[str, int]:
    """The CUDA major each CUDA-bound package in a resolved set was built for."""
    majors = {}
    for name, (version, _) in entries.items():
        suffix = re.search(r"-cu(\d+)(?:x)?(?:-|$)", name)
        if suffix:
            majors[name] = int(suffix.group(1)[:2])
        elif name in CUDA_VERSIONED:
            majors[name] = int(version.split(".")[0])
    return majors


def read(name: str) -> dict[str, tuple[str, list[str]]]:
    return lock_entries((INFRA / name).read_text())


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^ ;]+)$", requirement)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-test.lock", "requirements-gpu.lock"])
def test_every_locked_package_is_pinned_with_a_hash(lock):
    entries = read(lock)
    assert entries
    unhashed = [name for name, (_, hashes) in entries.items() if not hashes]
    assert not unhashed, f"{lock}: no hash for {unhashed}"


def test_locks_pin_what_pyproject_pins():
    project = pyproject()["project"]
    runtime, test_tools, gpu = read("requirements.lock"), read("requirements-test.lock"), read("requirements-gpu.lock")
    stale = "is pinned in pyproject.toml but not so in the lock: run infra/lock.sh (see its header)"
    for name, version in pins(project["dependencies"]).items():
        assert name in runtime and runtime[name][0].split("+")[0] == version, f"{name} {stale}"
        if name != "onnxruntime":
            assert gpu[name][0] == version, name
    for name, version in pins(project["optional-dependencies"]["test"]).items():
        assert (test_tools.get(name) or runtime.get(name, ("",)))[0] == version, f"{name} {stale}"
    assert runtime["torch"][0] == "2.13.0+cpu" and gpu["torch"][0] == "2.13.0"
    assert runtime["insightface"][0] == gpu["insightface"][0] == "2.1"
    # insightface's own dependencies stay out (its GUI opencv-python would replace the headless cv2).
    assert "opencv-python" not in runtime and "opencv-python" not in gpu


def test_the_image_lock_holds_no_test_tools():
    runtime, gpu, test_tools = read("requirements.lock"), read("requirements-gpu.lock"), read("requirements-test.lock")
    for tool in ("pytest", "pytest-timeout", "moto"):
        assert tool in test_tools and tool not in runtime and tool not in gpu
    assert not set(test_tools) & set(runtime), "a test lock entry would override a runtime pin"


def test_gpu_lock_has_one_cuda_major_and_one_onnxruntime():
    gpu = read("requirements-gpu.lock")
    majors = cuda_majors(gpu)
    assert {"torch", "onnxruntime-gpu"} <= set(gpu) and "onnxruntime" not in gpu
    assert "cuda-toolkit" in majors and "nvidia-cudnn-cu13" in majors, "torch / onnxruntime-gpu[cuda,cudnn] libraries"
    assert set(majors.values()) == {13}, majors
    gpu_extra = pyproject()["project"]["optional-dependencies"]["gpu"]
    assert any(r.startswith("onnxruntime-gpu[cuda,cudnn]==") for r in gpu_extra), "CUDA libraries come from the extras"
    assert not any("faiss-gpu-cu12" in r for r in gpu_extra)


def test_the_cuda_check_sees_a_mixed_set():
    mixed = lock_entries("torch==2.13.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
                         "cuda-toolkit==13.0.3.0 \\\n    --hash=sha256:" + "1" * 64 + "\n"
                         "nvidia-cufft==12.0.0.61 \\\n    --hash=sha256:" + "2" * 64 + "\n"
                         "faiss-gpu-cu12==1.14.1.post1 \\\n    --hash=sha256:" + "3" * 64 + "\n"
                         "nvidia-cuda-runtime-cu12==12.9.79 \\\n    --hash=sha256:" + "4" * 64 + "\n")
    assert cuda_majors(mixed) == {"cuda-toolkit": 13, "faiss-gpu-cu12": 12, "nvidia-cuda-runtime-cu12": 12}


def test_install_script_and_image_install_the_locks_with_hashes():
    script = (INFRA / "install.sh").read_text()
    assert "--require-hashes --no-deps" in script
    for lock in ("requirements.lock", "requirements-gpu.lock", "requirements-test.lock"):
        assert f"infra/{lock}" in script
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert "infra/install.sh" in dockerfile and "--production" in dockerfile
