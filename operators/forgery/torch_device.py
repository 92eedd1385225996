"""Where torch-based forgery detectors run: CUDA when torch sees a GPU (GPU actors), else CPU."""
from __future__ import annotations

import torch


def select_device(device: str = "auto") -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but torch sees no GPU (this torch build may be CPU-only)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
