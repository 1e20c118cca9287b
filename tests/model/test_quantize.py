"""ESP-DL int16 quantization: exponents, rounding, saturation, biases and calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from tests.model.onnx_graphs import make_model
from tests.model.op_graphs import SMALL_MOBILENET, build_model
from tinysplit.errors import ConfigError, ModelError
from tinysplit.model import import_model, load_model
from tinysplit.model.execute import run_int16
from tinysplit.model.quantize import (
    BIAS_BITS,
    DEFAULT_EXPONENT,
    SAME_EXPONENT_OPS,
    calibrate,
    dequantize,
    exponent_for_range,
    quantize,
    quantize_bias,
    requantize,
    round_shift,
    sample_inputs,
)


def test_exponent_is_the_smallest_power_of_two_scale_that_fits() -> None:
    assert exponent_for_range(32767 * 2.0**-15) == -15
    assert exponent_for_range(math.nextafter(32767 * 2.0**-15, math.inf)) == -14
    assert exponent_for_range(1.0) == -14
    assert exponent_for_range(32767.0) == 0
    assert exponent_for_range(32768.0) == 1
    assert exponent_for_range(6.0) == -12
    assert exponent_for_range(0.0) == DEFAULT_EXPONENT
    with pytest.raises(ModelError):
        exponent_for_range(math.inf)


@given(st.floats(min_value=1e-30, max_value=1e30))
def test_exponent_rule_holds_for_any_range(value_range: float) -> None:
    e = exponent_for_range(value_range)
    assert value_range <= math.ldexp(32767, e)
    assert value_range > math.ldexp(32767, e - 1)


def test_rounding_is_half_up_including_negative_halves() -> None:
    halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert quantize(halves, 0).tolist() == [-2, -1, 0, 1, 2, 3]
    assert quantize(halves * 2.0**-3, -3).tolist() == [-2, -1, 0, 1, 2, 3]
    # The largest double below 1/2 must not round up (naive floor(x + 0.5) gives 1).
    assert quantize(math.nextafter(0.5, 0.0), 0) == 0
    assert quantize(np.float32(0.7), 0).dtype == np.int16


def test_quantization_saturates_to_int16() -> None:
    values = [1e9, -1e9, 32767.4, 32767.5, -32768.5, -32769.0, math.inf, -math.inf]
    expected = [32767, -32768, 32767, 32767, -32768, -32768, 32767, -32768]
    assert quantize(values, 0).tolist() == expected
    with pytest.raises(ModelError, match="NaN"):
        quantize([math.nan], 0)


def test_bias_keeps_40_bits_and_saturates() -> None:
    bound = 2 ** (BIAS_BITS - 1)
    q = quantize_bias([2.0**45, -(2.0**45), 12345.5, -12345.5, 2.0**38], 0)
    assert q.dtype == np.int64
    assert q.tolist() == [bound - 1, -bound, 12346, -12345, 2**38]


@given(
    st.integers(min_value=-40, max_value=20),
    st.floats(min_value=-32768.0, max_value=32767.0),
)
def test_quantize_dequantize_error_is_at_most_half_a_step(exponent: int, units: float) -> None:
    x = math.ldexp(units, exponent)  # inside the representable range at this exponent
    error = abs(float(dequantize(quantize(x, exponent), exponent)) - x)
    assert error <= math.ldexp(1.0, exponent - 1)


def test_round_shift_matches_int64_and_float64() -> None:
    assert round_shift(np.array([-5, -3, -1, 1, 3, 5]), 1).tolist() == [-2, -1, 0, 1, 2, 3]
    rng = np.random.default_rng(0)
    acc = np.concatenate([rng.integers(-(2**45), 2**45, 2000), np.arange(-64, 65)])
    for shift in (1, 2, 7, 20, 40):
        as_int = round_shift(acc, shift)
        assert np.array_equal(round_shift(acc.astype(np.float64), shift), as_int)
        expected = [math.floor((int(a) + 2 ** (shift - 1)) / 2**shift) for a in acc[-129:]]
        assert as_int[-129:].tolist() == expected
    assert round_shift(np.array([2**60]), 70).tolist() == [0]


def test_requantize_left_shifts_and_saturates() -> None:
    acc = np.array([1, -1, 3, 40000, 0])
    assert requantize(acc, -2).tolist() == [4, -4, 12, 32767, 0]
    assert requantize(acc, -40).tolist() == [32767, -32768, 32767, 32767, 0]
    assert requantize(acc.astype(np.float64), -40).tolist() == [32767, -32768, 32767, 32767, 0]
    assert requantize(np.array([65535, -65537]), 1).tolist() == [32767, -32768]


def test_sample_inputs_are_deterministic_images_in_range() -> None:
    graph = load_model(SMALL_MOBILENET)
    a, b = sample_inputs(graph, 3, seed=7), sample_inputs(graph, 3, seed=7)
    assert a.shape == (3, 3, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sample_inputs(graph, 3, seed=8))
    assert a.min() >= -1.0 and a.max() <= 1.0
    # 8-bit levels, smooth: neighbouring pixels are close on average.
    assert np.allclose(np.round((a + 1.0) * 127.5), (a + 1.0) * 127.5, atol=1e-4)
    assert np.abs(np.diff(a, axis=-1)).mean() < 0.2
    with pytest.raises(ConfigError):
        sample_inputs(graph, 0)


def test_calibration_gives_every_tensor_an_exponent_and_fuses_activations() -> None:
    graph = load_model(SMALL_MOBILENET)
    qmodel = calibrate(graph, sample_inputs(graph, 3))
    assert set(qmodel.exponents) == set(graph.shapes)
    for layer in graph.layers:
        if layer.op == "Relu":
            producer = next(x for x in graph.layers if x.output == layer.inputs[0])
            assert qmodel.exponents[producer.output] == qmodel.exponents[layer.output]
        if layer.op in SAME_EXPONENT_OPS:
            assert qmodel.exponents[layer.output] == qmodel.exponents[layer.inputs[0]]
        if layer.op == "Conv":
            w, w_exp = qmodel.weights[layer.node_inputs[1]]
            b, b_exp = qmodel.weights[layer.node_inputs[2]]
            assert w.dtype == np.int16 and b.dtype == np.int64
            assert np.abs(w).max() <= 32767
            assert b_exp == w_exp + qmodel.exponents[layer.inputs[0]]
    manifest = json.loads(json.dumps(qmodel.to_dict()))
    assert manifest["exponents"][graph.input_name] == -14  # images span [-1, 1]
    assert set(manifest["weight_exponents"]) == set(qmodel.weights)


def test_constants_of_add_mul_concat_get_their_own_exponent() -> None:
    graph = import_model(build_model("elementwise"), name="elementwise")
    qmodel = calibrate(graph, sample_inputs(graph, 2))
    k, k_exp = qmodel.weights["k"]
    assert k_exp == exponent_for_range(float(np.abs(graph.layer("mul_const").params["k"]).max()))
    assert k.dtype == np.int16
    # Gemm: alpha folded into B, beta into C (C at the accumulator exponent).
    wg = graph.layer("gemm").params["wg"].astype(np.float64)
    assert qmodel.weights["wg"][1] == exponent_for_range(0.5 * float(np.abs(wg).max()))
    assert qmodel.weights["cg"][1] == qmodel.exponents["f"] + qmodel.weights["wg"][1]
    concat = import_model(build_model("conv_pool"), name="conv_pool")
    assert "extra" in calibrate(concat, sample_inputs(concat, 1)).weights


def test_a_bias_beyond_40_bits_saturates_as_on_the_s3() -> None:
    # Tiny input and weights put the bias at exponent ~ -63: 1000.0 needs ~73 bits there.
    w = np.full((1, 1, 1, 1), 1e-6, np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")]
    model = make_model(nodes, {"w": w, "b": np.array([1000.0], np.float32)}, [1, 1, 2, 2], "y")
    graph = import_model(model, name="big_bias")
    x = np.full((1, 1, 2, 2), 1e-4, np.float32)  # one sample, which is also the test input
    qmodel = calibrate(graph, x)
    b, b_exp = qmodel.weights["b"]
    assert b.tolist() == [2**39 - 1]
    assert b_exp == qmodel.exponents["x"] + qmodel.weights["w"][1]
    q = quantize(x, qmodel.exponents["x"])
    acc = int(q[0, 0, 0, 0]) * int(qmodel.weights["w"][0][0, 0, 0, 0]) + 2**39 - 1
    shift = qmodel.exponents["y"] - b_exp  # > 53: the executor takes the int64 path
    assert shift > 53
    expected = min((acc + 2 ** (shift - 1)) >> shift, 32767)
    assert run_int16(qmodel, q).tolist() == [[[[expected] * 2] * 2]]


def test_calibration_rejects_bad_samples() -> None:
    graph = load_model(SMALL_MOBILENET)
    with pytest.raises(ConfigError, match="shape"):
        calibrate(graph, np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(ConfigError, match="at least one"):
        calibrate(graph, np.zeros((0, 3, 32, 32), np.float32))
    with pytest.raises(ConfigError, match="finite"):
        calibrate(graph, np.full((1, 3, 32, 32), np.inf, np.float32))
    huge = import_model(
        make_model([helper.make_node("Mul", ["x", "x"], ["y"], name="square")], {}, [1, 2], "y"),
        name="overflow",
    )
    with pytest.raises(ModelError, match="'y' of model 'overflow' is not finite"):
        calibrate(huge, np.full((1, 2), 1e200))
