"""Graph IR: cut points, boundaries and sizes on real ONNX models."""

from __future__ import annotations

import pytest

from tests.model.onnx_graphs import residual_block
from tinysplit.errors import ModelError
from tinysplit.model import import_model, load_model


def test_residual_block_is_never_cut_inside() -> None:
    graph = import_model(residual_block(), name="res")
    names = [layer.name for layer in graph.layers]
    inside = range(names.index("stem_relu"), names.index("residual_add"))
    assert graph.cut_points == (0, 1, 5, 6)
    assert not set(inside[1:]) & set(graph.cut_points)
    # Between the branch convs the skip tensor r0 and the branch tensor are both live.
    assert graph.boundaries[names.index("branch_relu")] == ("r0", "r1")
    with pytest.raises(ModelError, match="cannot be cut after layer 3"):
        graph.boundary_tensor(2)


def test_chain_model_can_be_cut_after_every_layer() -> None:
    graph = load_model("mobilenet_v1:alpha=0.25,input_size=32")
    assert graph.cut_points == tuple(range(len(graph) - 1))
    assert graph.boundary_tensor(-1) == "input"
    assert graph.boundary_tensor(len(graph) - 1) == graph.output_name == "probabilities"


def test_sizes_are_int16_nhwc() -> None:
    graph = load_model("mobilenet_v1:alpha=0.25,input_size=32")
    stem = graph.layers[0]
    assert stem.shape == (1, 8, 16, 16)
    assert stem.nhwc_shape == (1, 16, 16, 8)
    assert stem.output_bytes == 2 * 8 * 16 * 16
    assert graph.boundary_bytes(0) == stem.output_bytes
    assert graph.input_bytes == 2 * 3 * 32 * 32
    # 3x3 kernel over 3 input channels for every output value.
    assert stem.macs == 8 * 16 * 16 * 3 * 3 * 3
    assert stem.param_count == 8 * 3 * 3 * 3 + 8  # kernel + bias from the folded BN
    assert stem.bias_count == 8
    assert stem.param_bytes == 2 * stem.param_count


def test_layer_lookup_by_name() -> None:
    graph = import_model(residual_block(), name="res")
    assert graph.layer("residual_add").op == "Add"
    with pytest.raises(ModelError, match="no layer named 'nope'"):
        graph.layer("nope")
