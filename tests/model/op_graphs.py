"""Small ONNX graphs covering the ops MobileNet lacks, for the executor and quantization tests."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from tests.model.onnx_graphs import make_model, residual_block
from tinysplit.model import build_onnx

#: Small MobileNet used throughout the model tests.
SMALL_MOBILENET = "mobilenet_v1:alpha=0.25,input_size=32"


def _const(inits: dict[str, np.ndarray], name: str, value: np.ndarray) -> str:
    inits[name] = np.asarray(value, dtype=np.float32)
    return name


def conv_pool_graph(seed: int = 0) -> onnx.ModelProto:
    """Standard, depthwise (multiplier 2), grouped dilated and 1x1 strided convs; pools; pads.

    Also a fused Relu, a fused Clip(0, 6), a Concat with a constant input, and Pad in constant
    (with a crop), reflect and edge modes.
    """
    rng = np.random.default_rng(seed)
    inits: dict[str, np.ndarray] = {}

    def w(name: str, *shape: int, scale: float = 0.4) -> str:
        return _const(inits, name, rng.standard_normal(shape) * scale)

    inits["pads_reflect"] = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    inits["pads_edge"] = np.array([0, 0, 0, 1, 0, 0, 2, 0], np.int64)
    inits["pads_const"] = np.array([0, 0, 1, -1, 0, 0, 0, 1], np.int64)
    _const(inits, "pad_value", np.array(0.75))
    _const(inits, "zero", np.array(0.0))
    _const(inits, "six", np.array(6.0))
    _const(inits, "extra", rng.uniform(-2.0, 2.0, (1, 2, 3, 3)))
    nodes = [
        helper.make_node(
            "Conv",
            ["x", w("w1", 8, 4, 3, 3), w("b1", 8)],
            ["c1"],
            name="conv",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node(
            "Conv",
            ["r1", w("wd", 16, 1, 3, 3), w("bd", 16)],
            ["d1"],
            name="dw",
            group=8,
            strides=[2, 2],
            pads=[1, 1, 0, 0],
        ),
        helper.make_node("Clip", ["d1", "zero", "six"], ["k1"], name="relu6"),
        helper.make_node(
            "Conv",
            ["k1", w("wg", 8, 4, 3, 3)],
            ["g1"],
            name="grouped",
            group=4,
            dilations=[2, 2],
            pads=[2, 2, 2, 2],
        ),
        helper.make_node(
            "MaxPool",
            ["g1"],
            ["mp"],
            name="maxpool",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node(
            "AveragePool",
            ["g1"],
            ["ap"],
            name="avgpool_nopad",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node(
            "AveragePool",
            ["g1"],
            ["ap2"],
            name="avgpool_pad",
            kernel_shape=[2, 2],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        ),
        helper.make_node("Concat", ["mp", "ap", "ap2", "extra"], ["cc"], name="concat", axis=1),
        helper.make_node("Pad", ["cc", "pads_reflect"], ["p1"], name="pad_reflect", mode="reflect"),
        helper.make_node("Pad", ["p1", "pads_edge"], ["p2"], name="pad_edge", mode="edge"),
        helper.make_node("Pad", ["p2", "pads_const", "pad_value"], ["p3"], name="pad_const"),
        helper.make_node(
            "Conv",
            ["p3", w("w2", 6, 26, 1, 1, scale=0.2)],
            ["c2"],
            name="pointwise_s2",
            kernel_shape=[1, 1],
            strides=[2, 2],
        ),
        helper.make_node("GlobalAveragePool", ["c2"], ["y"], name="gap"),
    ]
    return make_model(nodes, inits, [1, 4, 10, 10], "y", [1, 6, 1, 1])


def elementwise_graph(seed: int = 0) -> onnx.ModelProto:
    """Mul/Add with constants, a residual Add, Clip, Relu, Transpose, MatMul, Reshape, Gemm
    (transA, transB, alpha, beta), a MatMul of two activations, Flatten and Softmax."""
    rng = np.random.default_rng(seed)
    inits: dict[str, np.ndarray] = {}

    def c(name: str, *shape: int, scale: float = 0.5) -> str:
        return _const(inits, name, rng.standard_normal(shape) * scale)

    _const(inits, "lo", np.array(-1.0))
    _const(inits, "hi", np.array(2.0))
    inits["shape"] = np.array([0, -1], np.int64)
    nodes = [
        helper.make_node(
            "Conv",
            ["x", c("w", 4, 3, 3, 3), c("b", 4)],
            ["c"],
            name="conv",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Mul", ["c", c("k", 1, 4, 1, 1, scale=2.0)], ["m"], name="mul_const"),
        helper.make_node("Add", ["m", c("o", 4, 1, 1)], ["a"], name="add_const"),
        helper.make_node("Clip", ["a", "lo", "hi"], ["cl"], name="clip"),
        helper.make_node("Relu", ["cl"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "c"], ["s"], name="residual_add"),
        helper.make_node("Mul", ["s", "r"], ["sq"], name="mul_act"),
        helper.make_node("Transpose", ["sq"], ["t"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["t", c("wm", 4, 5)], ["mm"], name="matmul_const"),
        helper.make_node("Reshape", ["mm", "shape"], ["f"], name="reshape"),
        helper.make_node(
            "Gemm",
            ["f", c("wg", 7, 180, scale=0.1), c("cg", 7)],
            ["g"],
            name="gemm",
            transB=1,
            alpha=0.5,
            beta=2.0,
        ),
        helper.make_node("Transpose", ["g"], ["gt"], name="transpose"),
        helper.make_node("Gemm", ["gt", c("wh", 7, 3)], ["h"], name="gemm_trans_a", transA=1),
        helper.make_node("Transpose", ["h"], ["ht"], name="transpose_h"),
        helper.make_node("MatMul", ["ht", "h"], ["outer"], name="matmul_act"),
        helper.make_node("Flatten", ["outer"], ["fl"], name="flatten", axis=0),
        helper.make_node("Softmax", ["fl"], ["y"], name="softmax", axis=-1),
    ]
    return make_model(nodes, inits, [1, 3, 6, 6], "y", [1, 9])


MODEL_NAMES = ("conv_pool", "elementwise", "residual", "mobilenet", "paper_32")


@functools.cache
def build_model(name: str) -> onnx.ModelProto:
    """One of :data:`MODEL_NAMES`, built once per session (treat as read-only)."""
    builders = {
        "conv_pool": conv_pool_graph,
        "elementwise": elementwise_graph,
        "residual": residual_block,
        "mobilenet": lambda: build_onnx(SMALL_MOBILENET),
        "paper_32": lambda: build_onnx("paper:input_size=32"),
    }
    return builders[name]()


def run_ort(
    model: onnx.ModelProto, x: np.ndarray, outputs: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Run a model with onnxruntime (CPU, no graph optimisation); extra ``outputs`` by name."""
    if outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        known = {o.name for o in model.graph.output}
        for name in outputs:
            if name not in known:
                model.graph.output.append(helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: x.astype(np.float32)})
    return dict(zip(names, values, strict=True))
