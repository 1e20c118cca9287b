"""Built-in MobileNetV1 as the paper modified it, emitted as a real ONNX model (opset 13).

The paper (Section II-B) starts from Keras' MobileNet, replaces ReLU6 by ReLU, and adapts it to
10 classes with a head of Reshape -> Conv2D(10 classes) -> Flatten -> Dense. Trained weights cannot
be downloaded here, so weights are deterministic and seeded (He-normal convolutions followed by
BatchNormalization, which the importer folds); users with trained weights pass their own ``.onnx``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinysplit.errors import ConfigError

OPSET = 13
IR_VERSION = 8  # esp-ppq and older onnxruntime builds read IR 8 / opset 13

#: (pointwise filters, depthwise stride) of the 13 depthwise-separable blocks (Keras MobileNet).
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
IMAGENET_CLASSES = 1000


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow "same" padding (before, after) for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Builder:
    """Accumulates nodes and seeded initializers for one model."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv_bn_relu(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        pads: tuple[int, int, int, int],
        group: int = 1,
    ) -> str:
        fan_in = cin // group * kernel * kernel
        w = self.rng.standard_normal((cout, cin // group, kernel, kernel)) * math.sqrt(2.0 / fan_in)
        conv = self.node(
            "Conv",
            [x, self.const(f"{name}/kernel", w.astype(np.float32))],
            name,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=list(pads),
            group=group,
        )
        bn = [
            self.const(f"{name}_bn/gamma", self.rng.uniform(0.8, 1.2, cout).astype(np.float32)),
            self.const(f"{name}_bn/beta", self.rng.normal(0.0, 0.1, cout).astype(np.float32)),
            self.const(f"{name}_bn/mean", self.rng.normal(0.0, 0.1, cout).astype(np.float32)),
            self.const(f"{name}_bn/var", self.rng.uniform(0.8, 1.2, cout).astype(np.float32)),
        ]
        y = self.node("BatchNormalization", [conv, *bn], f"{name}_bn", epsilon=1e-3)
        return self.node("Relu", [y], f"{name}_relu")

    def linear_conv(self, x: str, name: str, cin: int, cout: int) -> str:
        w = self.rng.standard_normal((cout, cin, 1, 1)) * math.sqrt(1.0 / cin)
        b = self.rng.normal(0.0, 0.01, cout)
        return self.node(
            "Conv",
            [
                x,
                self.const(f"{name}/kernel", w.astype(np.float32)),
                self.const(f"{name}/bias", b.astype(np.float32)),
            ],
            name,
            kernel_shape=[1, 1],
        )

    def reshape(self, x: str, name: str, shape: list[int]) -> str:
        return self.node(
            "Reshape", [x, self.const(f"{name}/shape", np.array(shape, np.int64))], name
        )


def mobilenet_v1(
    *,
    alpha: float = 1.0,
    input_size: int = 224,
    classes: int = 10,
    seed: int = 0,
    imagenet_top: bool = False,
    explicit_pads: bool = False,
) -> onnx.ModelProto:
    """Build MobileNetV1 with the paper's modifications as an ONNX model.

    Args:
        alpha: width multiplier (Keras' ``alpha``), > 0.
        input_size: height and width of the RGB input, >= 32.
        classes: output classes of the paper's head, >= 2.
        seed: seed for the deterministic weights.
        imagenet_top: keep Keras' ImageNet top (Conv2D with 1000 filters and a Reshape) before the
            paper's head, as the ``paper`` preset does.
        explicit_pads: emit Keras' ZeroPadding2D before each stride-2 depthwise convolution as a
            separate Pad node (as converted Keras models have) instead of conv padding.

    Returns:
        A checked ONNX model, opset 13, NCHW input ``input`` of shape (1, 3, size, size) and
        softmax output ``probabilities`` of shape (1, classes).
    """
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}")
    if input_size < 32:
        raise ConfigError(f"input_size must be >= 32, got {input_size}")
    if classes < 2:
        raise ConfigError(f"classes must be >= 2, got {classes}")
    b = _Builder(seed)
    size, channels = input_size, int(32 * alpha)
    top, bottom = _same_pads(size, 3, 2)
    x = b.conv_bn_relu("input", "conv1", 3, channels, 3, 2, (top, top, bottom, bottom))
    size = math.ceil(size / 2)
    for i, (filters, stride) in enumerate(BLOCKS, start=1):
        if stride == 1:
            pads = (1, 1, 1, 1)
        elif explicit_pads:
            x = b.node(
                "Pad",
                [x, b.const(f"conv_pad_{i}/pads", np.array([0, 0, 0, 0, 0, 0, 1, 1]))],
                f"conv_pad_{i}",
                mode="constant",
            )
            pads = (0, 0, 0, 0)  # the Pad node pads bottom/right by 1: same sizes as "same"
        else:
            top, bottom = _same_pads(size, 3, 2)
            pads = (top, top, bottom, bottom)
        x = b.conv_bn_relu(x, f"conv_dw_{i}", channels, channels, 3, stride, pads, group=channels)
        size = math.ceil(size / stride)
        cout = int(filters * alpha)
        x = b.conv_bn_relu(x, f"conv_pw_{i}", channels, cout, 1, 1, (0, 0, 0, 0))
        channels = cout
    x = b.node("GlobalAveragePool", [x], "global_average_pooling2d")
    x = b.reshape(x, "reshape_1", [1, channels, 1, 1])
    if imagenet_top:
        x = b.linear_conv(x, "conv_preds", channels, IMAGENET_CLASSES)
        x = b.reshape(x, "reshape_2", [1, IMAGENET_CLASSES])
        x = b.reshape(x, "reshape_3", [1, IMAGENET_CLASSES, 1, 1])
        channels = IMAGENET_CLASSES
    x = b.linear_conv(x, "conv_classes", channels, classes)
    x = b.node("Flatten", [x], "flatten", axis=1)
    dense_w = b.rng.standard_normal((classes, classes)) * math.sqrt(1.0 / classes)
    x = b.node(
        "Gemm",
        [
            x,
            b.const("dense/kernel", dense_w.astype(np.float32)),
            b.const("dense/bias", np.zeros(classes, np.float32)),
        ],
        "dense",
        transB=1,
    )
    b.node("Softmax", [x], "probabilities", axis=-1)
    graph = helper.make_graph(
        b.nodes,
        f"mobilenet_v1_{alpha:g}_{input_size}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, input_size, input_size])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, classes])],
        b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tinysplit"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
