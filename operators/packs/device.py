"""Pick CPU or CUDA for onnxruntime (and report whether a GPU is there for actors / FAISS)."""
from __future__ import annotations

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


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


def uses_gpu(providers: list[str]) -> bool:
    return bool(providers) and providers[0] == CUDA
