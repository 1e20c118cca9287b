"""Per-layer compute-time model of ESP-DL int16 inference on one ESP32-S3 core.

``t_layer = MACs / (eta_class * P_s16) + bytes_moved / memory_bytes_per_s + layer_overhead_s``

* MAC layers (Conv, Gemm, MatMul) use the first term. Their class picks the efficiency ``eta``:
  ``pointwise`` (1x1 conv), ``conv`` (k x k conv), ``depthwise``, ``first_conv`` (at most 4 input
  channels) and ``gemm`` (Gemm/MatMul and 1x1 convs on a 1x1 map, which stream their weights).
* Other layers (ReLU, Pad, pooling, reshapes, ...) are memory-bound: they move their int16 inputs
  and output once through the cache at ``memory_bytes_per_s``.

The constants and their sources live in ``data/compute-esp32s3.toml``; the efficiencies are derived
here from a published ESP-DL latency (the calibration anchor), as that file explains.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError
from tinysplit.model.graph import INT16_BYTES, Graph, Layer

FloatArray = npt.NDArray[np.float64]

#: Efficiency classes of MAC layers.
MAC_CLASSES = ("pointwise", "conv", "depthwise", "first_conv", "gemm")
#: Class of layers without multiply-accumulates.
MEMORY_CLASS = "memory"
#: Largest input-channel count treated as a "first conv" (RGB or grayscale image input).
FIRST_CONV_MAX_CHANNELS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeModel:
    """Constants of the compute-time model.

    Attributes:
        clock_hz: CPU clock in Hz.
        s16_macs_per_cycle: int16 MACs per cycle at peak (SIMD lanes).
        eta: fraction of peak reached per MAC class (keys: :data:`MAC_CLASSES`).
        memory_bytes_per_s: effective memory bandwidth for non-MAC layers, bytes/s.
        layer_overhead_s: fixed cost per layer in seconds.
        dual_core_speedup: how much faster ESP-DL runs a model on both cores than on one.
    """

    clock_hz: float
    s16_macs_per_cycle: int
    eta: Mapping[str, float]
    memory_bytes_per_s: float
    layer_overhead_s: float
    dual_core_speedup: float = 1.0

    def __post_init__(self) -> None:
        if not (self.clock_hz > 0 and self.s16_macs_per_cycle > 0 and self.memory_bytes_per_s > 0):
            raise ConfigError("compute model: clock, MACs per cycle and bandwidth must be > 0")
        if not self.layer_overhead_s >= 0:
            raise ConfigError("compute model: layer_overhead_s must be >= 0")
        if not 1.0 <= self.dual_core_speedup <= 2.0:
            raise ConfigError("compute model: dual_core_speedup must be within 1..2")
        missing = [c for c in MAC_CLASSES if c not in self.eta]
        if missing or any(not 0 < self.eta[c] <= 1 for c in MAC_CLASSES):
            raise ConfigError(
                f"compute model: eta needs a value in (0, 1] for each of {', '.join(MAC_CLASSES)}"
            )
        object.__setattr__(self, "eta", MappingProxyType({c: self.eta[c] for c in MAC_CLASSES}))

    @property
    def peak_macs_per_s(self) -> float:
        """``P_s16``: int16 peak MAC rate of one core in MAC/s."""
        return self.clock_hz * self.s16_macs_per_cycle

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "clock_hz": self.clock_hz,
            "s16_macs_per_cycle": self.s16_macs_per_cycle,
            "eta": dict(self.eta),
            "memory_bytes_per_s": self.memory_bytes_per_s,
            "layer_overhead_s": self.layer_overhead_s,
            "dual_core_speedup": self.dual_core_speedup,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComputeModel:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` on missing or bad fields."""
        try:
            return cls(
                clock_hz=float(data["clock_hz"]),
                s16_macs_per_cycle=int(data["s16_macs_per_cycle"]),
                eta={str(k): float(v) for k, v in dict(data["eta"]).items()},
                memory_bytes_per_s=float(data["memory_bytes_per_s"]),
                layer_overhead_s=float(data["layer_overhead_s"]),
                dual_core_speedup=float(data["dual_core_speedup"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad compute model: {exc}") from exc


def derive_compute_model(data: Mapping[str, Any]) -> ComputeModel:
    """Build a :class:`ComputeModel` from the raw sourced constants of the data file.

    The anchor fixes the average int16 MAC rate ``macs / (latency_int8_s * int16_over_int8)``.
    The per-class efficiencies keep the ratios of ``relative_macs_per_cycle`` and are scaled so a
    network with the anchor's MAC mix runs at exactly that average rate. Gemm is bound by streaming
    its weights: ``memory.bytes_per_s / gemm.bytes_per_mac`` MAC/s.
    """
    try:
        peak = float(data["clock_hz"]) * int(data["s16_macs_per_cycle"])
        anchor = data["anchor"]
        avg_rate = anchor["macs"] / (anchor["latency_int8_s"] * anchor["int16_over_int8"])
        share = {str(k): float(v) for k, v in anchor["mac_share"].items()}
        ratio = {str(k): float(v) for k, v in data["relative_macs_per_cycle"].items()}
        total_share = sum(share.values())
        # Anchor network time per MAC at scale 1: sum(share_c / ratio_c) / peak.
        scale = avg_rate / peak * sum(s / total_share / ratio[c] for c, s in share.items())
        eta = {c: scale * r for c, r in ratio.items()}
        bandwidth = float(data["memory"]["bytes_per_s"])
        eta["gemm"] = bandwidth / float(data["gemm"]["bytes_per_mac"]) / peak
        return ComputeModel(
            clock_hz=float(data["clock_hz"]),
            s16_macs_per_cycle=int(data["s16_macs_per_cycle"]),
            eta=eta,
            memory_bytes_per_s=bandwidth,
            layer_overhead_s=float(data["overhead"]["layer_s"]),
            dual_core_speedup=float(data["multicore"]["dual_core_speedup"]),
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ConfigError(f"bad compute data: {exc!r}") from exc


@cache
def load_compute_model() -> ComputeModel:
    """The ESP32-S3 model derived from ``data/compute-esp32s3.toml``."""
    text = (
        resources.files("tinysplit.partition")
        .joinpath("data")
        .joinpath("compute-esp32s3.toml")
        .read_text("utf-8")
    )
    return derive_compute_model(tomllib.loads(text))


def layer_class(layer: Layer) -> str:
    """Efficiency class of a layer: one of :data:`MAC_CLASSES`, or ``"memory"``."""
    if layer.op in ("Gemm", "MatMul"):
        return "gemm"
    if layer.op != "Conv":
        return MEMORY_CLASS
    weight = layer.params.get(layer.node_inputs[1]) if len(layer.node_inputs) > 1 else None
    if weight is None or weight.ndim < 3:
        return "conv"
    group = int(layer.attrs.get("group", 1))
    cin = int(weight.shape[1]) * group
    kernel = tuple(int(k) for k in weight.shape[2:])
    spatial = int(np.prod(layer.shape[2:], dtype=np.int64))
    if spatial == 1 and all(k == 1 for k in kernel):
        return "gemm"
    if group > 1 and group == cin:
        return "depthwise"
    if cin <= FIRST_CONV_MAX_CHANNELS:
        return "first_conv"
    return "pointwise" if all(k == 1 for k in kernel) else "conv"


def layer_compute_s(graph: Graph, model: ComputeModel | None = None) -> FloatArray:
    """Estimated compute time of every layer in seconds (index = 0-based layer number).

    Args:
        graph: the model.
        model: the constants; the ESP32-S3 data file when omitted.
    """
    model = model or load_compute_model()
    shapes = graph.shapes
    times = np.empty(len(graph.layers), dtype=np.float64)
    for i, layer in enumerate(graph.layers):
        cls = layer_class(layer)
        if cls == MEMORY_CLASS:
            elements = layer.output_elements + sum(
                int(np.prod(shapes[t], dtype=np.int64)) for t in layer.inputs
            )
            t = INT16_BYTES * elements / model.memory_bytes_per_s
        else:
            t = layer.macs / (model.eta[cls] * model.peak_macs_per_s)
        times[i] = t + model.layer_overhead_s
    return times
