"""Executors: a float64 reference, the ESP-DL int16 integer reference, and SQNR.

Both executors run a contiguous range of layers ``first..last`` (0-based, inclusive). The input is
the one tensor crossing into ``first`` (``graph.boundary_tensor(first - 1)``), the output the one
crossing out of ``last``, so running the slices of a partition in sequence is the same as running
the whole model; for the int16 executor the result is bit-identical.

The int16 executor mirrors ESP-DL's integer kernels for the ESP32-S3: int16 x int16 products are
accumulated exactly (float64 BLAS while every partial sum is an exact integer, int64 otherwise),
the 40-bit bias is added in the accumulator domain, and the sum is requantized with
``shift = out_exp - w_exp - in_exp``, rounding half up, then saturated to int16. Element-wise ops
requantize exactly to their output exponent with one half-up rounding; average pools divide the
exact integer sum with one half-up rounding; Softmax runs in float64 on dequantized values.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError, ModelError
from tinysplit.model import kernels
from tinysplit.model.graph import Graph, Layer
from tinysplit.model.kernels import Array
from tinysplit.model.quantize import (
    INT16_MAX,
    INT16_MIN,
    QuantizedModel,
    dequantize,
    quantize,
    requantize,
    saturate,
)
from tinysplit.model.slicing import check_range

Env = dict[str, Array]
Step = Callable[[Layer, Env], Array]


def _run(graph: Graph, x: Array, first: int, last: int | None, collect: bool, step: Step) -> Any:
    """Run ``step`` over layers first..last, freeing each tensor after its last reader."""
    last = len(graph.layers) - 1 if last is None else last
    check_range(graph, first, last)
    src, dst = graph.boundary_tensor(first - 1), graph.boundary_tensor(last)
    if tuple(x.shape) != graph.shapes[src]:
        raise ConfigError(
            f"input {src!r} of layers {first + 1}-{last + 1} must have shape "
            f"{graph.shapes[src]}, got {tuple(x.shape)}"
        )
    layers = graph.layers[first : last + 1]
    last_use = {name: layer.index for layer in layers for name in layer.inputs}
    env: Env = {src: x}
    for layer in layers:
        try:
            env[layer.output] = step(layer, env)
        except (ModelError, ValueError) as exc:
            raise ModelError(f"{layer.op} node {layer.name!r}: {exc}") from exc
        if not collect:
            for name in layer.inputs:
                if last_use[name] == layer.index and name != dst:
                    env.pop(name, None)
    return env if collect else env[dst]


# --- float64 reference -------------------------------------------------------------------------


def _float_step(layer: Layer, env: Env) -> Array:
    a = [
        env[n] if n in env else _param64(layer.params[n]) if n in layer.params else None
        for n in layer.node_inputs
    ]
    x, attrs = a[0], layer.attrs
    assert x is not None
    moved = kernels.move_values(layer, x, float)
    if moved is not None:
        return moved
    match layer.op:
        case "Conv":
            w = a[1]
            assert w is not None
            b = a[2] if len(a) > 2 else None
            win = kernels.window(attrs, w.shape[2:])
            return kernels.conv(x, w, b, win, int(attrs.get("group", 1)))
        case "Relu":
            return np.maximum(x, 0.0)
        case "Clip":
            return np.clip(x, *kernels.clip_bounds(layer))
        case "Add" | "Mul":
            y = a[1]
            assert y is not None
            return x + y if layer.op == "Add" else x * y
        case "Concat":
            return kernels.concat([v for v in a if v is not None], int(attrs["axis"]))
        case "AveragePool":
            win = kernels.window(attrs)
            return kernels.avg_pool(x, win, bool(attrs.get("count_include_pad", 0)))
        case "GlobalAveragePool":
            return kernels.global_avg_pool(x)
        case "Gemm" | "MatMul":
            y = a[1]
            assert y is not None
            if layer.op == "MatMul":
                return kernels.matmul(x, y)
            return kernels.gemm(
                x,
                y,
                a[2] if len(a) > 2 else None,
                trans_a=bool(attrs.get("transA", 0)),
                trans_b=bool(attrs.get("transB", 0)),
                alpha=float(attrs.get("alpha", 1.0)),
                beta=float(attrs.get("beta", 1.0)),
            )
        case "Softmax":
            return kernels.softmax(x, int(attrs.get("axis", -1)))
    raise ModelError(f"op {layer.op!r} is not supported by the executors")


def _param64(value: Array) -> Array:
    return value.astype(np.float64) if np.issubdtype(value.dtype, np.floating) else value


@overload
def run_float(
    graph: Graph,
    x: npt.ArrayLike,
    *,
    first: int = 0,
    last: int | None = None,
    collect: Literal[False] = False,
) -> npt.NDArray[np.float64]: ...
@overload
def run_float(
    graph: Graph,
    x: npt.ArrayLike,
    *,
    first: int = 0,
    last: int | None = None,
    collect: Literal[True],
) -> dict[str, npt.NDArray[np.float64]]: ...
def run_float(
    graph: Graph,
    x: npt.ArrayLike,
    *,
    first: int = 0,
    last: int | None = None,
    collect: bool = False,
) -> Any:
    """Run layers ``first..last`` of the float model in float64 (ONNX semantics).

    Args:
        graph: the model.
        x: value of the tensor crossing into ``first`` (the model input for ``first=0``), any
            real dtype, with that tensor's ONNX shape.
        first: first layer to run (0-based).
        last: last layer to run (0-based, inclusive); the last layer of the model when None.
        collect: return every tensor computed (input included) by name instead of the output.

    Raises:
        ConfigError: a range outside the model or not starting/ending at a cut point, or an
            input of the wrong shape.
        ModelError: an op or attribute the executor does not support (names op and node).
    """
    return _run(graph, np.asarray(x, dtype=np.float64), first, last, collect, _float_step)


# --- int16 integer reference -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ConvPlan:
    """A Conv prepared once per quantized model.

    With ``exact`` the weights and ``bias + 2**(shift-1)`` are float64 pre-scaled by 2**-shift
    (exact: powers of two), so floor(conv) is the requantized output; otherwise int64 operands and
    an explicit :func:`requantize`.
    """

    w: Array
    b: Array | None
    win: kernels.Window
    group: int
    shift: int
    exact: bool


_CONV_PLANS: weakref.WeakKeyDictionary[QuantizedModel, dict[int, _ConvPlan]] = (
    weakref.WeakKeyDictionary()
)


def _conv_plan(qm: QuantizedModel, layer: Layer) -> _ConvPlan:
    plans = _CONV_PLANS.setdefault(qm, {})
    if layer.index not in plans:
        plans[layer.index] = _make_conv_plan(qm, layer)
    return plans[layer.index]


def _make_conv_plan(qm: QuantizedModel, layer: Layer) -> _ConvPlan:
    x_name, w_name = layer.node_inputs[:2]
    b_name = layer.node_inputs[2] if len(layer.node_inputs) > 2 else ""
    if w_name not in qm.weights or (b_name and b_name not in qm.weights):
        raise ModelError("weights and bias must be constant initializers")
    w, w_exp = qm.weights[w_name]
    in_exp = qm.exponents[x_name]
    shift = qm.exponents[layer.output] - w_exp - in_exp
    bias = qm.weights[b_name][0] if b_name else None
    if b_name and qm.weights[b_name][1] != in_exp + w_exp:
        raise ModelError(f"bias {b_name!r} is not at the accumulator exponent {in_exp + w_exp}")
    half = 1 << (shift - 1) if shift > 0 else 0
    bias_max = (int(np.abs(bias).max()) if bias is not None and bias.size else 0) + half
    win, group = kernels.window(layer.attrs, w.shape[2:]), int(layer.attrs.get("group", 1))
    if not kernels.exact_in_float64(math.prod(w.shape[1:]), bias_max):
        return _ConvPlan(w.astype(np.int64), bias, win, group, shift, exact=False)
    b = None
    if bias is not None or half:
        acc_bias = (np.zeros(w.shape[0], np.int64) if bias is None else bias) + half
        b = np.ldexp(acc_bias.astype(np.float64), -shift)
    return _ConvPlan(np.ldexp(w.astype(np.float64), -shift), b, win, group, shift, exact=True)


def _operand(qm: QuantizedModel, env: Env, name: str) -> tuple[Array, int]:
    if name in env:
        return env[name], qm.exponents[name]
    if name in qm.weights:
        return qm.weights[name]
    raise ModelError(f"input {name!r} is neither an activation nor a quantized constant")


def _rescale(q: Array, exp: int, out_exp: int) -> Array:
    """Requantize int values from ``exp`` to ``out_exp`` (one half-up rounding)."""
    return q if exp == out_exp else requantize(q.astype(np.int64), out_exp - exp)


def _divide(total: Array, count: Array | int, exp: int, out_exp: int) -> Array:
    """round_half_up(total / count) moved from ``exp`` to ``out_exp``, exactly, saturated."""
    num = np.left_shift(total, max(exp - out_exp, 0))
    den = np.left_shift(np.asarray(count, np.int64), max(out_exp - exp, 0))
    return saturate(np.floor_divide(2 * num + den, 2 * den))


def _int_conv(qm: QuantizedModel, layer: Layer, env: Env) -> Array:
    plan = _conv_plan(qm, layer)
    y = kernels.conv(env[layer.node_inputs[0]], plan.w, plan.b, plan.win, plan.group)
    if not plan.exact:
        return requantize(y, plan.shift)
    np.floor(y, out=y)
    np.clip(y, INT16_MIN, INT16_MAX, out=y)
    return y.astype(np.int16)


def _int_product(qm: QuantizedModel, layer: Layer, env: Env) -> Array:
    """Gemm / MatMul: exact integer products, bias in the accumulator, one requantization."""
    names, attrs = layer.node_inputs, layer.attrs
    (a, ea), (b, eb) = _operand(qm, env, names[0]), _operand(qm, env, names[1])
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    c, terms = None, a.shape[-1]
    if layer.op == "Gemm":
        terms = a.shape[0] if trans_a else a.shape[1]
        alpha_folded = names[0] in qm.weights or names[1] in qm.weights
        if float(attrs.get("alpha", 1.0)) != 1.0 and not alpha_folded:
            raise ModelError("alpha != 1 needs a constant A or B")
        if len(names) > 2 and names[2]:
            if names[2] not in qm.weights or qm.weights[names[2]][1] != ea + eb:
                raise ModelError("C must be a constant quantized at the accumulator exponent")
            c = qm.weights[names[2]][0]
    shift = qm.exponents[layer.output] - ea - eb
    half = 1 << (shift - 1) if shift > 0 else 0
    c_max = int(np.abs(c).max()) if c is not None and c.size else 0
    dtype = kernels.accumulator_dtype(terms, c_max + half)
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    if layer.op == "MatMul":
        return requantize(kernels.matmul(a, b), shift)
    cd = None if c is None else c.astype(dtype)
    return requantize(kernels.gemm(a, b, cd, trans_a=trans_a, trans_b=trans_b), shift)


def _int_step(qm: QuantizedModel, layer: Layer, env: Env) -> Array:
    if layer.op == "Conv":
        return _int_conv(qm, layer, env)
    if layer.op in {"Gemm", "MatMul"}:
        return _int_product(qm, layer, env)
    ops = [_operand(qm, env, n) for n in layer.node_inputs if n in env or n in qm.weights]
    (x, ei), eo, attrs = ops[0], qm.exponents[layer.output], layer.attrs
    moved = kernels.move_values(layer, x, lambda v: float(quantize(v, ei)))
    if moved is not None:
        return _rescale(moved, ei, eo)
    match layer.op:
        case "Relu":
            return _rescale(np.maximum(x, 0), ei, eo)
        case "Clip":
            lo, hi = kernels.clip_bounds(layer)
            return np.clip(_rescale(x, ei, eo), quantize(lo, eo), quantize(hi, eo))
        case "Add":
            (y, ey), base = ops[1], min(ei, ops[1][1])
            if max(ei, ey) - base > 46:
                raise ModelError(f"input exponents {ei} and {ey} are too far apart")
            acc = np.left_shift(x.astype(np.int64), ei - base)
            return requantize(acc + np.left_shift(y.astype(np.int64), ey - base), eo - base)
        case "Mul":
            (y, ey) = ops[1]
            return requantize(x.astype(np.int64) * y, eo - ei - ey)
        case "Concat":
            parts = [_rescale(v, e, eo) for v, e in ops]
            return kernels.concat(parts, int(attrs["axis"]))
        case "AveragePool":
            win = kernels.window(attrs)
            count = kernels.pool_count(
                x.shape[2], x.shape[3], win, bool(attrs.get("count_include_pad", 0))
            )
            return _divide(kernels.pool_sum(x, win, np.int64), count, ei, eo)
        case "GlobalAveragePool":
            axes = tuple(range(2, x.ndim))
            total = x.sum(axis=axes, keepdims=True, dtype=np.int64)
            return _divide(total, math.prod(x.shape[2:]), ei, eo)
        case "Softmax":
            return quantize(kernels.softmax(dequantize(x, ei), int(attrs.get("axis", -1))), eo)
    raise ModelError(f"op {layer.op!r} is not supported by the executors")


@overload
def run_int16(
    qmodel: QuantizedModel,
    q: npt.NDArray[np.int16],
    *,
    first: int = 0,
    last: int | None = None,
    collect: Literal[False] = False,
) -> npt.NDArray[np.int16]: ...
@overload
def run_int16(
    qmodel: QuantizedModel,
    q: npt.NDArray[np.int16],
    *,
    first: int = 0,
    last: int | None = None,
    collect: Literal[True],
) -> dict[str, npt.NDArray[np.int16]]: ...
def run_int16(
    qmodel: QuantizedModel,
    q: npt.NDArray[np.int16],
    *,
    first: int = 0,
    last: int | None = None,
    collect: bool = False,
) -> Any:
    """Run layers ``first..last`` of the quantized model with ESP-DL's int16 integer arithmetic.

    Args:
        qmodel: the quantized model.
        q: int16 value of the tensor crossing into ``first``, at that tensor's exponent
            ``qmodel.exponents[graph.boundary_tensor(first - 1)]``, in ONNX (NCHW) shape.
        first: first layer to run (0-based).
        last: last layer to run (0-based, inclusive); the last layer of the model when None.
        collect: return every int16 tensor computed (input included) by name.

    Returns:
        The int16 output at ``qmodel.exponents[graph.boundary_tensor(last)]`` (or the dict).

    Raises:
        ConfigError: a bad range, or an input that is not int16 of the right shape.
        ModelError: an op or attribute the executor does not support (names op and node).
    """
    q = np.asarray(q)
    if q.dtype != np.int16:
        raise ConfigError(f"run_int16 needs an int16 input, got {q.dtype}")
    return _run(
        qmodel.graph, q, first, last, collect, lambda layer, env: _int_step(qmodel, layer, env)
    )


# --- accuracy ----------------------------------------------------------------------------------


def sqnr_db(reference: npt.ArrayLike, test: npt.ArrayLike) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum(ref^2) / sum((ref - test)^2))`` in dB.

    Returns ``inf`` when the two are equal, ``-inf`` for a zero reference with any noise.
    """
    ref, tst = np.asarray(reference, np.float64), np.asarray(test, np.float64)
    if ref.shape != tst.shape:
        raise ConfigError(f"cannot compare shapes {ref.shape} and {tst.shape}")
    signal, noise = float(np.sum(ref * ref)), float(np.sum((ref - tst) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def layer_sqnr(qmodel: QuantizedModel, x: npt.ArrayLike) -> list[tuple[str, float]]:
    """SQNR (dB) of every layer's dequantized int16 output against the float output.

    The int16 run starts from the quantized float input ``x`` (model input shape) and
    accumulates error through the model, as a board would; one ``(layer name, dB)`` entry per
    layer, in order. A Conv/Gemm fused with the Relu after it is stored at the Relu's exponent,
    so its negative values saturate and its own SQNR is low by design; the Relu's entry is the
    one that counts.
    """
    graph = qmodel.graph
    ref: Mapping[str, Array] = run_float(graph, x, collect=True)
    q = quantize(np.asarray(x, np.float64), qmodel.exponents[graph.input_name])
    out = run_int16(qmodel, q, collect=True)
    return [
        (
            layer.name,
            sqnr_db(
                ref[layer.output], dequantize(out[layer.output], qmodel.exponents[layer.output])
            ),
        )
        for layer in graph.layers
    ]
