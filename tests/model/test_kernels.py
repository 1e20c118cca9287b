"""Float kernels against onnxruntime, and exact integer arithmetic in float64 BLAS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from tests.model.onnx_graphs import make_model
from tests.model.op_graphs import MODEL_NAMES, build_model, run_ort
from tinysplit.errors import ModelError
from tinysplit.model import import_model, kernels
from tinysplit.model.execute import run_float
from tinysplit.model.quantize import sample_inputs


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_float_executor_matches_onnxruntime_on_every_tensor(name: str) -> None:
    model = build_model(name)
    graph = import_model(model, name=name)
    x = sample_inputs(graph, 1, seed=3)
    ours = run_float(graph, x, collect=True)
    theirs = run_ort(model, x, [layer.output for layer in graph.layers])
    for layer in graph.layers:
        ref = theirs[layer.output]
        scale = float(np.abs(ref).max()) or 1.0
        np.testing.assert_allclose(
            ours[layer.output], ref, rtol=1e-4, atol=1e-5 * scale, err_msg=layer.name
        )


def _int16_extremes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """int16 values, mostly at the extremes -32768 / 32767 where the bound is tightest."""
    values = rng.choice(np.array([-32768, 32767, -32767, 1, 0], np.int64), size=shape)
    return np.where(rng.random(shape) < 0.8, values, rng.integers(-32768, 32768, shape))


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "dilation", "group"),
    [
        (5, 7, 3, 1, 1, 1),
        (5, 7, 3, 2, 2, 1),
        (6, 6, 3, 2, 1, 6),  # depthwise
        (4, 8, 3, 1, 1, 4),  # depthwise, multiplier 2
        (6, 4, 3, 1, 2, 2),  # grouped
        (9, 5, 1, 1, 1, 1),  # pointwise
        (9, 5, 1, 2, 1, 1),  # pointwise, strided
    ],
)
def test_conv_in_float64_is_bit_exact_for_int16_extremes(
    cin: int, cout: int, kernel: int, stride: int, dilation: int, group: int
) -> None:
    rng = np.random.default_rng(cin * cout + kernel)
    x = _int16_extremes(rng, (1, cin, 9, 8))
    w = _int16_extremes(rng, (cout, cin // group, kernel, kernel))
    b = rng.integers(-(2**39), 2**39, cout)
    win = kernels.Window((kernel, kernel), (stride, stride), (dilation, dilation), (1, 2, 0, 1))
    assert kernels.exact_in_float64(cin // group * kernel * kernel, 2**39)
    as_float = kernels.conv(
        x.astype(np.int16), w.astype(np.float64), b.astype(np.float64), win, group
    )
    as_int = kernels.conv(x, w, b, win, group)
    assert as_int.dtype == np.int64
    assert np.array_equal(as_float.astype(np.int64), as_int)
    # One output value recomputed with Python integers (no numpy arithmetic at all).
    co, oy, ox = cout - 1, 1, 2
    g = co // (cout // group)
    cg = cin // group
    total = int(b[co])
    for ci in range(cg):
        for i in range(kernel):
            for j in range(kernel):
                y, xx = oy * stride + i * dilation - 1, ox * stride + j * dilation - 2
                if 0 <= y < 9 and 0 <= xx < 8:
                    total += int(x[0, g * cg + ci, y, xx]) * int(w[co, ci, i, j])
    assert int(as_int[0, co, oy, ox]) == total


def test_gemm_and_matmul_in_float64_are_bit_exact() -> None:
    rng = np.random.default_rng(1)
    a, b = _int16_extremes(rng, (3, 4096)), _int16_extremes(rng, (5, 4096))
    c = rng.integers(-(2**39), 2**39, 5)
    as_float = kernels.gemm(
        a.astype(np.float64), b.astype(np.float64), c.astype(np.float64), trans_b=True
    )
    assert np.array_equal(as_float.astype(np.int64), kernels.gemm(a, b, c, trans_b=True))
    worst = np.full((1, 4096), -32768, np.int64)
    exact = 4096 * 2**30
    assert kernels.matmul(worst.astype(np.float64), worst.T.astype(np.float64))[0, 0] == exact
    assert kernels.matmul(worst, worst.T)[0, 0] == exact


def test_float64_bound_and_int64_fallback() -> None:
    assert kernels.exact_in_float64(2**22, 2**39)
    assert not kernels.exact_in_float64(2**23, 0)
    assert not kernels.exact_in_float64(1, 2**53)
    assert kernels.accumulator_dtype(1024, 2**39) == np.float64
    # Past the bound float64 really is wrong: an odd number of odd products sums to an odd
    # number above 2**53, which float64 cannot hold.
    terms = 2**23 + 2**10 + 1
    assert kernels.accumulator_dtype(terms) == np.int64
    v = np.full((1, terms), 32767, np.int16)
    exact = terms * 32767 * 32767
    assert exact > 2**53 and exact % 2 == 1
    as_float = kernels.matmul(v.astype(np.float64), v.T.astype(np.float64))[0, 0]
    assert int(as_float) != exact
    dtype = kernels.accumulator_dtype(terms)
    assert int(kernels.matmul(v.astype(dtype), v.T.astype(dtype))[0, 0]) == exact


def test_pad_modes_and_negative_pads() -> None:
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    assert kernels.pad(x, [0, 0, 1, -1, 0, 0, 0, 2], "constant", 9.0).shape == (1, 1, 4, 5)
    cropped = kernels.pad(x, [0, 0, 0, -1, 0, 0, 0, 0])
    assert np.array_equal(cropped, x[..., 1:])
    assert np.array_equal(kernels.pad(x, [0, 0, 0, 1, 0, 0, 0, 0], "edge")[..., 0], x[..., 0])
    assert np.array_equal(kernels.pad(x, [0, 0, 0, 1, 0, 0, 0, 0], "reflect")[..., 0], x[..., 1])
    assert kernels.full_pads([1, 2], [-1], 4) == [0, 0, 0, 1, 0, 0, 0, 2]
    with pytest.raises(ModelError, match="wrap"):
        kernels.pad(x, [0] * 8, "wrap")
    with pytest.raises(ModelError, match="rank-4"):
        kernels.pad(x, [0, 0])


def test_reshape_flatten_and_softmax_semantics() -> None:
    x = np.zeros((1, 2, 3, 4))
    assert kernels.reshape(x, [0, -1]).shape == (1, 24)
    assert kernels.reshape(np.zeros((0, 3)), [0, 3], allowzero=True).shape == (0, 3)
    assert kernels.flatten(x, 0).shape == (1, 24)
    assert kernels.flatten(x, -1).shape == (6, 4)
    assert kernels.transpose(x).shape == (4, 3, 2, 1)
    with pytest.raises(ModelError, match="cannot reshape"):
        kernels.reshape(x, [5, -1])
    p = kernels.softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    assert np.allclose(p, [[0.5, 0.5, 0.0]])


def test_auto_pad_is_rejected_with_the_node_name() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="odd_conv", auto_pad="SAME_UPPER")
    model = make_model([node], {"w": np.ones((2, 2, 3, 3), np.float32)}, [1, 2, 6, 6], "y")
    graph = import_model(model, name="odd")
    with pytest.raises(ModelError, match=r"Conv node 'odd_conv'.*auto_pad"):
        run_float(graph, np.zeros(graph.input_shape, np.float32))


def test_1d_convolution_is_rejected() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1d")
    model = make_model([node], {"w": np.ones((2, 2, 3), np.float32)}, [1, 2, 6], "y")
    graph = import_model(model, name="odd")
    with pytest.raises(ModelError, match=r"Conv node 'conv1d'.*2-D"):
        run_float(graph, np.zeros(graph.input_shape, np.float32))


def test_ceil_mode_pooling_is_rejected() -> None:
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], ceil_mode=1)
    graph = import_model(make_model([node], {}, [1, 1, 5, 5], "y"), name="ceil")
    with pytest.raises(ModelError, match=r"MaxPool node 'pool'.*ceil_mode"):
        run_float(graph, np.zeros((1, 1, 5, 5)))


def test_window_output_size() -> None:
    win = kernels.Window((3, 3), (2, 2), (1, 1), (1, 1, 1, 1))
    assert win.output_size(224, 224) == (112, 112)
    assert win.extent == (3, 3)
    assert kernels.Window((3, 3), dilations=(2, 3)).extent == (5, 7)
    with pytest.raises(ModelError, match="does not fit"):
        kernels.Window((5, 5)).output_size(3, 3)
    assert math.prod(kernels.pool_count(4, 4, win, False).shape) == 4
