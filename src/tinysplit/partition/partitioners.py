"""Split a graph into contiguous stages, one per board: ``paper``, ``greedy`` and ``optimal``.

Stages start and end at valid cut points (``Graph.cut_points``) and must fit the device profile
(``partition.memory``). The strategies:

* ``paper``: the paper's procedure (Section II-C): first fix the number of devices N (``devices``,
  or the fewest that fit, as the paper derived 5 from the model, memory and code sizes), then fill
  greedily: device 1 takes as many layers as fit, then device 2, and so on. "Fit" is measured
  against a common budget, the smallest fraction of every memory capacity at which N devices can
  hold the model; filling to the full capacity would leave the last of N devices nearly empty,
  unlike the paper's Table I. A device never takes a slice after which the rest of the model
  cannot be placed on the remaining devices.
* ``greedy``: the paper fill, then what the paper did by hand: each cut moves to the position
  between its neighbouring cuts with the smallest tensor, as long as both stages it bounds still
  fit the device. Passes repeat until no cut moves; the device count never changes.
* ``manual`` (:func:`plan_from_cuts`): the user names the cuts, e.g. the paper's Table I split;
  the plan reports its memory and timing and refuses stages that do not fit.
* ``optimal``: an exact dynamic program over cut points. It uses the fewest devices that fit
  (or exactly ``devices``), then minimises the objective: ``bottleneck`` = the largest stage time
  (compute + sending its output at ``link_rate_bps``; the last stage sends nothing) or ``bytes`` =
  the largest tensor sent. Among equally good splits it minimises the sum of stage times (or of
  bytes sent).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.model.graph import Graph, nhwc
from tinysplit.partition.cost import layer_compute_s
from tinysplit.partition.memory import IntArray, MemoryModel
from tinysplit.partition.plan import OBJECTIVES, STRATEGIES, OutgoingTensor, Plan, Stage
from tinysplit.partition.profiles import (
    DEFAULT_PROFILE,
    DeviceProfile,
    load_profile,
    load_transport,
    load_transports,
)
from tinysplit.partition.search import (
    FloatArray,
    Segments,
    fill_path,
    min_stages,
    minmax_value,
    optimal_path,
)


def _size(n: int) -> str:
    """Bytes for messages: ``512 B``, ``37.9 KiB``, ``3.76 MiB``."""
    if n < 1024:
        return f"{n} B"
    if n < 2**20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 2**20:.2f} MiB"


class _Problem:
    """One graph on one profile: cut positions, feasible stages and their costs."""

    def __init__(
        self, graph: Graph, memory: MemoryModel, objective: str, link_rate_bps: float
    ) -> None:
        self.graph = graph
        self.memory = memory
        n = len(graph.layers)
        #: ``positions[j]``: 0-based layer after which position j cuts (-1: model start).
        self.positions: IntArray = np.array([-1, *graph.cut_points, n - 1], dtype=np.int64)
        self.times = np.concatenate(([0.0], np.cumsum(layer_compute_s(graph))))
        self.link_rate_bps = link_rate_bps
        pos = self.positions
        m = len(pos)
        first_ok = memory.earliest_first(pos[1:])  # smallest first layer per stage end
        lowest = np.searchsorted(pos, first_ok - 1, side="left").astype(np.int64)
        ends = np.arange(1, m, dtype=np.int64)
        counts = np.maximum(ends - lowest, 0)
        ends = np.repeat(ends, counts)
        group_start = np.repeat(np.cumsum(counts) - counts, counts)
        starts = np.arange(len(ends), dtype=np.int64) - group_start + np.repeat(lowest, counts)
        fill = memory.fill_ratio(pos[starts] + 1, pos[ends])
        fits = fill <= 1.0
        starts, ends = starts[fits], ends[fits]
        #: Per feasible segment: largest used/capacity ratio over memory kinds.
        self.fill = fill[fits]
        sent = np.where(ends == m - 1, 0, memory.boundary_bytes(pos[ends]))
        costs = sent.astype(np.float64) if objective == "bytes" else self.stage_s(starts, ends)
        self.segments = Segments(n_positions=m, starts=starts, ends=ends, costs=costs)

    def stage_s(self, starts: IntArray, ends: IntArray) -> FloatArray:
        """Compute + send time in seconds of stages between positions (vectorised)."""
        pos = self.positions
        compute = self.times[pos[ends] + 1] - self.times[pos[starts] + 1]
        sent = np.where(ends == len(pos) - 1, 0, self.memory.boundary_bytes(pos[ends]))
        return np.asarray(compute + sent * 8.0 / self.link_rate_bps, dtype=np.float64)

    def check_coverable(self) -> None:
        """Raise :class:`PartitionError` naming the first layer no stage can hold."""
        covered = self.segments.covered()
        if covered.all():
            return
        j = int(np.argmin(covered))
        first, last = int(self.positions[j]) + 1, int(self.positions[j + 1])
        mem = self.memory.stage_memory(first, last)
        layers = self.graph.layers
        what = (
            f"layer {first + 1} ({layers[first].name})"
            if first == last
            else f"layers {first + 1}-{last + 1} ({layers[first].name} .. {layers[last].name}, "
            "which cannot be cut apart)"
        )
        # The smallest stage holding the layer is a candidate itself, so it must overflow.
        detail = "; ".join(f"{k} {_size(u)} > {_size(c)}" for k, (u, c) in mem.overflow().items())
        raise PartitionError(
            f"{what} of model {self.graph.name!r} does not fit on one "
            f"{self.memory.profile.name!r} device over {self.memory.transport}: "
            f"weights {_size(mem.weights_bytes)}, activations {_size(mem.activation_bytes)}, "
            f"code {_size(mem.code_bytes)}, transport buffers {_size(mem.transport_buffer_bytes)} "
            f"({detail})"
        )

    def min_devices(self) -> int:
        """Fewest devices that fit; raises :class:`PartitionError` when none do."""
        self.check_coverable()
        found = min_stages(self.segments)
        if found is None:
            raise PartitionError(
                f"model {self.graph.name!r} cannot be split onto {self.memory.profile.name!r} "
                "devices: every layer fits some stage, but no chain of fitting stages covers it"
            )
        return found

    def infeasible(self, devices: int) -> PartitionError:
        """The error for a device count that admits no split."""
        name, profile = self.graph.name, self.memory.profile.name
        most = len(self.positions) - 1
        if devices > most:
            return PartitionError(
                f"model {name!r} has {most - 1} valid cut points, so it can use at most "
                f"{most} devices (asked for {devices})"
            )
        fewest = self.min_devices()
        if devices < fewest:
            return PartitionError(
                f"model {name!r} needs at least {fewest} {profile!r} devices over "
                f"{self.memory.transport} (asked for {devices})"
            )
        return PartitionError(
            f"model {name!r} cannot be split into exactly {devices} {profile!r} devices that "
            f"each fit (the minimum is {fewest})"
        )

    def paper_fill(self, devices: int) -> tuple[int, ...] | None:
        """The paper fill on exactly ``devices`` devices, within the tightest common budget."""
        by_fill = self.segments.subset(np.ones(len(self.fill), dtype=bool), self.fill)
        budget = minmax_value(by_fill, devices)
        if not np.isfinite(budget):
            return None
        return fill_path(self.segments.subset(self.fill <= budget), devices)

    def relax_cuts(self, path: tuple[int, ...]) -> tuple[int, ...]:
        """Move each cut, between its neighbours, to the smallest tensor that keeps both fitting."""
        pos, mem = self.positions, self.memory
        cuts = list(path)
        moved = True
        while moved:
            moved = False
            for i in range(1, len(cuts) - 1):
                lo, cur, hi = cuts[i - 1], cuts[i], cuts[i + 1]
                cand = np.arange(lo + 1, hi, dtype=np.int64)
                ok = mem.fits(np.full_like(cand, pos[lo] + 1), pos[cand]) & mem.fits(
                    pos[cand] + 1, np.full_like(cand, pos[hi])
                )
                cand = cand[ok]
                sent = mem.boundary_bytes(pos[cand])
                best = min(
                    zip(sent.tolist(), np.abs(cand - cur).tolist(), cand.tolist(), strict=True)
                )
                if best[0] < int(mem.boundary_bytes(pos[[cur]])[0]):
                    cuts[i] = best[2]
                    moved = True
        return tuple(cuts)

    def plan(self, path: tuple[int, ...], *, strategy: str, objective: str, transport: str) -> Plan:
        """Turn a path of positions into a :class:`Plan`."""
        g, pos, mem = self.graph, self.positions, self.memory
        transports = load_transports()
        stages = []
        for device, (p, q) in enumerate(itertools.pairwise(path), start=1):
            first, last = int(pos[p]) + 1, int(pos[q])
            sm = mem.stage_memory(first, last)
            tensor = g.boundary_tensor(last)
            size = int(mem.boundary_bytes(np.array([last]))[0])
            compute = float(self.times[last + 1] - self.times[first])
            stages.append(
                Stage(
                    device=device,
                    first_layer=first + 1,
                    last_layer=last + 1,
                    first_layer_name=g.layers[first].name,
                    last_layer_name=g.layers[last].name,
                    weights_bytes=sm.weights_bytes,
                    code_bytes=sm.code_bytes,
                    peak_activation_bytes=sm.activation_bytes,
                    transport_buffer_bytes=sm.transport_buffer_bytes,
                    total_memory_bytes=sm.total_bytes,
                    memory_by_kind=dict(sm.by_kind),
                    outgoing=OutgoingTensor(
                        name=tensor,
                        nhwc_shape=nhwc(g.shapes[tensor]),
                        size_bytes=size,
                        frames={t: spec.frames(size) for t, spec in transports.items()},
                    ),
                    estimated_compute_s=compute,
                    estimated_send_s=0.0 if q == len(pos) - 1 else size * 8.0 / self.link_rate_bps,
                )
            )
        return Plan(
            model=g.name,
            model_hash=g.source_hash,
            model_layers=len(g.layers),
            profile=mem.profile,
            transport=transport,
            objective=objective,
            strategy=strategy,
            link_rate_bps=self.link_rate_bps,
            stages=tuple(stages),
        )


def partition(
    graph: Graph,
    *,
    strategy: str = "optimal",
    devices: int | None = None,
    profile: DeviceProfile | str = DEFAULT_PROFILE,
    transport: str = "ble",
    objective: str = "bottleneck",
    link_rate_bps: float | None = None,
) -> Plan:
    """Split ``graph`` into contiguous stages that each fit one device.

    Args:
        graph: the model.
        strategy: ``"paper"``, ``"greedy"`` or ``"optimal"`` (see the module docstring).
        devices: exact number of devices, or ``None`` for the fewest that fit.
        profile: a :class:`DeviceProfile` or the name of a built-in one.
        transport: transport id; selects code size, radio buffers and the default link rate.
        objective: ``"bottleneck"`` (seconds) or ``"bytes"``; steers ``optimal`` only.
        link_rate_bps: link rate in bit/s for send times; the transport's default when ``None``.

    Raises:
        ConfigError: an unknown strategy, objective, transport or profile, a device count below 1,
            or a non-positive link rate.
        PartitionError: a layer that fits no device, or a device count that admits no split (the
            message gives the minimum).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r} (valid: {', '.join(STRATEGIES)})")
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r} (valid: {', '.join(OBJECTIVES)})")
    if devices is not None and (
        isinstance(devices, bool) or not isinstance(devices, int) or devices < 1
    ):
        raise ConfigError(f"devices must be a positive integer or None (auto), got {devices!r}")
    rate = load_transport(transport).link_rate_bps if link_rate_bps is None else link_rate_bps
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
        raise ConfigError(f"link_rate_bps must be a positive number, got {link_rate_bps!r}")
    prof = load_profile(profile) if isinstance(profile, str) else profile
    problem = _Problem(graph, MemoryModel(graph, prof, transport), objective, float(rate))
    problem.check_coverable()
    count = problem.min_devices() if devices is None else devices
    if strategy == "optimal":
        path = optimal_path(problem.segments, count)
    else:
        path = problem.paper_fill(count)
        if path is not None and strategy == "greedy":
            path = problem.relax_cuts(path)
    if path is None:
        raise problem.infeasible(count)
    return problem.plan(path, strategy=strategy, objective=objective, transport=transport)


def plan_from_cuts(
    graph: Graph,
    cuts: Sequence[int],
    *,
    profile: DeviceProfile | str = DEFAULT_PROFILE,
    transport: str = "ble",
    link_rate_bps: float | None = None,
) -> Plan:
    """Build the plan of a split the user chose (strategy ``manual``).

    Args:
        graph: the model.
        cuts: 1-based numbers of the last layer of every stage but the final one, increasing
            (the paper's Table I split is ``[23, 37, 49, 59]``).
        profile: a :class:`DeviceProfile` or the name of a built-in one.
        transport: transport id; selects code size, radio buffers and the default link rate.
        link_rate_bps: link rate in bit/s for send times; the transport's default when ``None``.

    Raises:
        ConfigError: cuts out of order, outside the model or not at valid cut points.
        PartitionError: a stage that does not fit the device (the message names it).
    """
    n = len(graph.layers)
    if list(cuts) != sorted(set(cuts)) or any(not 1 <= c < n for c in cuts):
        raise ConfigError(f"cuts must be increasing layer numbers in 1..{n - 1}, got {list(cuts)}")
    valid = set(graph.cut_points)
    for c in cuts:
        if c - 1 not in valid:
            raise ConfigError(
                f"model {graph.name!r} cannot be cut after layer {c} ({graph.layers[c - 1].name}): "
                "more than one tensor is live there"
            )
    rate = load_transport(transport).link_rate_bps if link_rate_bps is None else link_rate_bps
    if not 0 < rate < math.inf:
        raise ConfigError(f"link_rate_bps must be a positive number, got {link_rate_bps!r}")
    prof = load_profile(profile) if isinstance(profile, str) else profile
    memory = MemoryModel(graph, prof, transport)
    problem = _Problem(graph, memory, "bottleneck", float(rate))
    index = {int(p): j for j, p in enumerate(problem.positions)}
    path = (0, *(index[c - 1] for c in cuts), len(problem.positions) - 1)
    for device, (p, q) in enumerate(itertools.pairwise(path), start=1):
        first, last = int(problem.positions[p]) + 1, int(problem.positions[q])
        overflow = memory.stage_memory(first, last).overflow()
        if overflow:
            detail = "; ".join(f"{k} {_size(u)} > {_size(c)}" for k, (u, c) in overflow.items())
            raise PartitionError(
                f"stage {device} (layers {first + 1}-{last + 1}) does not fit one "
                f"{prof.name!r} device over {transport}: {detail}"
            )
    return problem.plan(path, strategy="manual", objective="bottleneck", transport=transport)
