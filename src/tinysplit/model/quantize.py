"""ESP-DL int16 quantization for the ESP32-S3 (esp-ppq target ``ESPDL_S3_INT16``).

The scheme is symmetric, per tensor, with power-of-two scales and no zero point:
``real = int * 2**exponent``.

* Exponent for a range R = max|x|: the smallest e with R <= 32767 * 2**e, i.e.
  ``ceil(log2(R / 32767))`` (esp-ppq rounds the scale up to a power of two). R == 0 gives
  :data:`DEFAULT_EXPONENT`.
* Weights (and the constants of Add, Mul and Concat) use their own min/max; activations are
  calibrated as max |x| over sample inputs run through the float executor.
* Quantization rounds half up, ``floor(x * 2**-e + 1/2)``, then saturates to int16.
* Biases live in the accumulator domain at exponent ``in_exp + w_exp``, saturated to 40 bits.
* A Conv/Gemm whose output only a Relu (or a Clip with min 0) reads gets that activation's
  exponent, as ESP-DL fuses the activation into the convolution. Reshape, Flatten, Transpose,
  MaxPool and Pad keep their input's exponent.
* Gemm's ``alpha`` is folded into its constant operand and ``beta`` into C before quantization.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError, ModelError
from tinysplit.model import kernels
from tinysplit.model.graph import BIAS_SLOT, WEIGHT_OPS, Graph, Layer

INT16_MIN, INT16_MAX = -32768, 32767
#: Bias width of esp-ppq's ESPDL_S3_INT16 platform (the S3's 40-bit QACC lanes).
BIAS_BITS = 40
#: Exponent of a tensor whose calibrated range is zero (any exponent represents it exactly).
DEFAULT_EXPONENT = -15
#: Ops whose output keeps the exponent of their (first) input: they only move or select values.
SAME_EXPONENT_OPS = frozenset({"Reshape", "Flatten", "Transpose", "MaxPool", "Pad"})
#: Ops ESP-DL fuses into a preceding Conv/Gemm (for Clip only when its minimum is 0).
FUSED_ACTIVATIONS = frozenset({"Relu", "Clip"})
SCHEME = "espdl-esp32s3-int16"


@dataclass(frozen=True, kw_only=True, eq=False)  # eq=False: identity hash (executor caches)
class QuantizedModel:
    """A graph with ESP-DL int16 exponents and quantized parameters.

    Attributes:
        graph: the float model.
        exponents: exponent of every activation tensor, graph input included.
        weights: parameter name -> (integer array, exponent) for the floating-point parameters of
            Conv, Gemm, MatMul, Add, Mul and Concat. Weights and constants are int16; biases are
            int64 holding 40-bit values at exponent ``in_exp + w_exp``.
    """

    graph: Graph
    exponents: Mapping[str, int]
    weights: Mapping[str, tuple[npt.NDArray[Any], int]]

    def __post_init__(self) -> None:
        missing = [name for name in self.graph.shapes if name not in self.exponents]
        if missing:
            raise ModelError(f"quantized model {self.graph.name!r} lacks exponents for {missing}")

    def to_dict(self) -> dict[str, Any]:
        """Manifest entry: the scheme and every exponent (no arrays)."""
        return {
            "model": self.graph.name,
            "source_hash": self.graph.source_hash,
            "scheme": SCHEME,
            "exponents": {name: int(e) for name, e in self.exponents.items()},
            "weight_exponents": {name: int(e) for name, (_, e) in self.weights.items()},
        }


def exponent_for_range(value_range: float) -> int:
    """Smallest exponent e with ``value_range <= 32767 * 2**e`` (DEFAULT_EXPONENT for 0).

    Raises:
        ModelError: the range is negative, infinite or NaN.
    """
    r = float(value_range)
    if not (math.isfinite(r) and r >= 0):
        raise ModelError(f"cannot quantize a tensor with range {r}")
    if r == 0:
        return DEFAULT_EXPONENT
    e = math.ceil(math.log2(r / INT16_MAX))
    while r > math.ldexp(INT16_MAX, e):  # correct log2's last-bit errors
        e += 1
    while r <= math.ldexp(INT16_MAX, e - 1):
        e -= 1
    return e


def _round_half_up(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """floor(y + 1/2) computed without the rounding error of adding 0.5 in floating point."""
    r = np.floor(y)
    r += (y - r) >= 0.5
    return r


def _quantize(x: npt.ArrayLike, exponent: int, lo: int, hi: int) -> npt.NDArray[np.float64]:
    y = np.ldexp(np.asarray(x, dtype=np.float64), -exponent)
    if np.isnan(y).any():
        raise ModelError("cannot quantize NaN values")
    # Clipping before rounding equals rounding then saturating: the bounds are integers.
    return _round_half_up(np.clip(y, lo, hi))


def quantize(x: npt.ArrayLike, exponent: int) -> npt.NDArray[np.int16]:
    """Float -> int16: round half up (``-2.5 -> -2``) at ``x * 2**-exponent``, then saturate."""
    return _quantize(x, exponent, INT16_MIN, INT16_MAX).astype(np.int16)


def quantize_bias(x: npt.ArrayLike, exponent: int) -> npt.NDArray[np.int64]:
    """Float -> 40-bit bias in an int64 array, rounded half up and saturated to 40 bits."""
    bound = 1 << (BIAS_BITS - 1)
    return _quantize(x, exponent, -bound, bound - 1).astype(np.int64)


def dequantize(q: npt.ArrayLike, exponent: int) -> npt.NDArray[np.float64]:
    """Integer -> float64: ``q * 2**exponent`` (exact)."""
    return np.ldexp(np.asarray(q, dtype=np.float64), exponent)


def round_shift(acc: npt.NDArray[Any], shift: int) -> npt.NDArray[Any]:
    """ESP-DL's ``shift_and_round``: ``(acc + 2**(shift-1)) >> shift`` (half up), or ``<< -shift``.

    Works on int64 arrays and on float64 arrays holding exact integers, and returns the same
    dtype. For float64, ``|acc| + 2**(shift-1)`` must stay below 2**53 (see
    :func:`tinysplit.model.kernels.exact_in_float64`). Left shifts are clamped to at most 16 bits
    on inputs clipped to +-2**16, which changes nothing after int16 saturation and never
    overflows.
    """
    out: npt.NDArray[Any]
    if shift <= 0:
        k = min(-shift, 16)
        clipped = np.clip(acc, -(1 << 16), 1 << 16)
        if np.issubdtype(acc.dtype, np.floating):
            out = np.ldexp(clipped, k)
        else:
            out = np.left_shift(clipped, k)
    elif np.issubdtype(acc.dtype, np.floating):
        out = np.floor(np.ldexp(acc + math.ldexp(1.0, shift - 1), -shift))
    else:
        s = min(shift, 62)  # |acc| < 2**61 rounds to 0 for every shift >= 62
        out = np.right_shift(acc + (1 << (s - 1)), s)
    return out


def saturate(x: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    """Clip integer values (any numeric dtype) to int16 and convert."""
    out: npt.NDArray[np.int16] = np.clip(x, INT16_MIN, INT16_MAX).astype(np.int16)
    return out


def requantize(acc: npt.NDArray[Any], shift: int) -> npt.NDArray[np.int16]:
    """:func:`round_shift` then :func:`saturate`: accumulator -> int16 output."""
    return saturate(round_shift(acc, shift))


def requantize_exponent(values: npt.ArrayLike, from_exp: int, to_exp: int) -> npt.NDArray[np.int16]:
    """int16 values at exponent ``from_exp`` -> int16 at ``to_exp``, as the firmware does.

    The receive-side conversion of a stage whose input exponent differs from the sender's output
    exponent, bit-exact with ``ts_requantize`` (``docs/protocol.md``): for ``to_exp > from_exp``
    a right shift by ``s = to_exp - from_exp`` rounding half up, ``(v + 2**(s-1)) >> s`` (every
    int16 value gives 0 once s >= 16); for ``to_exp < from_exp`` a left shift saturated to int16.

    Raises:
        ConfigError: an exponent outside int8 (-128..127) or a value outside int16.
    """
    for name, exp in (("from_exp", from_exp), ("to_exp", to_exp)):
        if not -128 <= exp <= 127:
            raise ConfigError(f"{name}={exp} is outside the int8 exponent range -128..127")
    v = np.asarray(values)
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise ConfigError(f"requantize takes int16 values, got dtype {v.dtype}")
    wide = v.astype(np.int64)
    if wide.size and (wide.min() < INT16_MIN or wide.max() > INT16_MAX):
        raise ConfigError("requantize takes int16 values; some are outside -32768..32767")
    return requantize(wide, to_exp - from_exp)


def sample_inputs(graph: Graph, n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """Deterministic calibration/test inputs of shape ``(n, *graph.input_shape[1:])``, float32.

    Image inputs (C, H, W) are smooth random images: bilinearly upsampled noise at 1/8 of the
    resolution plus a little fine noise, scaled per image to span [-1, 1] and snapped to the 256
    levels of an 8-bit photo preprocessed as ``x / 127.5 - 1``. Other inputs are uniform in
    [-1, 1].

    Raises:
        ConfigError: ``n < 1``.
    """
    if n < 1:
        raise ConfigError(f"need at least one sample input, got n={n}")
    rng = np.random.default_rng(seed)
    shape = graph.input_shape[1:]
    if len(shape) != 3:
        return rng.uniform(-1.0, 1.0, (n, *shape)).astype(np.float32)
    c, h, w = shape
    coarse = rng.uniform(-1.0, 1.0, (n, c, max(2, -(-h // 8)), max(2, -(-w // 8))))
    img = np.einsum(
        "yi,ncij,xj->ncyx",
        _interpolation(h, coarse.shape[2]),
        coarse,
        _interpolation(w, coarse.shape[3]),
    )
    img += rng.normal(0.0, 0.05, img.shape)
    img /= np.abs(img).max(axis=(1, 2, 3), keepdims=True)
    levels: npt.NDArray[np.float32] = (np.round((img + 1.0) * 127.5) / 127.5 - 1.0).astype(
        np.float32
    )
    return levels


def _interpolation(size: int, coarse: int) -> npt.NDArray[np.float64]:
    """Linear interpolation matrix (size, coarse) from ``coarse`` samples to ``size`` samples."""
    t = np.linspace(0.0, coarse - 1.0, size)
    i0 = np.minimum(np.floor(t).astype(np.int64), coarse - 2)
    frac = t - i0
    m = np.zeros((size, coarse))
    m[np.arange(size), i0] = 1.0 - frac
    m[np.arange(size), i0 + 1] = frac
    return m


def calibrate(graph: Graph, samples: npt.NDArray[Any]) -> QuantizedModel:
    """Quantize ``graph`` with activation ranges measured on ``samples``.

    Args:
        graph: the float model.
        samples: calibration inputs, shape ``(n, *graph.input_shape[1:])``, n >= 1.

    Raises:
        ConfigError: samples of the wrong shape, none, or non-finite ones.
        ModelError: a non-finite activation, or a layer the int16 scheme cannot quantize.
    """
    from tinysplit.model.execute import run_float  # execute imports this module

    samples = np.asarray(samples)
    if samples.ndim != len(graph.input_shape) or samples.shape[1:] != graph.input_shape[1:]:
        raise ConfigError(
            f"calibration samples must have shape (n, {', '.join(map(str, graph.input_shape[1:]))})"
            f", got {samples.shape}"
        )
    if len(samples) == 0:
        raise ConfigError("need at least one calibration sample")
    if not np.isfinite(samples).all():
        raise ConfigError("calibration samples must be finite")
    ranges = dict.fromkeys(graph.shapes, 0.0)
    for sample in samples:
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, by tensor name
            values = run_float(graph, sample[None], collect=True)
        for name, value in values.items():
            peak = float(np.max(np.abs(value))) if value.size else 0.0
            if not math.isfinite(peak):
                raise ModelError(f"tensor {name!r} of model {graph.name!r} is not finite")
            ranges[name] = max(ranges[name], peak)
    exponents = {name: exponent_for_range(r) for name, r in ranges.items()}
    _fuse_activations(graph, exponents)
    for layer in graph.layers:
        if layer.op in SAME_EXPONENT_OPS:
            exponents[layer.output] = exponents[layer.inputs[0]]
    return QuantizedModel(graph=graph, exponents=exponents, weights=_weights(graph, exponents))


def from_exponents(graph: Graph, exponents: Mapping[str, int]) -> QuantizedModel:
    """Rebuild the quantized model :func:`calibrate` made, from its activation exponents.

    The weights follow from the exponents, so a saved ``QuantizedModel.to_dict()["exponents"]``
    restores the model without the calibration runs.

    Raises:
        ModelError: an activation tensor of ``graph`` has no exponent.
    """
    exponents = {name: int(e) for name, e in exponents.items()}
    missing = [name for name in graph.shapes if name not in exponents]
    if missing:
        raise ModelError(f"no exponents for {missing} of model {graph.name!r}")
    return QuantizedModel(graph=graph, exponents=exponents, weights=_weights(graph, exponents))


def calibrate_cached(
    graph: Graph, samples: int, seed: int, cache_dir: Path | None
) -> QuantizedModel:
    """:func:`calibrate` on ``sample_inputs(graph, samples, seed)``, cached on disk.

    The cache file (in ``cache_dir``; no cache when None) holds the exponents only, keyed by the
    model's source hash, the calibration images and the tinysplit version, so a stale entry is
    never used. Processes that rebuild the same quantization (the emulated boards of every run)
    skip the float calibration runs.
    """
    from tinysplit import __version__
    from tinysplit.fileio import write_text_atomic

    path = None
    if cache_dir is not None:
        key = f"{graph.source_hash}-{samples}-{seed}-{SCHEME}-{__version__}"
        path = cache_dir / f"quantization-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"
        try:
            return from_exponents(graph, json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ModelError):
            pass  # absent, unreadable or not for this graph: calibrate again
    qmodel = calibrate(graph, sample_inputs(graph, samples, seed))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(dict(qmodel.exponents)), what="quantization cache")
        except (OSError, ConfigError):
            pass  # a cache that cannot be written only costs time
    return qmodel


def _fuse_activations(graph: Graph, exponents: dict[str, int]) -> None:
    """Give a Conv/Gemm the exponent of the Relu (or min-0 Clip) that alone reads its output."""
    readers: dict[str, list[Layer]] = {}
    for layer in graph.layers:
        for name in layer.inputs:
            readers.setdefault(name, []).append(layer)
    for layer in graph.layers:
        users = readers.get(layer.output, [])
        if layer.op not in {"Conv", "Gemm"} or len(users) != 1 or layer.output == graph.output_name:
            continue
        act = users[0]
        if act.op == "Relu" or (act.op == "Clip" and kernels.clip_bounds(act)[0] == 0.0):
            exponents[layer.output] = exponents[act.output]


def _weights(graph: Graph, exponents: Mapping[str, int]) -> dict[str, tuple[npt.NDArray[Any], int]]:
    out: dict[str, tuple[npt.NDArray[Any], int]] = {}
    for layer in graph.layers:
        if layer.op not in WEIGHT_OPS:
            continue
        floats = {
            slot: name
            for slot, name in enumerate(layer.node_inputs)
            if name in layer.params and np.issubdtype(layer.params[name].dtype, np.floating)
        }
        bias_slot = BIAS_SLOT.get(layer.op)
        scale = dict.fromkeys(floats, 1.0)
        if layer.op == "Gemm":
            target = 1 if 1 in floats else 0 if 0 in floats else None
            if target is not None:
                scale[target] = float(layer.attrs.get("alpha", 1.0))
            scale[2] = float(layer.attrs.get("beta", 1.0))
        for slot, name in floats.items():
            if slot != bias_slot:
                value = layer.params[name].astype(np.float64) * scale[slot]
                e = exponent_for_range(float(np.max(np.abs(value))) if value.size else 0.0)
                out[name] = (quantize(value, e), e)
        if bias_slot in floats:
            e = sum(out[n][1] if n in out else exponents[n] for n in layer.node_inputs[:bias_slot])
            value = layer.params[floats[bias_slot]].astype(np.float64) * scale[bias_slot]
            out[floats[bias_slot]] = (quantize_bias(value, e), e)
    return out
