"""The face recogniser in ../shared (MobileFaceNet ONNX, BatchNorm folded into its convolutions)
rebuilt as a torch module with the same weights, so the SBI detector starts from features
learnt on faces.

Why not onnx2torch: it imports torchvision at import time, and the only torchvision wheels
reachable here are CUDA builds whose operators fail to register beside the CPU torch 2.13 pin
(``operator torchvision::nms does not exist``). This graph uses five ops (Conv, Clip, Relu,
Add, Reshape), so a plan interpreter of ~50 lines converts it exactly; anything else is refused.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

# The last feature map before MobileFaceNet's identity head (global depthwise 7x7 conv + 1x1 to
# 128-d): 512 channels at 1/16 of the input, still spatial, where blending traces live.
FEATURE_OUTPUT = "/conv2/conv2.2/Clip_output_0"
SUPPORTED = {"Conv", "Clip", "Relu", "Add", "Reshape", "Constant", "Shape", "Gather", "Unsqueeze", "Concat"}
_CONV, _RELU6, _RELU, _ADD = 0, 1, 2, 3


def _attributes(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxConvNet(nn.Module):
    """Runs a straight conv graph (with residual adds) as a fixed plan: step = (op, conv index,
    input slots, output slot). Input: (N, 3, H, W) float in the recogniser's (x-127.5)/128 range."""

    def __init__(self, convs: list[nn.Conv2d], plan: list[tuple[int, int, list[int], int]], slots: int,
                 flatten: bool):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.plan = plan
        self.slots = slots
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: list[Optional[torch.Tensor]] = [None] * self.slots
        values[0] = x
        out = x
        for op, conv, inputs, output in self.plan:
            first = values[inputs[0]]
            if op == _CONV:
                out = self.convs[conv](first)
            elif op == _RELU6:
                out = torch.clamp(first, 0.0, 6.0)
            elif op == _RELU:
                out = torch.relu(first)
            else:
                out = first + values[inputs[1]]
            values[output] = out
        return out.flatten(1) if self.flatten else out


def load_onnx_convnet(path: str, output: Optional[str] = None) -> OnnxConvNet:
    """The graph at ``path`` up to ``output`` (a value name; default: the model's own output,
    flattened to (N, D) as its Reshape does)."""
    model = onnx.load(path)
    graph = model.graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    constants = {}
    slot = {graph.input[0].name: 0}
    convs: list[nn.Conv2d] = []
    plan: list[tuple[int, int, list[int], int]] = []
    target = output or graph.output[0].name
    flatten = False
    for node in graph.node:
        if node.op_type not in SUPPORTED:
            raise ValueError(f"{path}: op {node.op_type} is not supported by this converter")
        attrs = _attributes(node)
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        if node.op_type in ("Shape", "Gather", "Unsqueeze", "Concat"):
            continue  # the dynamic batch-size arithmetic that feeds Reshape
        if node.op_type == "Reshape":
            slot[node.output[0]] = slot[node.input[0]]
            flatten = True
        else:
            out_slot = len(slot)
            if node.op_type == "Conv":
                weight = weights[node.input[1]]
                bias = weights[node.input[2]] if len(node.input) > 2 else None
                pads = attrs.get("pads", [0, 0, 0, 0])
                if pads[:2] != pads[2:]:
                    raise ValueError(f"{path}: asymmetric padding {pads} is not supported")
                conv = nn.Conv2d(weight.shape[1] * attrs.get("group", 1), weight.shape[0], tuple(weight.shape[2:]),
                                 stride=tuple(attrs.get("strides", [1, 1])), padding=tuple(pads[:2]),
                                 dilation=tuple(attrs.get("dilations", [1, 1])), groups=attrs.get("group", 1),
                                 bias=bias is not None)
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(weight.copy()))
                    if bias is not None:
                        conv.bias.copy_(torch.from_numpy(bias.copy()))
                plan.append((_CONV, len(convs), [slot[node.input[0]]], out_slot))
                convs.append(conv)
            elif node.op_type == "Clip":
                low, high = (float(constants[name]) for name in node.input[1:3])
                if (low, high) != (0.0, 6.0):
                    raise ValueError(f"{path}: Clip({low}, {high}) is not ReLU6")
                plan.append((_RELU6, -1, [slot[node.input[0]]], out_slot))
            elif node.op_type == "Relu":
                plan.append((_RELU, -1, [slot[node.input[0]]], out_slot))
            else:
                plan.append((_ADD, -1, [slot[node.input[0]], slot[node.input[1]]], out_slot))
            slot[node.output[0]] = out_slot
        if node.output[0] == target:
            return OnnxConvNet(convs, plan, len(slot), flatten and output is None)
    raise ValueError(f"{path}: no value named {target!r}")


def recogniser_input(faces_uint8_nhwc: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) RGB uint8 -> the recogniser's input scaling, (x - 127.5) / 128."""
    return (torch.from_numpy(np.ascontiguousarray(faces_uint8_nhwc)).permute(0, 3, 1, 2).float() - 127.5) / 128.0
