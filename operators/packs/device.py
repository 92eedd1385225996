"""Pick CPU or CUDA for onnxruntime (and report whether a GPU is there for actors / FAISS).

Listing CUDAExecutionProvider only says the onnxruntime build has it: a session asked for CUDA
still falls back to CPU when the CUDA or cuDNN libraries fail to load. So after a session is made,
`check_session_device` reads the provider the session really runs on (`session.get_providers()`)
and refuses a CPU fallback when CUDA was demanded (device=cuda) or a GPU is assigned to this
process (a Ray actor with num_gpus): the job fails at start instead of running 30x slower.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def gpu_assigned() -> bool:
    """A GPU is assigned to this process: Ray sets CUDA_VISIBLE_DEVICES for actors with num_gpus
    (and to an empty string for those without)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", "").strip() not in ("", "-1", "NoDevFiles")


def select_providers(device: str = "auto", available: list[str] | None = None) -> list[str]:
    """``auto`` takes CUDA when the onnxruntime build has it (onnxruntime-gpu on a GPU node)."""
    available = available_providers() if available is None else available
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if CUDA not in available:
            raise RuntimeError(
                "device=cuda but onnxruntime has no CUDAExecutionProvider: install the 'gpu' extra "
                "(onnxruntime-gpu) on a GPU node"
            )
        return [CUDA, CPU]
    return [CUDA, CPU] if CUDA in available else [CPU]


def preload_cuda_libraries() -> None:
    """onnxruntime-gpu >= 1.21 finds CUDA and cuDNN in the nvidia-* wheels (its [cuda,cudnn]
    extras) only once they are loaded; torch loads them on import, a process without torch must
    ask."""
    import onnxruntime

    preload = getattr(onnxruntime, "preload_dlls", None)
    if preload is not None:
        preload()


def check_session_device(session_providers: list[str], requested: list[str], device: str, what: str) -> list[str]:
    """The providers a session really runs on; raises when CUDA was requested and is not active,
    unless the caller only preferred it (device=auto on a process with no GPU assigned)."""
    active = list(session_providers)
    if not uses_gpu(requested) or uses_gpu(active):
        return active
    message = (f"{what}: CUDAExecutionProvider was requested but the session runs on {active}: the CUDA or "
               "cuDNN libraries did not load (one CUDA major for onnxruntime-gpu, torch and the nvidia-* "
               "wheels; see docs/deployment.md)")
    if device == "cuda" or gpu_assigned():
        raise RuntimeError(message)
    log.warning("%s; running on CPU", message)
    return active


def uses_gpu(providers: list[str]) -> bool:
    return bool(providers) and providers[0] == CUDA
