"""MesoNet (Afchar et al., WIFS 2018) in PyTorch, loading the published Keras weights.

Architecture as in DariusAf/MesoNet ``classifiers.py`` (Keras 2.1.5): every Conv2D is
padding='same' with ReLU, followed by BatchNormalization (Keras defaults: epsilon=1e-3) and
MaxPooling2D(padding='same', stride = pool size); head Flatten -> Dropout(0.5) -> Dense(16) ->
LeakyReLU(0.1) -> Dropout(0.5) -> Dense(1, sigmoid). Input 256x256 RGB rescaled by 1/255.

The sigmoid means P(real): the authors' ``flow_from_directory`` sorts class folders, so
``df`` is class 0 and ``real`` class 1. ``MesoNetDetector.score`` returns 1 - that.
"""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import PurePosixPath

import cv2
import h5py
import numpy as np
import torch
from torch import nn

from operators.forgery.torch_device import select_device
from core import storage

INPUT_SIZE = 256
KERAS_BN_EPSILON = 1e-3
# MesoNet's crops (pipeline.py FaceFinder.get_aligned_face): a square of side
# 1.3 * 2.2 * max(eye distance, eye-mouth distance) around the nose, upright. In the ArcFace
# 112 template that is ~116 px around (56, ~68). Detecting + aligning the authors' own four
# test crops (../shared/data/deepfakes/mesonet) put their square at 111-141 template px (mean
# 126) centred at (56, 69-73). We take 128 px centred at (56, 70): in the 224 context frame
# (template + 56) the box x 48..176, y 62..190 -- inside the frame, and exactly 2x to 256.
CONTEXT_CROP = (48, 62, 176, 190)  # x0, y0, x1, y1


def _pool(size: int) -> nn.MaxPool2d:
    # Keras 'same' max-pooling with stride = size keeps ceil(n / size) outputs.
    return nn.MaxPool2d(size, stride=size, ceil_mode=True)


def _conv(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding="same", dilation=dilation)


class ConvBlock(nn.Module):
    """Conv(ReLU) -> BN -> MaxPool, the order of the Keras graph (BN after the activation)."""

    def __init__(self, cin: int, cout: int, kernel: int, pool: int):
        super().__init__()
        self.conv = _conv(cin, cout, kernel)
        self.bn = nn.BatchNorm2d(cout, eps=KERAS_BN_EPSILON, momentum=0.01)
        self.pool = _pool(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.bn(torch.relu(self.conv(x))))


class InceptionBlock(nn.Module):
    """InceptionLayer(a, b, c, d) -> BN -> MaxPool(2). Submodules are declared in the Keras
    creation order (a; b 1x1, b 3x3; c 1x1, c 3x3 dil 2; d 1x1, d 3x3 dil 3), which is how
    the weight loader pairs them with conv2d_N."""

    def __init__(self, cin: int, a: int, b: int, c: int, d: int):
        super().__init__()
        self.a = _conv(cin, a, 1)
        self.b1, self.b2 = _conv(cin, b, 1), _conv(b, b, 3)
        self.c1, self.c2 = _conv(cin, c, 1), _conv(c, c, 3, dilation=2)
        self.d1, self.d2 = _conv(cin, d, 1), _conv(d, d, 3, dilation=3)
        self.bn = nn.BatchNorm2d(a + b + c + d, eps=KERAS_BN_EPSILON, momentum=0.01)
        self.pool = _pool(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [torch.relu(self.a(x)),
                    torch.relu(self.b2(torch.relu(self.b1(x)))),
                    torch.relu(self.c2(torch.relu(self.c1(x)))),
                    torch.relu(self.d2(torch.relu(self.d1(x))))]
        return self.pool(self.bn(torch.cat(branches, dim=1)))


class MesoHead(nn.Module):
    def __init__(self, features: int = 16 * 8 * 8):
        super().__init__()
        self.dense1 = nn.Linear(features, 16)
        self.dense2 = nn.Linear(16, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Keras flattens NHWC: channels vary fastest. Permute so Dense weights line up.
        x = x.permute(0, 2, 3, 1).flatten(1)
        x = nn.functional.leaky_relu(self.dense1(self.dropout(x)), 0.1)
        return torch.sigmoid(self.dense2(self.dropout(x))).squeeze(1)


class Meso4(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(ConvBlock(3, 8, 3, 2), ConvBlock(8, 8, 5, 2),
                                    ConvBlock(8, 16, 5, 2), ConvBlock(16, 16, 5, 4))
        self.head = MesoHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, 256, 256) in [0, 1]. Returns the original sigmoid, P(real)."""
        return self.head(self.blocks(x))


class MesoInception4(Meso4):
    def __init__(self):
        nn.Module.__init__(self)
        self.blocks = nn.Sequential(InceptionBlock(3, 1, 4, 4, 2), InceptionBlock(11, 2, 4, 4, 2),
                                    ConvBlock(12, 16, 5, 2), ConvBlock(16, 16, 5, 4))
        self.head = MesoHead()


VARIANTS = {"Meso4": Meso4, "MesoInception4": MesoInception4}


def _keras_layers(weights: h5py.Group, kind: str) -> list[h5py.Group]:
    """Weighted layers of one kind ('conv2d', 'batch_normalization', 'dense') in creation
    order: Keras numbers layer names by creation, and the file's own order is topological."""
    pattern = re.compile(rf"^{kind}_(\d+)$")
    names = [n for n in weights.keys() if pattern.match(n) and len(weights[n].attrs["weight_names"])]
    return [weights[n] for n in sorted(names, key=lambda n: int(pattern.match(n).group(1)))]


def _layer_weights(layer: h5py.Group) -> dict[str, np.ndarray]:
    """{'kernel': ..., 'bias': ...} etc. by the weight's short name."""
    out = {}
    for weight_name in layer.attrs["weight_names"]:
        weight_name = weight_name.decode() if isinstance(weight_name, bytes) else weight_name
        short = weight_name.rsplit("/", 1)[-1].split(":")[0]
        out[short] = np.asarray(layer[weight_name])
    return out


def _copy(param: torch.Tensor, value: np.ndarray, where: str) -> None:
    if tuple(param.shape) != value.shape:
        raise ValueError(f"{where}: Keras shape {value.shape} does not fit torch {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def variant_of(weights: h5py.Group) -> str:
    return "Meso4" if len(_keras_layers(weights, "conv2d")) == 4 else "MesoInception4"


def load_keras_weights(model: nn.Module, weights: h5py.Group) -> None:
    """Copy every Keras tensor into ``model``; refuses any count or shape mismatch."""
    pairs = {
        "conv2d": [m for m in model.modules() if isinstance(m, nn.Conv2d)],
        "batch_normalization": [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)],
        "dense": [m for m in model.modules() if isinstance(m, nn.Linear)],
    }
    for kind, modules in pairs.items():
        layers = _keras_layers(weights, kind)
        if len(layers) != len(modules):
            raise ValueError(f"{len(layers)} Keras {kind} layers for {len(modules)} torch modules")
        for layer, module in zip(layers, modules):
            values, where = _layer_weights(layer), layer.name
            if kind == "conv2d":
                _copy(module.weight, values["kernel"].transpose(3, 2, 0, 1), where)  # HWIO -> OIHW
                _copy(module.bias, values["bias"], where)
            elif kind == "dense":
                _copy(module.weight, values["kernel"].T, where)
                _copy(module.bias, values["bias"], where)
            else:
                _copy(module.weight, values["gamma"], where)
                _copy(module.bias, values["beta"], where)
                _copy(module.running_mean, values["moving_mean"], where)
                _copy(module.running_var, values["moving_variance"], where)


def open_keras_weights(data: bytes) -> h5py.File:
    return h5py.File(io.BytesIO(data), "r")


def weight_root(handle: h5py.File) -> h5py.Group:
    # model.save() files nest the weights under model_weights; save_weights() files do not.
    return handle["model_weights"] if "model_weights" in handle else handle


def load_mesonet(data: bytes, variant: str | None = None) -> nn.Module:
    with open_keras_weights(data) as handle:
        root = weight_root(handle)
        model = VARIANTS[variant or variant_of(root)]()
        load_keras_weights(model, root)
    return model.eval()


def context_to_mesonet(context_face: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = CONTEXT_CROP
    return cv2.resize(context_face[y0:y1, x0:x1], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_CUBIC)


class MesoNetDetector:
    """ArtefactDetector over the published MesoNet weights (a file path or s3:// URI)."""

    def __init__(self, weights_path: str, variant: str | None = None, device: str = "auto", batch_size: int = 32):
        data = storage.read_bytes(weights_path)
        stem = PurePosixPath(weights_path).stem
        self.name = f"mesonet_{stem.lower()}"
        self.version = f"{stem}@{hashlib.sha256(data).hexdigest()[:8]}"
        self.device = select_device(device)
        self.model = load_mesonet(data, variant).to(self.device)
        self.variant = type(self.model).__name__
        self.batch_size = batch_size

    def score(self, context_faces: list[np.ndarray]) -> np.ndarray:
        return self.score_crops([context_to_mesonet(face) for face in context_faces])

    def score_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """P(fake) for face crops already framed as MesoNet's (any square size, RGB uint8)."""
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = np.stack([c if c.shape[:2] == (INPUT_SIZE, INPUT_SIZE) else
                              cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_CUBIC)
                              for c in crops[start:start + self.batch_size]])
            tensor = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            with torch.inference_mode():
                out.append(1.0 - self.model(tensor).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)
