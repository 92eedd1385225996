"""Build the network an SBI run trains: the face recogniser's feature layers + a head, or a
small CNN from scratch (for comparison and quick tests)."""
from __future__ import annotations

from core.config import SHARED_DIR
from operators.forgery.sbi_model import SCRATCH_BACKBONES, FeatureHead, SmallCNN
from vipwatch.training.onnx_backbone import FEATURE_OUTPUT, load_onnx_convnet

MOBILEFACENET = SHARED_DIR / "models" / "mobilefacenet_128.onnx"
BACKBONES = ("mfn", *SCRATCH_BACKBONES)
MFN_CHANNELS = 512


def build_network(backbone: str, weights: str | None = None):
    if backbone == "mfn":
        return FeatureHead(load_onnx_convnet(str(weights or MOBILEFACENET), FEATURE_OUTPUT), MFN_CHANNELS)
    if backbone in SCRATCH_BACKBONES:
        return SmallCNN(SCRATCH_BACKBONES[backbone])
    raise ValueError(f"unknown backbone {backbone!r}; choose from {list(BACKBONES)}")
