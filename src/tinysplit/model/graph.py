"""Graph IR: a model as a topologically ordered list of single-output layers.

Every layer is one ONNX node after import (BatchNormalization already folded into its Conv,
Dropout/Identity removed). Tensors are named as in ONNX. Shapes are kept in ONNX order (NCHW,
batch 1) for execution and reported in NHWC, the order the boards store and send them in.

Layer numbers shown to users are 1-based (``layer 1`` is ``graph.layers[0]``), like the paper's
Table I; everything in code is 0-based.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ModelError

INT16_BYTES = 2

#: Ops whose floating-point initializer inputs are trained parameters (stored on the board).
WEIGHT_OPS = frozenset({"Conv", "Gemm", "MatMul", "Add", "Mul", "Concat"})
#: ONNX input slot holding the bias of ops that have one (Conv: X, W, B; Gemm: A, B, C).
BIAS_SLOT = {"Conv": 2, "Gemm": 2}


def nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return an ONNX channels-first shape in the channels-last order the boards use."""
    if len(shape) >= 3:
        return (shape[0], *shape[2:], shape[1])
    return shape


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """One single-output node of the graph.

    Attributes:
        index: 0-based position in topological order.
        name: node name (unique within the graph).
        op: ONNX op type, e.g. ``"Conv"``, ``"Relu"``.
        node_inputs: ONNX input names in slot order; activations and parameters alike, ``""`` for
            an omitted optional input.
        output: name of the tensor this layer produces.
        shape: output shape in ONNX order (batch 1).
        attrs: ONNX attributes as plain Python values.
        params: constant inputs of this layer by name (float weights, int64 shapes, pads, ...).
        macs: multiply-accumulate operations per inference (0 for ops without products).
    """

    index: int
    name: str
    op: str
    node_inputs: tuple[str, ...]
    output: str
    shape: tuple[int, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    macs: int = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the activation tensors this layer reads (parameters excluded)."""
        return tuple(n for n in self.node_inputs if n and n not in self.params)

    @property
    def nhwc_shape(self) -> tuple[int, ...]:
        """Output shape in NHWC order, as stored on the board."""
        return nhwc(self.shape)

    @property
    def output_elements(self) -> int:
        """Number of values in the output tensor."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def output_bytes(self) -> int:
        """Size of the output tensor in bytes when stored as int16."""
        return INT16_BYTES * self.output_elements

    def _trained(self) -> list[tuple[int, npt.NDArray[Any]]]:
        if self.op not in WEIGHT_OPS:
            return []
        return [
            (slot, self.params[n])
            for slot, n in enumerate(self.node_inputs)
            if n in self.params and np.issubdtype(self.params[n].dtype, np.floating)
        ]

    @property
    def bias_count(self) -> int:
        """Number of bias values (kept in the accumulator domain by ESP-DL)."""
        return sum(a.size for slot, a in self._trained() if BIAS_SLOT.get(self.op) == slot)

    @property
    def param_count(self) -> int:
        """Number of trained parameters (weights and biases)."""
        return sum(a.size for _, a in self._trained())

    @property
    def weight_count(self) -> int:
        """Number of trained parameters that are not biases."""
        return self.param_count - self.bias_count

    @property
    def param_bytes(self) -> int:
        """Parameter size in bytes with every value stored as int16."""
        return INT16_BYTES * self.param_count


@dataclass(frozen=True, kw_only=True)  # no slots: derived tables are cached on the instance
class Graph:
    """A whole model: one input, one output, layers in topological order.

    Attributes:
        name: model name (built-in name or file stem).
        input_name: name of the graph input tensor.
        input_shape: input shape in ONNX order (batch 1).
        layers: the layers, topologically ordered.
        output_name: name of the graph output tensor (the last layer's output).
        source_hash: sha256 of the serialized ONNX model this graph was imported from.
    """

    name: str
    input_name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    output_name: str
    source_hash: str

    def __post_init__(self) -> None:
        if not self.layers:
            raise ModelError(f"model {self.name!r} has no layers")
        if self.layers[-1].output != self.output_name:
            raise ModelError(
                f"model {self.name!r}: the graph output {self.output_name!r} must be produced by "
                "the last layer"
            )

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def input_bytes(self) -> int:
        """Size of the model input in bytes when stored as int16."""
        return INT16_BYTES * int(np.prod(self.input_shape, dtype=np.int64))

    @property
    def param_count(self) -> int:
        """Trained parameters of the whole model."""
        return sum(layer.param_count for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        """Parameter bytes of the whole model with every value stored as int16."""
        return sum(layer.param_bytes for layer in self.layers)

    @property
    def macs(self) -> int:
        """Multiply-accumulate operations per inference."""
        return sum(layer.macs for layer in self.layers)

    @cached_property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """ONNX-order shape of every activation tensor (graph input included)."""
        out = {self.input_name: self.input_shape}
        out.update((layer.output, layer.shape) for layer in self.layers)
        return out

    @cached_property
    def _last_use(self) -> dict[str, int]:
        """Index of the last layer reading each tensor (len(layers) for the graph output)."""
        last = {self.input_name: -1}
        for layer in self.layers:
            last.setdefault(layer.output, layer.index)
            for name in layer.inputs:
                last[name] = layer.index
        last[self.output_name] = len(self.layers)
        return last

    @cached_property
    def boundaries(self) -> tuple[tuple[str, ...], ...]:
        """``boundaries[i]``: tensors live between layer ``i`` and layer ``i+1`` (0-based).

        A tensor is live across the boundary when it is produced at or before layer ``i`` (or is
        the graph input) and read after it. Computed in one sweep over the layers.
        """
        starts: dict[int, list[str]] = {}
        for tensor, producer in (
            (self.input_name, -1),
            *((x.output, x.index) for x in self.layers),
        ):
            starts.setdefault(producer, []).append(tensor)
        active: dict[str, int] = {}  # tensor -> last use, insertion order = production order
        live: list[tuple[str, ...]] = []
        for i in range(-1, len(self.layers)):
            for tensor in starts.get(i, ()):
                if self._last_use[tensor] > i:
                    active[tensor] = self._last_use[tensor]
            for tensor in [t for t, last in active.items() if last <= i]:
                del active[tensor]
            if i >= 0:
                live.append(tuple(active))
        return tuple(live)

    @cached_property
    def cut_points(self) -> tuple[int, ...]:
        """0-based layer indices ``i`` after which the model can be cut.

        A cut after layer ``i`` is valid when exactly one tensor carries all state forward, so a
        residual block (whose skip tensor stays live) is never cut inside. The end of the model is
        not a cut point.
        """
        return tuple(i for i, live in enumerate(self.boundaries[:-1]) if len(live) == 1)

    def boundary_tensor(self, after: int) -> str:
        """Name of the one tensor crossing a cut after layer ``after`` (``-1``: the model input)."""
        if after == -1:
            return self.input_name
        if after == len(self.layers) - 1:
            return self.output_name
        live = self.boundaries[after]
        if len(live) != 1:
            raise ModelError(
                f"model {self.name!r} cannot be cut after layer {after + 1} "
                f"({self.layers[after].name}): {len(live)} tensors are live there"
            )
        return live[0]

    def boundary_bytes(self, after: int) -> int:
        """int16 bytes of the tensor crossing the cut after layer ``after`` (``-1``: input)."""
        shape = self.shapes[self.boundary_tensor(after)]
        return INT16_BYTES * int(np.prod(shape, dtype=np.int64))

    def layer(self, name: str) -> Layer:
        """Return the layer with this node name."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ModelError(f"model {self.name!r} has no layer named {name!r}")


def hash_bytes(data: bytes) -> str:
    """Return the sha256 hex digest used to identify model files."""
    return hashlib.sha256(data).hexdigest()
