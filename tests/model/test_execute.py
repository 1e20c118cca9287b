"""The int16 reference executor: bit-exact slices, integer semantics, accuracy and errors."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.model.op_graphs import MODEL_NAMES, build_model
from tinysplit.errors import ConfigError, ModelError
from tinysplit.model import Graph, Layer, import_model, kernels
from tinysplit.model.execute import layer_sqnr, run_float, run_int16, sqnr_db
from tinysplit.model.quantize import (
    QuantizedModel,
    calibrate,
    dequantize,
    quantize,
    sample_inputs,
)


@functools.cache
def quantized(name: str) -> QuantizedModel:
    """The test model ``name`` calibrated on 8 sample images (seed 0)."""
    graph = import_model(build_model(name), name=name)
    return calibrate(graph, sample_inputs(graph, 8, seed=0))


def _input(qmodel: QuantizedModel, seed: int, saturating: bool = False) -> np.ndarray:
    """A quantized test image (held out: seed >= 1), or uniformly random int16 values."""
    graph = qmodel.graph
    if saturating:
        rng = np.random.default_rng(seed)
        return rng.integers(-32768, 32768, graph.input_shape).astype(np.int16)
    x = sample_inputs(graph, 1, seed=seed)
    return quantize(x, qmodel.exponents[graph.input_name])


@st.composite
def slicings(draw: st.DrawFn) -> tuple[str, list[int], int, bool]:
    name = draw(st.sampled_from(MODEL_NAMES))
    cut_points = quantized(name).graph.cut_points
    cuts = draw(st.sets(st.sampled_from(cut_points), max_size=6))
    return name, sorted(cuts), draw(st.integers(1, 50)), draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(slicings())
def test_slices_in_sequence_are_bit_identical_to_the_whole_model(
    case: tuple[str, list[int], int, bool],
) -> None:
    name, cuts, seed, saturating = case
    qmodel = quantized(name)
    q = _input(qmodel, seed, saturating)
    whole = run_int16(qmodel, q)
    value = q
    for first, last in zip([-1, *cuts], [*cuts, len(qmodel.graph) - 1], strict=True):
        value = run_int16(qmodel, value, first=first + 1, last=last)
    assert value.dtype == np.int16
    assert np.array_equal(value, whole)


def test_every_tensor_has_its_shape_and_int16_dtype() -> None:
    for name in MODEL_NAMES:
        qmodel = quantized(name)
        values = run_int16(qmodel, _input(qmodel, 1), collect=True)
        assert set(values) == set(qmodel.graph.shapes)
        for tensor, value in values.items():
            assert value.dtype == np.int16
            assert value.shape == qmodel.graph.shapes[tensor]


def _ref_conv(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: Layer, shift: int
) -> np.ndarray:
    """Integer Conv, one output value at a time, rounded and saturated with Python integers."""
    win, group = kernels.window(layer.attrs, w.shape[2:]), int(layer.attrs.get("group", 1))
    top, left, bottom, right = win.pads
    c, h, wd = x.shape[1:]
    xp = np.zeros((c, h + top + bottom, wd + left + right), np.int64)
    xp[:, top : top + h, left : left + wd] = x[0]
    (sh, sw), (dh, dw), (kh, kw) = win.strides, win.dilations, win.kernel
    oh, ow = win.output_size(h, wd)
    cout, cg = w.shape[0], w.shape[1]
    out = np.zeros((1, cout, oh, ow), np.int64)
    for o in range(cout):
        g = o // (cout // group)
        for i in range(oh):
            for j in range(ow):
                patch = xp[
                    g * cg : (g + 1) * cg,
                    i * sh : i * sh + (kh - 1) * dh + 1 : dh,
                    j * sw : j * sw + (kw - 1) * dw + 1 : dw,
                ]
                acc = int((patch * w[o].astype(np.int64)).sum()) + (0 if b is None else int(b[o]))
                rounded = (acc + (1 << (shift - 1))) >> shift if shift > 0 else acc << -shift
                out[0, o, i, j] = min(max(rounded, -32768), 32767)
    return out


@pytest.mark.parametrize("name", ["conv_pool", "elementwise", "residual"])
def test_convolutions_match_a_plain_integer_reference(name: str) -> None:
    qmodel = quantized(name)
    values = run_int16(qmodel, _input(qmodel, 2), collect=True)
    for layer in qmodel.graph.layers:
        if layer.op != "Conv":
            continue
        x_name, w_name = layer.node_inputs[:2]
        w, w_exp = qmodel.weights[w_name]
        b = qmodel.weights[layer.node_inputs[2]][0] if len(layer.node_inputs) > 2 else None
        shift = qmodel.exponents[layer.output] - w_exp - qmodel.exponents[x_name]
        expected = _ref_conv(values[x_name], w, b, layer, shift)
        assert np.array_equal(values[layer.output], expected), layer.name


def _requant(value: Fraction, exponent: int) -> int:
    """round_half_up(value / 2**exponent), saturated to int16, in exact rational arithmetic."""
    return min(max(math.floor(value / Fraction(2) ** exponent + Fraction(1, 2)), -32768), 32767)


def test_elementwise_ops_round_once_to_the_output_exponent() -> None:
    qmodel = quantized("elementwise")
    exps = qmodel.exponents
    v = run_int16(qmodel, _input(qmodel, 3), collect=True)
    k, k_exp = qmodel.weights["k"]
    kb = np.broadcast_to(k, v["c"].shape)
    checks = {  # output tensor -> exact real value of each element, as a function of its index
        "s": lambda i: (
            Fraction(int(v["r"].flat[i])) * Fraction(2) ** exps["r"]
            + Fraction(int(v["c"].flat[i])) * Fraction(2) ** exps["c"]
        ),
        "m": lambda i: (
            Fraction(int(v["c"].flat[i]) * int(kb.flat[i])) * Fraction(2) ** (exps["c"] + k_exp)
        ),
        "sq": lambda i: (
            Fraction(int(v["s"].flat[i]) * int(v["r"].flat[i]))
            * Fraction(2) ** (exps["s"] + exps["r"])
        ),
    }
    for out, real in checks.items():
        expected = [_requant(real(i), exps[out]) for i in range(v[out].size)]
        assert v[out].ravel().tolist() == expected, out


def test_pools_divide_the_exact_sum_with_one_rounding() -> None:
    qmodel = quantized("conv_pool")
    exps, graph = qmodel.exponents, qmodel.graph
    v = run_int16(qmodel, _input(qmodel, 4), collect=True)
    g = v["g1"].astype(np.int64)
    for name in ("avgpool_nopad", "avgpool_pad"):
        layer = graph.layer(name)
        win = kernels.window(layer.attrs)
        include = bool(layer.attrs.get("count_include_pad", 0))
        sums = kernels.pool_sum(g, win, np.int64)
        counts = np.broadcast_to(kernels.pool_count(5, 5, win, include), sums.shape)
        expected = [
            _requant(Fraction(int(s), int(n)) * Fraction(2) ** exps["g1"], exps[layer.output])
            for s, n in zip(sums.flat, counts.flat, strict=True)
        ]
        assert v[layer.output].ravel().tolist() == expected, name
    c2 = v["c2"].astype(np.int64)
    expected = [
        _requant(Fraction(int(s), 12) * Fraction(2) ** exps["c2"], exps["y"])
        for s in c2.sum(axis=(2, 3)).flat
    ]
    assert v["y"].ravel().tolist() == expected


def test_int64_fallback_gives_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = {name: _input(quantized(name), 5) for name in MODEL_NAMES}
    fast = {name: run_int16(quantized(name), q, collect=True) for name, q in inputs.items()}
    monkeypatch.setattr(kernels, "exact_in_float64", lambda terms, bias_max=0: False)
    for name, q in inputs.items():
        qm = quantized(name)
        fresh = QuantizedModel(graph=qm.graph, exponents=qm.exponents, weights=qm.weights)
        slow = run_int16(fresh, q, collect=True)
        for tensor, value in fast[name].items():
            assert np.array_equal(slow[tensor], value), (name, tensor)


def test_sqnr_of_a_small_mobilenet() -> None:
    qmodel = quantized("mobilenet")
    graph = qmodel.graph
    for seed in (11, 12, 13):  # held-out images: calibration used seed 0
        x = sample_inputs(graph, 1, seed=seed)
        q = quantize(x, qmodel.exponents[graph.input_name])
        out = dequantize(run_int16(qmodel, q), qmodel.exponents[graph.output_name])
        assert sqnr_db(run_float(graph, x), out) > 60.0
    per_layer = layer_sqnr(qmodel, sample_inputs(graph, 1, seed=11))
    assert [name for name, _ in per_layer] == [layer.name for layer in graph.layers]
    relus = [
        db for (_, db), layer in zip(per_layer, graph.layers, strict=True) if layer.op == "Relu"
    ]
    assert min(relus) > 55.0


def test_sqnr_definition() -> None:
    ref = np.array([3.0, 4.0])
    assert sqnr_db(ref, ref) == math.inf
    assert sqnr_db(ref, ref + np.array([0.0, 0.05])) == pytest.approx(10 * math.log10(25 / 0.0025))
    assert sqnr_db(np.zeros(2), ref) == -math.inf
    with pytest.raises(ConfigError):
        sqnr_db(ref, np.zeros(3))


def test_bad_ranges_and_inputs_are_config_errors() -> None:
    qmodel = quantized("residual")
    graph = qmodel.graph
    q = _input(qmodel, 1)
    n = len(graph)
    for first, last in [(-1, 2), (0, n), (3, 2)]:
        with pytest.raises(ConfigError, match="outside model"):
            run_int16(qmodel, q, first=first, last=last)
    with pytest.raises(ConfigError, match="cannot be cut after layer 3"):
        run_int16(qmodel, q, last=2)  # the skip tensor is still live
    with pytest.raises(ConfigError, match="cannot be cut after layer 3"):
        run_float(graph, np.zeros((1, 4, 8, 8)), first=3)
    assert run_float(graph, np.zeros((1, 4, 8, 8)), first=1).shape == (1, 4, 1, 1)
    with pytest.raises(
        ConfigError, match=r"input 'c0' of layers 2-8 must have shape \(1, 4, 8, 8\)"
    ):
        run_int16(qmodel, q[:, :2], first=1)
    with pytest.raises(ConfigError, match="int16"):
        run_int16(qmodel, q.astype(np.int32))


def test_unsupported_ops_name_the_node() -> None:
    layer = Layer(
        index=0, name="squash", op="Sigmoid", node_inputs=("x",), output="y", shape=(1, 4)
    )
    graph = Graph(
        name="odd",
        input_name="x",
        input_shape=(1, 4),
        layers=(layer,),
        output_name="y",
        source_hash="",
    )
    with pytest.raises(ModelError, match=r"Sigmoid node 'squash'.*not supported"):
        run_float(graph, np.zeros((1, 4)))
    qmodel = QuantizedModel(graph=graph, exponents={"x": -10, "y": -10}, weights={})
    with pytest.raises(ModelError, match=r"Sigmoid node 'squash'.*not supported"):
        run_int16(qmodel, np.zeros((1, 4), np.int16))
    with pytest.raises(ModelError, match="lacks exponents"):
        QuantizedModel(graph=graph, exponents={"x": -10}, weights={})
