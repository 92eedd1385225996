"""The SBI detector network: a small CNN of our own (torchvision cannot be installed beside the
pinned torch), wrapped so that the exported TorchScript takes raw RGB uint8 faces and returns
P(fake). Preprocessing lives inside the artefact, so training and scoring cannot disagree."""
from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from torch import nn

# What the network sees of the 224 context crop: the 112 aligned window (x0, y0, x1, y1). It
# holds the whole landmark hull, and it is the only part with real pixels when the input was
# already aligned (--aligned pads the rest by edge replication), so training on aligned crops
# and scoring crawl crops see the same thing.
CONTEXT_WINDOW = (56, 56, 168, 168)
# Files of a trained SBI artefact (a directory or s3:// prefix).
MODEL_FILE, MANIFEST_FILE = "model.pt", "manifest.json"
BACKBONES = {"tiny": (8, 16, 32, 64), "small": (16, 32, 64, 128), "base": (32, 64, 128, 256)}


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Four stride-2 stages then global pooling: blending artefacts are local, so a shallow net
    with a small receptive field per stage suffices; returns one logit per image."""

    def __init__(self, widths: tuple[int, ...] = BACKBONES["small"]):
        super().__init__()
        stages, cin = [], 3
        for width in widths:
            stages.append(_stage(cin, width))
            cin = width
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3))).squeeze(1)


def normalise(faces_uint8_nhwc: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]; training and the artefact both call this."""
    return faces_uint8_nhwc.permute(0, 3, 1, 2).float() / 127.5 - 1.0


class UInt8Scorer(nn.Module):
    """(N, H, W, 3) uint8 RGB -> (N,) P(fake). What the TorchScript artefact exports."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(normalise(faces)))


def build_network(backbone: str) -> SmallCNN:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {sorted(BACKBONES)}")
    return SmallCNN(BACKBONES[backbone])


def model_inputs(context_faces, size: int) -> np.ndarray:
    """224 context crops -> (N, size, size, 3) uint8 network inputs."""
    x0, y0, x1, y1 = CONTEXT_WINDOW
    out = np.empty((len(context_faces), size, size, 3), np.uint8)
    for index, face in enumerate(context_faces):
        window = np.ascontiguousarray(face[y0:y1, x0:x1])
        interpolation = cv2.INTER_AREA if size < window.shape[0] else cv2.INTER_LINEAR
        out[index] = cv2.resize(window, (size, size), interpolation=interpolation)
    return out


def export_torchscript(network: nn.Module) -> bytes:
    scorer = UInt8Scorer(network).cpu().eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(scorer), buffer)
    return buffer.getvalue()
