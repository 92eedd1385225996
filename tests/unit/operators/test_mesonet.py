"""The MesoNet port: architecture shapes, weights equal to the Keras file, and the published
DF weights separating the authors' own real / deepfake samples in the right direction."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from operators.align import align_face
from operators.forgery.mesonet import (MesoInception4, Meso4, MesoNetDetector, load_mesonet, open_keras_weights,
                                       weight_root)
from tests.support.shared_data import DATA, MODELS

WEIGHTS = MODELS / "mesonet"
SAMPLES = DATA / "deepfakes" / "mesonet"
DF_WEIGHTS = ["Meso4_DF.h5", "MesoInception_DF.h5", "Meso4_F2F.h5"]


def samples(kind: str) -> list[np.ndarray]:
    # As the authors' ImageDataGenerator(target_size=(256, 256)) fed them: nearest resize.
    paths = sorted((SAMPLES / kind).iterdir())
    assert paths, f"no samples in {SAMPLES / kind}"
    return [np.asarray(Image.open(p).convert("RGB").resize((256, 256), Image.NEAREST)) for p in paths]


@pytest.mark.parametrize("model_cls, expected", [
    (Meso4, [(8, 128, 128), (8, 64, 64), (16, 32, 32), (16, 8, 8)]),
    (MesoInception4, [(11, 128, 128), (12, 64, 64), (16, 32, 32), (16, 8, 8)]),
])
def test_block_shapes_match_keras_graph(model_cls, expected):
    model = model_cls().eval()
    x = torch.rand(2, 3, 256, 256)
    shapes = []
    for block in model.blocks:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == expected
    assert model.head.dense1.in_features == 16 * 8 * 8
    assert tuple(model.head(x).shape) == (2,)


@pytest.mark.parametrize("file_name", sorted(p.name for p in WEIGHTS.glob("*.h5")))
def test_loaded_weights_equal_h5(file_name):
    data = (WEIGHTS / file_name).read_bytes()
    model = load_mesonet(data)
    assert isinstance(model, MesoInception4 if "Inception" in file_name else Meso4)
    with open_keras_weights(data) as handle:
        root = weight_root(handle)
        first_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][0]
        keras_first = "conv2d_1" if "Inception" in file_name else min(
            (n for n in root.keys() if n.startswith("conv2d_")), key=lambda n: int(n.split("_")[1]))
        kernel = np.asarray(root[keras_first][f"{keras_first}/kernel:0"])
        np.testing.assert_array_equal(first_conv.weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))
        dense = sorted((n for n in root.keys() if n.startswith("dense_")), key=lambda n: int(n.split("_")[1]))
        np.testing.assert_array_equal(model.head.dense1.weight.detach().numpy(),
                                      np.asarray(root[dense[0]][f"{dense[0]}/kernel:0"]).T)
        np.testing.assert_array_equal(model.head.dense2.bias.detach().numpy(),
                                      np.asarray(root[dense[1]][f"{dense[1]}/bias:0"]))
        bn_last = sorted((n for n in root.keys() if n.startswith("batch_normalization_")),
                         key=lambda n: int(n.split("_")[-1]))[-1]
        np.testing.assert_array_equal(model.blocks[-1].bn.running_var.numpy(),
                                      np.asarray(root[bn_last][f"{bn_last}/moving_variance:0"]))
        assert model.blocks[-1].bn.eps == pytest.approx(1e-3)
        # Every Keras tensor was used: as many values in the file as parameters + BN buffers.
        keras_values = sum(int(np.prod(d.shape)) for d in _datasets(root))
        torch_values = sum(int(t.numel()) for name, t in model.state_dict().items() if "num_batches" not in name)
        assert keras_values == torch_values


def _datasets(group: h5py.Group) -> list[h5py.Dataset]:
    found = []
    group.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("file_name", DF_WEIGHTS)
def test_scores_fakes_above_reals(file_name):
    detector = MesoNetDetector(str(WEIGHTS / file_name))
    real, fake = detector.score_crops(samples("real")), detector.score_crops(samples("df"))
    assert detector.version.startswith(file_name[:-3] + "@") and len(detector.version.split("@")[1]) == 8
    assert ((0 <= real) & (real <= 1)).all() and ((0 <= fake) & (fake <= 1)).all()
    assert fake.min() > real.max(), (real, fake)


def test_flatten_order_matters():
    """The NHWC permute before Dense is load-bearing: flattening NCHW breaks the separation."""
    detector = MesoNetDetector(str(WEIGHTS / "Meso4_DF.h5"))
    real, fake = samples("real"), samples("df")
    correct_gap = detector.score_crops(fake).min() - detector.score_crops(real).max()

    def nchw_head(x):
        head = detector.model.head
        x = torch.nn.functional.leaky_relu(head.dense1(x.flatten(1)), 0.1)
        return torch.sigmoid(head.dense2(x)).squeeze(1)

    detector.model.head.forward = nchw_head
    wrong = detector.score_crops(real + fake)
    assert correct_gap > 0.5
    assert not (wrong[2:].min() - wrong[:2].max() > 0.5)


def test_context_crops_from_detected_faces(onnx_analyzer):
    """The crawl path: detect + align the samples (padded: they are tight face crops), then
    score the 224 context crops through the contract's ``score``."""
    import cv2

    detector = MesoNetDetector(str(WEIGHTS / "Meso4_DF.h5"))

    def contexts(kind):
        out = []
        for path in sorted((SAMPLES / kind).iterdir()):
            image = np.asarray(Image.open(path).convert("RGB"))
            pad = image.shape[0] // 2
            padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
            best = max(onnx_analyzer.pack.detect(padded), key=lambda d: d.score)
            out.append(align_face(padded, best.landmarks)[1])
        return out

    real, fake = detector.score(contexts("real")), detector.score(contexts("df"))
    assert real.dtype == np.float32 and real.shape == (2,)
    assert fake.min() > real.max(), (real, fake)
