"""Where torch-based forgery detectors run: CUDA when torch sees a GPU (GPU actors), else CPU."""
from __future__ import annotations

import os

import torch

from operators.packs.device import gpu_assigned


def select_device(device: str = "auto") -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but torch sees no GPU (this torch build may be CPU-only)")
    if device == "auto" and gpu_assigned() and not torch.cuda.is_available():
        # A GPU actor whose torch cannot use the GPU would run the detector on CPU, silently slow.
        raise RuntimeError(f"a GPU is assigned to this process (CUDA_VISIBLE_DEVICES="
                           f"{os.environ.get('CUDA_VISIBLE_DEVICES')}) but torch {torch.__version__} cannot use it "
                           f"(built for CUDA {torch.version.cuda}): install the GPU image's torch")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
