"""Stage memory model: what one board needs to hold a contiguous slice of layers.

A stage holds layers ``first..last`` (0-based, inclusive) and starts and ends at valid cuts.

``detailed`` accounting (real ESP32-S3 boards):

* weights: ``weight_count * weight_bytes + bias_count * bias_bytes`` per layer, stored in flash and,
  when the profile copies parameters (ESP-DL ``param_copy``), also in PSRAM;
* code: the firmware image for the transport, in flash (after ``flash_reserved_bytes``);
* activations: the receive buffer (incoming tensor) + the ESP-DL arena peak + the send buffer
  (outgoing tensor). The receive and send buffers are separate from the arena because a pipelined
  board receives the next tensor and sends the previous one while it computes. The arena peak is the
  largest working set over the stage's layers: everything live before the layer (its inputs and, in
  a DAG, tensors waiting for later layers) plus its output. Activations live in PSRAM when the board
  has it, else in internal SRAM;
* transport buffers: the radio stack's data buffers, in internal SRAM.

``paper`` accounting (the paper's Section II-C): weights + code + the larger of the stage's input
and output tensor, against one budget.

All per-layer tables are built once per (graph, profile, transport); a stage query is O(1) (prefix
sums and a sparse table for range maxima) and the array form answers many stages at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tinysplit.model.graph import INT16_BYTES, Graph
from tinysplit.partition.profiles import DeviceProfile, load_transport

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, kw_only=True)
class StageMemory:
    """Memory of one stage, by part and by memory kind (all in bytes).

    Attributes:
        weights_bytes: stored parameters of the stage's layers.
        code_bytes: firmware image.
        activation_bytes: peak activation memory (``detailed``: receive buffer + arena peak + send
            buffer; ``paper``: the larger of input and output tensor).
        transport_buffer_bytes: radio data buffers.
        by_kind: bytes used per memory kind (``flash``/``psram``/``sram`` or ``total``).
        capacity: capacity per memory kind, as in :meth:`DeviceProfile.capacities`.
        placement: memory kinds each part lives in (keys ``weights``, ``code``,
            ``activations``, ``transport_buffers``).
    """

    weights_bytes: int
    code_bytes: int
    activation_bytes: int
    transport_buffer_bytes: int
    by_kind: Mapping[str, int] = field(default_factory=dict)
    capacity: Mapping[str, int] = field(default_factory=dict)
    placement: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        """Sum of the four parts (each counted once, wherever it lives)."""
        return (
            self.weights_bytes
            + self.code_bytes
            + self.activation_bytes
            + self.transport_buffer_bytes
        )

    @property
    def fits(self) -> bool:
        """True when every memory kind is within its capacity."""
        return all(used <= self.capacity[kind] for kind, used in self.by_kind.items())

    def overflow(self) -> dict[str, tuple[int, int]]:
        """Memory kinds over capacity, as ``kind -> (used, capacity)``."""
        return {
            kind: (used, self.capacity[kind])
            for kind, used in self.by_kind.items()
            if used > self.capacity[kind]
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "weights_bytes": self.weights_bytes,
            "code_bytes": self.code_bytes,
            "activation_bytes": self.activation_bytes,
            "transport_buffer_bytes": self.transport_buffer_bytes,
            "total_bytes": self.total_bytes,
            "by_kind": dict(self.by_kind),
            "placement": {part: list(kinds) for part, kinds in self.placement.items()},
        }


class _RangeMax:
    """Sparse table: maximum of ``values[a..b]`` in O(1) per query, vectorised."""

    def __init__(self, values: IntArray) -> None:
        levels = [values]
        width = 1
        while 2 * width <= len(values):
            prev = levels[-1]
            levels.append(np.maximum(prev[:-width], prev[width:]))
            width *= 2
        n = len(values)
        self._table = np.zeros((len(levels), n), dtype=np.int64)
        for k, level in enumerate(levels):
            self._table[k, : len(level)] = level

    def query(self, first: IntArray, last: IntArray) -> IntArray:
        """Element-wise ``max(values[first[i]..last[i]])`` (inclusive; ``first <= last``)."""
        length = last - first + 1
        k = np.floor(np.log2(length)).astype(np.int64)
        out: IntArray = np.maximum(self._table[k, first], self._table[k, last - (1 << k) + 1])
        return out


class MemoryModel:
    """Stage memory of one graph on one profile over one transport.

    Args:
        graph: the model.
        profile: the board.
        transport: transport id (selects code size and transport buffers).
    """

    def __init__(self, graph: Graph, profile: DeviceProfile, transport: str) -> None:
        load_transport(transport)  # validates the id
        self.graph = graph
        self.profile = profile
        self.transport = transport
        self.code_bytes = profile.code_bytes[transport]
        self.transport_buffer_bytes = (
            0 if profile.accounting == "paper" else profile.transport_buffer_bytes[transport]
        )
        self.capacity = profile.capacities()
        n = len(graph.layers)
        weights = np.array(
            [
                x.weight_count * profile.weight_bytes + x.bias_count * profile.bias_bytes
                for x in graph.layers
            ],
            dtype=np.int64,
        )
        #: ``weight_prefix[i]``: weight bytes of layers ``0..i-1``.
        self.weight_prefix: IntArray = np.concatenate(([0], np.cumsum(weights)))
        shapes = graph.shapes

        def tensor_bytes(name: str) -> int:
            return INT16_BYTES * int(np.prod(shapes[name], dtype=np.int64))

        # live[i + 1]: bytes of the tensors live after layer i (live[0]: the model input); at a
        # valid cut this is the one tensor crossing it.
        live = [graph.input_bytes]
        live += [sum(tensor_bytes(t) for t in names) for names in graph.boundaries]
        live[n] = graph.layers[-1].output_bytes  # the model output leaves the last stage
        self._live: IntArray = np.array(live, dtype=np.int64)
        out = np.array([x.output_bytes for x in graph.layers], dtype=np.int64)
        #: ``work[i]``: arena working set while layer ``i`` runs (live before it + its output).
        self.work: IntArray = self._live[:-1] + out
        self._work_max = _RangeMax(self.work)

    @property
    def placement(self) -> dict[str, tuple[str, ...]]:
        """Memory kinds each part of a stage lives in, under this profile's accounting."""
        p = self.profile
        if p.accounting == "paper":
            return dict.fromkeys(
                ("weights", "code", "activations", "transport_buffers"), ("total",)
            )
        ram = "psram" if p.has_psram else "sram"
        return {
            "weights": ("flash", "psram") if p.param_copy else ("flash",),
            "code": ("flash",),
            "activations": (ram,),
            "transport_buffers": ("sram",),
        }

    def boundary_bytes(self, after: IntArray) -> IntArray:
        """int16 bytes crossing a cut after layer ``after`` (``-1``: model input), vectorised."""
        return self._live[np.asarray(after, dtype=np.int64) + 1]

    def weights(self, first: IntArray, last: IntArray) -> IntArray:
        """Weight bytes of layers ``first..last`` (inclusive), vectorised."""
        return self.weight_prefix[last + 1] - self.weight_prefix[first]

    def activations(self, first: IntArray, last: IntArray) -> IntArray:
        """Peak activation bytes of stages ``first..last`` (see the module docstring)."""
        rx = self._live[first]
        tx = self._live[last + 1]
        if self.profile.accounting == "paper":
            return np.maximum(rx, tx)
        return rx + self._work_max.query(first, last) + tx

    def usage(self, first: IntArray, last: IntArray) -> dict[str, IntArray]:
        """Bytes used per memory kind by stages ``first..last``, vectorised over stages."""
        first = np.asarray(first, dtype=np.int64)
        last = np.asarray(last, dtype=np.int64)
        weights = self.weights(first, last)
        acts = self.activations(first, last)
        p = self.profile
        if p.accounting == "paper":
            return {"total": weights + self.code_bytes + acts}
        usage = {"flash": p.flash_reserved_bytes + self.code_bytes + weights}
        if p.has_psram:
            usage["psram"] = acts + weights if p.param_copy else acts
            usage["sram"] = np.full_like(weights, self.transport_buffer_bytes)
        else:
            usage["sram"] = acts + self.transport_buffer_bytes
        return usage

    def fits(self, first: IntArray, last: IntArray) -> BoolArray:
        """Whether each stage ``first[i]..last[i]`` fits every memory kind, vectorised."""
        ok: BoolArray | None = None
        for kind, used in self.usage(first, last).items():
            within = used <= self.capacity[kind]
            ok = within if ok is None else ok & within
        assert ok is not None
        return ok

    def fill_ratio(self, first: IntArray, last: IntArray) -> npt.NDArray[np.float64]:
        """Largest ``used / capacity`` over memory kinds per stage (``<= 1`` means it fits)."""
        ratio = np.zeros(np.shape(first), dtype=np.float64)
        for kind, used in self.usage(first, last).items():
            cap = self.capacity[kind]
            kind_ratio = used / cap if cap else np.where(used > 0, np.inf, 0.0)
            ratio = np.maximum(ratio, kind_ratio)
        return ratio

    def max_weights_bytes(self) -> int:
        """Upper bound on the weight bytes of any stage that fits (a monotone bound for search)."""
        p = self.profile
        if p.accounting == "paper":
            return self.capacity["total"] - self.code_bytes
        bound = p.flash_bytes - p.flash_reserved_bytes - self.code_bytes
        if p.param_copy:
            bound = min(bound, p.psram_bytes)
        return bound

    def earliest_first(self, last: IntArray) -> IntArray:
        """Smallest ``first`` whose stage ``first..last`` could fit, judged by weights alone.

        Weights only grow when a stage grows, so every fitting stage ending at ``last`` starts at
        or after this index (activations are not monotone: a shorter stage can start at a larger
        tensor, so they are checked separately with :meth:`fits`).
        """
        last = np.asarray(last, dtype=np.int64)
        need = self.weight_prefix[last + 1] - self.max_weights_bytes()
        return np.searchsorted(self.weight_prefix, need, side="left").astype(np.int64)

    def stage_memory(self, first: int, last: int) -> StageMemory:
        """Breakdown of stage ``first..last`` (0-based, inclusive)."""
        a = np.array([first], dtype=np.int64)
        b = np.array([last], dtype=np.int64)
        return StageMemory(
            weights_bytes=int(self.weights(a, b)[0]),
            code_bytes=self.code_bytes,
            activation_bytes=int(self.activations(a, b)[0]),
            transport_buffer_bytes=self.transport_buffer_bytes,
            by_kind={kind: int(v[0]) for kind, v in self.usage(a, b).items()},
            capacity=dict(self.capacity),
            placement=self.placement,
        )
