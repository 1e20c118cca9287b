"""ONNX import: BN folding, no-op removal, constants, shapes and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from tests.model.onnx_graphs import make_model
from tinysplit.errors import ModelError
from tinysplit.model import build_onnx, import_model, load_model, load_onnx
from tinysplit.model.slicing import slice_onnx


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def test_batchnorm_is_folded_and_preserves_the_function() -> None:
    spec = "mobilenet_v1:alpha=0.25,input_size=32"
    original = build_onnx(spec)
    graph = load_model(spec)
    assert sum(n.op_type == "BatchNormalization" for n in original.graph.node) == 27
    assert all(layer.op != "BatchNormalization" for layer in graph.layers)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    folded = slice_onnx(graph, 0, len(graph) - 1)
    np.testing.assert_allclose(_ort(folded, x), _ort(original, x), rtol=1e-5, atol=1e-6)


def test_slices_run_in_sequence_equal_the_whole_model() -> None:
    graph = load_model("mobilenet_v1:alpha=0.25,input_size=32")
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    whole = _ort(slice_onnx(graph, 0, len(graph) - 1), x)
    value = x
    for first, last in [(0, 9), (10, 40), (41, len(graph) - 1)]:
        value = _ort(slice_onnx(graph, first, last), value)
    np.testing.assert_allclose(value, whole, rtol=1e-6)


def test_noops_constants_and_symbolic_batch() -> None:
    nodes = [
        helper.make_node("Identity", ["x"], ["x_id"], name="id"),
        helper.make_node(
            "Constant",
            [],
            ["shape"],
            name="const",
            value=onnx.numpy_helper.from_array(np.array([1, 12], np.int64)),
        ),
        helper.make_node("Reshape", ["x_id", "shape"], ["flat"], name="reshape"),
        helper.make_node("Dropout", ["flat"], ["drop"], name="drop"),
        helper.make_node("Relu", ["drop"], ["y"], name="relu"),
    ]
    graph = import_model(make_model(nodes, {}, ["N", 3, 2, 2], "y"), name="noops")
    assert [layer.op for layer in graph.layers] == ["Reshape", "Relu"]
    assert graph.layers[0].inputs == ("x",)
    assert graph.layers[1].inputs == ("flat",)
    assert graph.input_shape == (1, 3, 2, 2)
    assert graph.layers[0].params["shape"].tolist() == [1, 12]


def test_unsupported_op_names_op_and_node() -> None:
    nodes = [helper.make_node("Sigmoid", ["x"], ["y"], name="gate")]
    with pytest.raises(ModelError, match="unsupported op 'Sigmoid' in node 'gate'"):
        import_model(make_model(nodes, {}, [1, 4], "y"), name="bad")


def test_batchnorm_without_conv_is_rejected() -> None:
    stats = {k: np.ones(3, np.float32) for k in ("g", "b", "m", "v")}
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn")]
    with pytest.raises(ModelError, match="BatchNormalization node 'bn'"):
        import_model(make_model(nodes, stats, [1, 3, 4, 4], "y"), name="bad")


def test_symbolic_spatial_dimension_is_rejected() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    with pytest.raises(ModelError, match="symbolic dimension 2"):
        import_model(make_model(nodes, {}, [1, 3, "H", 4], "y"), name="bad")


def test_files_missing_corrupt_and_valid(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not a protobuf\xff" * 10)
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_onnx(corrupt)
    good = tmp_path / "small.onnx"
    onnx.save(build_onnx("mobilenet_v1:alpha=0.25,input_size=32"), good)
    graph = load_model(str(good))
    assert len(graph) == 60
    assert graph.name == str(good)
    assert len(graph.source_hash) == 64
