"""Turn a contiguous layer range of the graph IR back into a standalone ONNX model.

The slice is built from the IR, so it carries the folded BatchNormalization and none of the
removed no-ops: exactly what a board runs. Its input is the tensor crossing into the first layer
and its output the tensor crossing out of the last.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper, numpy_helper

from tinysplit.errors import ConfigError
from tinysplit.model.graph import Graph
from tinysplit.model.mobilenet import IR_VERSION, OPSET


def check_range(graph: Graph, first: int, last: int) -> None:
    """Raise ConfigError unless ``first..last`` (0-based, inclusive) is a sliceable range."""
    n = len(graph.layers)
    if not 0 <= first <= last < n:
        raise ConfigError(
            f"layer range {first + 1}-{last + 1} is outside model {graph.name!r} (layers 1-{n})"
        )
    for end in (first - 1, last):
        if 0 <= end < n - 1 and end not in graph.cut_points:
            raise ConfigError(
                f"model {graph.name!r} cannot be cut after layer {end + 1} "
                f"({graph.layers[end].name}): more than one tensor is live there"
            )


def slice_onnx(graph: Graph, first: int, last: int) -> onnx.ModelProto:
    """Return layers ``first..last`` (0-based, inclusive) as a checked ONNX model (opset 13).

    Raises:
        ConfigError: the range is out of bounds or does not start/end at a valid cut point.
    """
    check_range(graph, first, last)
    src, dst = graph.boundary_tensor(first - 1), graph.boundary_tensor(last)
    layers = graph.layers[first : last + 1]
    nodes = [
        helper.make_node(
            layer.op, list(layer.node_inputs), [layer.output], name=layer.name, **layer.attrs
        )
        for layer in layers
    ]
    inits = {
        name: numpy_helper.from_array(value, name)
        for layer in layers
        for name, value in layer.params.items()
    }
    onnx_graph = helper.make_graph(
        nodes,
        f"{graph.name}_layers_{first + 1}-{last + 1}",
        [helper.make_tensor_value_info(src, TensorProto.FLOAT, list(graph.shapes[src]))],
        [helper.make_tensor_value_info(dst, TensorProto.FLOAT, list(graph.shapes[dst]))],
        list(inits.values()),
    )
    model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tinysplit"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
