"""Tiny hand-built ONNX graphs for tests (real models, built with onnx.helper)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(
    nodes: list[onnx.NodeProto],
    inits: dict[str, np.ndarray],
    input_shape: list[int | str],
    output: str,
    output_shape: list[int] | None = None,
    *,
    input_name: str = "x",
) -> onnx.ModelProto:
    """Wrap nodes and initializers into an opset-13 model with one float input and output."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def residual_block(channels: int = 4, size: int = 8, seed: int = 0) -> onnx.ModelProto:
    """conv -> relu -> [conv -> relu -> conv] + skip -> relu -> global pool: one residual Add."""
    rng = np.random.default_rng(seed)

    def w(name: str) -> str:
        inits[name] = (rng.standard_normal((channels, channels, 3, 3)) * 0.3).astype(np.float32)
        return name

    inits: dict[str, np.ndarray] = {}
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", w("w0")], ["c0"], name="stem", **conv),
        helper.make_node("Relu", ["c0"], ["r0"], name="stem_relu"),
        helper.make_node("Conv", ["r0", w("w1")], ["c1"], name="branch_conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="branch_relu"),
        helper.make_node("Conv", ["r1", w("w2")], ["c2"], name="branch_conv2", **conv),
        helper.make_node("Add", ["r0", "c2"], ["sum"], name="residual_add"),
        helper.make_node("Relu", ["sum"], ["r2"], name="out_relu"),
        helper.make_node("GlobalAveragePool", ["r2"], ["y"], name="pool"),
    ]
    return make_model(nodes, inits, [1, channels, size, size], "y", [1, channels, 1, 1])
