"""The MobileFaceNet recogniser converted from ONNX to torch: same embedding as onnxruntime on
real faces, a spatial feature map for the SBI head, unknown ops refused."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from tests.support.shared_data import FACES_ALIGNED, MODELS
from vipwatch.training.onnx_backbone import FEATURE_OUTPUT, load_onnx_convnet, recogniser_input

MOBILEFACENET = MODELS / "mobilefacenet_128.onnx"


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    paths = sorted(FACES_ALIGNED.glob("*/*.png"))[::150][:4]
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def test_embedding_matches_onnxruntime(faces):
    session = ort.InferenceSession(str(MOBILEFACENET), providers=["CPUExecutionProvider"])
    inputs = recogniser_input(faces)
    reference = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0]
    with torch.no_grad():
        converted = load_onnx_convnet(str(MOBILEFACENET)).eval()(inputs).numpy()
    assert converted.shape == reference.shape == (len(faces), 128)
    assert np.abs(converted - reference).max() < 1e-3 * np.abs(reference).max()
    cosine = (converted * reference).sum(1) / np.linalg.norm(converted, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.99999
    # and it still tells identities apart: the two faces of different people are far apart
    normed = converted / np.linalg.norm(converted, axis=1, keepdims=True)
    assert (normed @ normed.T)[np.triu_indices(len(faces), 1)].max() < 0.5


def test_feature_map_is_spatial_and_trainable(faces):
    features = load_onnx_convnet(str(MOBILEFACENET), FEATURE_OUTPUT)
    out = features(recogniser_input(np.zeros((2, 128, 128, 3), np.uint8)))
    assert out.shape == (2, 512, 8, 8)
    out.mean().backward()
    assert all(p.grad is not None for p in features.parameters())


def test_unsupported_op_is_refused(tmp_path):
    node = helper.make_node("Sigmoid", ["input"], ["out"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4, 4])])
    path = tmp_path / "sigmoid.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ValueError, match="Sigmoid"):
        load_onnx_convnet(str(path))
