"""The SBI detector network, wrapped so that the exported TorchScript takes raw RGB uint8 faces
and returns P(fake). Preprocessing lives inside the artefact, so training and scoring cannot
disagree. Backbones: ``mfn`` (the MobileFaceNet recogniser's feature layers, converted from
ONNX by vipwatch/training/onnx_backbone.py, plus a pooled linear head) or a small CNN of our
own trained from scratch (``tiny``/``small``/``base``; torchvision cannot be installed beside
the pinned CPU torch)."""
from __future__ import annotations

import hashlib
import io
import json

import cv2
import numpy as np
import torch
from torch import nn

from core import storage
from core.config import StorageConfig
from operators.forgery.face_crop import SBI_WINDOW

# What the network sees of the 224 context crop (x0, y0, x1, y1); training crops the same window
# from native pixels (operators/forgery/face_crop.py). Stored in each artefact's manifest.
CONTEXT_WINDOW = SBI_WINDOW
# Files of a trained SBI artefact (a directory or s3:// prefix).
MODEL_FILE, MANIFEST_FILE = "model.pt", "manifest.json"
SCRATCH_BACKBONES = {"tiny": (8, 16, 32, 64), "small": (16, 32, 64, 128), "base": (32, 64, 128, 256)}


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FeatureHead(nn.Module):
    """A pretrained feature extractor (N, C, h, w), global average pooling, dropout, one logit."""

    def __init__(self, features: nn.Module, channels: int, dropout: float = 0.2):
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x).mean(dim=(2, 3)))).squeeze(1)


class SmallCNN(nn.Module):
    """Four stride-2 stages then global pooling: blending artefacts are local, so a shallow net
    with a small receptive field per stage suffices; returns one logit per image."""

    def __init__(self, widths: tuple[int, ...] = SCRATCH_BACKBONES["small"]):
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
    """(N, H, W, 3) uint8 -> (N, 3, H, W), (x - 127.5) / 128 (the recogniser's own input scaling);
    training and the artefact both call this."""
    return (faces_uint8_nhwc.permute(0, 3, 1, 2).float() - 127.5) / 128.0


class UInt8Scorer(nn.Module):
    """(N, H, W, 3) uint8 RGB -> (N,) P(fake). What the TorchScript artefact exports."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(normalise(faces)))


def model_inputs(context_faces, size: int, window: tuple[int, int, int, int] = CONTEXT_WINDOW) -> np.ndarray:
    """224 context crops -> (N, size, size, 3) uint8 network inputs (no resampling when the
    window is already ``size`` wide)."""
    x0, y0, x1, y1 = window
    out = np.empty((len(context_faces), size, size, 3), np.uint8)
    for index, face in enumerate(context_faces):
        window = np.ascontiguousarray(face[y0:y1, x0:x1])
        interpolation = cv2.INTER_AREA if size < window.shape[0] else cv2.INTER_LINEAR
        out[index] = cv2.resize(window, (size, size), interpolation=interpolation)
    return out


def export_torchscript(network: nn.Module, size: int) -> bytes:
    """Traced (the converted backbone runs a fixed plan that tracing unrolls); the batch size
    stays free."""
    scorer = UInt8Scorer(network).cpu().eval()
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(scorer, example, check_trace=False), buffer)
    return buffer.getvalue()


def read_artifact(artifact_uri: str, storage_config: StorageConfig | None = None) -> tuple[dict, bytes]:
    """(manifest, model bytes) of an SBI artefact; refuses a model file whose sha256 is not the
    manifest's, so a detector or a training run never starts from a tampered or mixed-up file."""
    manifest = json.loads(storage.read_bytes(storage.join(artifact_uri, MANIFEST_FILE), storage_config))
    model_bytes = storage.read_bytes(storage.join(artifact_uri, MODEL_FILE), storage_config)
    if hashlib.sha256(model_bytes).hexdigest() != manifest["model_sha256"]:
        raise ValueError(f"{artifact_uri}: {MODEL_FILE} does not match the sha256 in its manifest")
    return manifest, model_bytes


def network_state(model_bytes: bytes) -> dict[str, torch.Tensor]:
    """The trainable network's state dict inside an exported artefact (UInt8Scorer's ``network``),
    to initialise a further training run from it."""
    scripted = torch.jit.load(io.BytesIO(model_bytes), map_location="cpu")
    prefix = "network."
    return {key[len(prefix):]: value.clone() for key, value in scripted.state_dict().items() if key.startswith(prefix)}
