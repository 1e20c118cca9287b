"""Array kernels with ONNX semantics (NCHW), shared by the float and the int16 executors.

Every kernel computes in the dtype of the operands it is given: the float executor passes float64,
the int16 executor passes int16 values held in float64 (or in int64 when float64 would not be
exact, see :func:`exact_in_float64`). Convolutions take their dtype from the weights; the input is
converted while it is padded, so the conversion costs one pass.

Only 2-D spatial convolution and pooling (4-D NCHW tensors) are implemented, with explicit pads
(``auto_pad`` NOTSET) and ``ceil_mode`` 0; anything else raises :class:`ModelError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from tinysplit.errors import ModelError
from tinysplit.model.graph import Layer

Array = npt.NDArray[Any]

#: Largest magnitude of a product of two int16 values: (-32768) * (-32768).
INT16_PRODUCT_MAX = 2**30
#: float64 holds every integer of magnitude below this exactly (53-bit significand).
FLOAT64_EXACT_LIMIT = 2**53


def exact_in_float64(terms: int, bias_max: int | float = 0) -> bool:
    """Tell whether a dot product of int16 values is exact when computed in float64.

    Each product is an integer of magnitude <= 2**30, so every partial sum of ``terms`` products
    plus a bias is an exact integer, whatever the summation order (BLAS blocking, FMA), as long as
    ``terms * 2**30 + |bias| < 2**53``. That holds for up to 2**22 terms with a 40-bit bias.

    Args:
        terms: number of products summed into one output value.
        bias_max: largest magnitude of anything added to the sum (bias, rounding offset).
    """
    return terms * INT16_PRODUCT_MAX + abs(bias_max) < FLOAT64_EXACT_LIMIT


def accumulator_dtype(terms: int, bias_max: int | float = 0) -> np.dtype[Any]:
    """float64 (BLAS speed) when :func:`exact_in_float64` holds, else int64 (exact, slow)."""
    return np.dtype(np.float64 if exact_in_float64(terms, bias_max) else np.int64)


@dataclass(frozen=True, slots=True)
class Window:
    """Geometry of a 2-D convolution or pooling window.

    Attributes:
        kernel: (height, width) of the window in input pixels before dilation.
        strides: (vertical, horizontal) step in input pixels.
        dilations: (vertical, horizontal) spacing of the taps.
        pads: (top, left, bottom, right) padding in pixels (ONNX order).
    """

    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def extent(self) -> tuple[int, int]:
        """Size of the dilated window in input pixels."""
        return (
            (self.kernel[0] - 1) * self.dilations[0] + 1,
            (self.kernel[1] - 1) * self.dilations[1] + 1,
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (height, width) for an input of ``height`` x ``width`` pixels."""
        (eh, ew), (sh, sw), (t, left, b, r) = self.extent, self.strides, self.pads
        oh, ow = (height + t + b - eh) // sh + 1, (width + left + r - ew) // sw + 1
        if oh < 1 or ow < 1:
            raise ModelError(f"window {self.extent} does not fit the {height}x{width} input")
        return oh, ow


def window(attrs: Mapping[str, Any], kernel: Sequence[int] | None = None) -> Window:
    """Parse ONNX Conv/MaxPool/AveragePool attributes into a :class:`Window`.

    Args:
        attrs: the node attributes.
        kernel: the kernel size when it is not in ``attrs`` (Conv: the weight's spatial shape).
    """
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad != "NOTSET":
        raise ModelError(f"auto_pad={auto_pad!r} is not supported (export with explicit pads)")
    if attrs.get("ceil_mode", 0):
        raise ModelError("ceil_mode=1 is not supported")
    shape = [int(k) for k in attrs.get("kernel_shape", kernel or ())]
    if len(shape) != 2:
        raise ModelError(f"only 2-D windows are supported, got kernel shape {shape}")
    pads = [int(p) for p in attrs.get("pads", (0, 0, 0, 0))]
    strides = [int(s) for s in attrs.get("strides", (1, 1))]
    dilations = [int(d) for d in attrs.get("dilations", (1, 1))]
    if len(pads) != 4 or len(strides) != 2 or len(dilations) != 2 or min(pads) < 0:
        raise ModelError(f"bad window attributes {dict(attrs)}")
    return Window(
        (shape[0], shape[1]),
        (strides[0], strides[1]),
        (dilations[0], dilations[1]),
        (pads[0], pads[1], pads[2], pads[3]),
    )


def pad_spatial(x: Array, pads: tuple[int, int, int, int], value: float, dtype: Any) -> Array:
    """Pad the last two axes by (top, left, bottom, right) with ``value``, converting to dtype."""
    top, left, bottom, right = pads
    if not any(pads):
        return x.astype(dtype, copy=False)
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def conv(x: Array, w: Array, b: Array | None, win: Window, group: int = 1) -> Array:
    """2-D convolution (ONNX Conv) computed in ``w``'s dtype.

    Standard convolutions use im2col (a strided window view copied once) and one matmul; 1x1
    kernels are a plain matmul; depthwise convolutions (``group`` == input channels) sum the
    shifted input slices times per-channel weights over the kernel taps; other grouped
    convolutions run one standard convolution per group.

    Args:
        x: input (N, C, H, W), any numeric dtype.
        w: weights (M, C / group, kH, kW); their dtype is the computation dtype.
        b: bias (M,) in the same dtype, or None.
        win: window geometry.
        group: number of groups.
    """
    channels, cout = x.shape[1], w.shape[0]
    if channels != w.shape[1] * group or cout % group:
        raise ModelError(f"weights {w.shape} do not fit input {x.shape} with group={group}")
    xp = pad_spatial(x, win.pads, 0, w.dtype)
    nopad = Window(win.kernel, win.strides, win.dilations)
    if group == 1:
        y = _conv_dense(xp, w, nopad)
    elif group == channels and w.shape[1] == 1:
        y = _conv_depthwise(xp, w, nopad)
    else:
        cin, cg = channels // group, cout // group
        y = np.concatenate(
            [
                _conv_dense(xp[:, g * cin : (g + 1) * cin], w[g * cg : (g + 1) * cg], nopad)
                for g in range(group)
            ],
            axis=1,
        )
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _conv_dense(xp: Array, w: Array, win: Window) -> Array:
    n, c = xp.shape[:2]
    cout = w.shape[0]
    oh, ow = win.output_size(*xp.shape[2:])
    if win.kernel == (1, 1):
        (sh, sw) = win.strides
        cols = xp[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw].reshape(n, c, oh * ow)
    else:
        views = windows(xp, win)  # (N, C, oh, ow, kH, kW)
        cols = views.transpose(0, 1, 4, 5, 2, 3).reshape(n, -1, oh * ow)
    y: Array = np.matmul(w.reshape(cout, -1), cols)
    return y.reshape(n, cout, oh, ow)


def _conv_depthwise(xp: Array, w: Array, win: Window) -> Array:
    multiplier = w.shape[0] // xp.shape[1]
    if multiplier > 1:
        xp = np.repeat(xp, multiplier, axis=1)  # output channel o reads input channel o // m
    (oh, ow), (sh, sw), (dh, dw) = win.output_size(*xp.shape[2:]), win.strides, win.dilations
    y: Array | None = None
    tmp = np.empty((xp.shape[0], w.shape[0], oh, ow), dtype=w.dtype)
    for i in range(win.kernel[0]):
        for j in range(win.kernel[1]):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            tap = xp[:, :, rows, j * dw : j * dw + (ow - 1) * sw + 1 : sw]
            weight = w[:, 0, i, j].reshape(1, -1, 1, 1)
            if y is None:
                y = tap * weight
            else:
                np.multiply(tap, weight, out=tmp)
                y += tmp
    assert y is not None
    return y


def windows(xp: Array, win: Window) -> Array:
    """Strided view (N, C, outH, outW, kH, kW) of the windows over an already padded input."""
    (eh, ew), (sh, sw), (dh, dw) = win.extent, win.strides, win.dilations
    view = sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def max_pool(x: Array, win: Window) -> Array:
    """ONNX MaxPool; padding never wins (-inf for floats, the dtype's minimum for integers)."""
    fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    result: Array = windows(pad_spatial(x, win.pads, fill, x.dtype), win).max(axis=(-2, -1))
    return result


def pool_sum(x: Array, win: Window, dtype: Any) -> Array:
    """Sum of each AveragePool window (zero padding), accumulated in ``dtype``."""
    result: Array = windows(pad_spatial(x, win.pads, 0, dtype), win).sum(axis=(-2, -1))
    return result


def pool_count(height: int, width: int, win: Window, count_include_pad: bool) -> Array:
    """Divisor of each AveragePool window, shape (1, 1, outH, outW), int64.

    With ``count_include_pad`` every window counts kH * kW values; otherwise only the values that
    lie inside the unpadded input.
    """
    oh, ow = win.output_size(height, width)
    if count_include_pad:
        return np.full((1, 1, oh, ow), win.kernel[0] * win.kernel[1], dtype=np.int64)
    return pool_sum(np.ones((1, 1, height, width), np.int64), win, np.int64)


def avg_pool(x: Array, win: Window, count_include_pad: bool) -> Array:
    """ONNX AveragePool in float64."""
    sums = pool_sum(x, win, np.float64)
    return sums / pool_count(x.shape[2], x.shape[3], win, count_include_pad)


def global_avg_pool(x: Array) -> Array:
    """ONNX GlobalAveragePool: mean over every axis after the channel axis, kept as size 1."""
    result: Array = x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64)
    return result


PAD_MODES = ("constant", "reflect", "edge")


def pad(x: Array, pads: Sequence[int], mode: str = "constant", value: float = 0) -> Array:
    """ONNX Pad: ``pads`` is [begin_0, ..., begin_n, end_0, ..., end_n]; negative values crop.

    ``mode`` is ``constant`` (with ``value``), ``reflect`` or ``edge``; the result keeps x's dtype.
    """
    rank = x.ndim
    if len(pads) != 2 * rank:
        raise ModelError(f"pads {list(pads)} do not match a rank-{rank} input")
    if mode not in PAD_MODES:
        raise ModelError(f"Pad mode {mode!r} is not supported (use {', '.join(PAD_MODES)})")
    begins, ends = pads[:rank], pads[rank:]
    crop = tuple(
        slice(max(-b, 0), size - max(-e, 0))
        for b, e, size in zip(begins, ends, x.shape, strict=True)
    )
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends, strict=True)]
    if mode == "reflect":
        return np.pad(x[crop], widths, mode="reflect")
    if mode == "edge":
        return np.pad(x[crop], widths, mode="edge")
    return np.pad(x[crop], widths, mode="constant", constant_values=value)


def full_pads(pads: Sequence[int], axes: Sequence[int] | None, rank: int) -> list[int]:
    """Expand ONNX Pad ``pads`` given for ``axes`` only (opset 18) to all ``rank`` axes."""
    if axes is None:
        return [int(p) for p in pads]
    out = [0] * (2 * rank)
    for k, axis in enumerate(axes):
        axis = int(axis) % rank
        out[axis], out[rank + axis] = int(pads[k]), int(pads[len(axes) + k])
    return out


def gemm(
    a: Array,
    b: Array,
    c: Array | None = None,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> Array:
    """ONNX Gemm: ``alpha * A' @ B' + beta * C`` (A' = A.T when ``trans_a``, likewise B')."""
    y: Array = np.matmul(a.T if trans_a else a, b.T if trans_b else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


def matmul(a: Array, b: Array) -> Array:
    """ONNX MatMul (numpy matmul semantics, broadcasting leading axes)."""
    result: Array = np.matmul(a, b)
    return result


def reshape(x: Array, shape: Sequence[int], allowzero: bool = False) -> Array:
    """ONNX Reshape: 0 copies the input dimension (unless ``allowzero``), -1 is inferred."""
    dims = [int(d) for d in shape]
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    try:
        return x.reshape(dims)
    except ValueError as exc:
        raise ModelError(f"cannot reshape {x.shape} to {dims}") from exc


def flatten(x: Array, axis: int = 1) -> Array:
    """ONNX Flatten: 2-D with the axes before ``axis`` in the first dimension."""
    axis = axis % x.ndim if axis < 0 else axis
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(rows, int(np.prod(x.shape[axis:], dtype=np.int64)))


def transpose(x: Array, perm: Sequence[int] | None = None) -> Array:
    """ONNX Transpose (reverse the axes when ``perm`` is omitted)."""
    return np.transpose(x, None if perm is None else tuple(perm))


def concat(parts: Sequence[Array], axis: int) -> Array:
    """ONNX Concat along ``axis`` (negative counts from the end)."""
    return np.concatenate(list(parts), axis=axis)


def softmax(x: Array, axis: int = -1) -> Array:
    """ONNX Softmax (opset >= 13: normalised along one axis) in float64."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    result: Array = e / e.sum(axis=axis, keepdims=True)
    return result


# --- arguments of a layer (ONNX attributes and constant inputs) --------------------------------


def const_input(layer: Layer, slot: int) -> Array | None:
    """Constant input ``slot`` of a layer (None when omitted); error when it is an activation."""
    name = layer.node_inputs[slot] if len(layer.node_inputs) > slot else ""
    if not name:
        return None
    if name not in layer.params:
        raise ModelError(f"input {slot} ({name!r}) must be a constant initializer")
    return layer.params[name]


def clip_bounds(layer: Layer) -> tuple[float, float]:
    """(min, max) of a Clip layer: inputs 1 and 2 (opset >= 11) or attributes (older)."""
    low, high = const_input(layer, 1), const_input(layer, 2)
    return (
        float(layer.attrs.get("min", -np.inf)) if low is None else float(low),
        float(layer.attrs.get("max", np.inf)) if high is None else float(high),
    )


def pad_arguments(layer: Layer, rank: int) -> tuple[list[int], str, float]:
    """(pads for every axis, mode, constant value) of a Pad: attributes (opset < 11) or inputs."""
    mode = str(layer.attrs.get("mode", "constant"))
    if "pads" in layer.attrs:
        return [int(p) for p in layer.attrs["pads"]], mode, float(layer.attrs.get("value", 0.0))
    pads, value, axes = const_input(layer, 1), const_input(layer, 2), const_input(layer, 3)
    if pads is None:
        raise ModelError("Pad has no pads")
    axes_list = None if axes is None else [int(a) for a in axes]
    fill = 0.0 if value is None or value.size == 0 else float(value.reshape(-1)[0])
    return full_pads([int(p) for p in pads], axes_list, rank), mode, fill


def move_values(layer: Layer, x: Array, pad_value: Callable[[float], float]) -> Array | None:
    """Run an op that only moves or selects values, the same on floats and on int16 codes.

    Handles Reshape, Flatten, Transpose, MaxPool and Pad (whose constant goes through
    ``pad_value``, e.g. to quantize it); returns None for every other op.
    """
    attrs = layer.attrs
    if layer.op == "Reshape":
        shape = const_input(layer, 1)
        assert shape is not None
        return reshape(x, [int(d) for d in shape], bool(attrs.get("allowzero", 0)))
    if layer.op == "Flatten":
        return flatten(x, int(attrs.get("axis", 1)))
    if layer.op == "Transpose":
        return transpose(x, attrs.get("perm"))
    if layer.op == "MaxPool":
        return max_pool(x, window(attrs))
    if layer.op == "Pad":
        pads, mode, value = pad_arguments(layer, x.ndim)
        return pad(x, pads, mode, pad_value(value))
    return None
