"""Smart replication: with spare boards, run the slow stages on several boards at once.

A stage on ``r`` boards (replicas) serves inferences round-robin (inference ``i`` on replica
``i mod r``), so each replica handles ``1/r`` of them. Two objectives, both min-max over stages:

* ``throughput``: the largest ``t_s / r_s``: the steady period, in seconds per inference. The
  stage time ``t_s`` is, with ``stage_time="send"`` (default), the partitioner's ``bottleneck``
  objective: compute + sending the output at the transport's ``link_rate_bps`` (the last stage
  sends nothing). With ``stage_time="radio"`` it is ``max(compute, receive + send)``: a BLE board's
  one radio both receives its input and sends its output while the CPU computes, as the simulator
  models it; a replica receives and sends ``1/r_s`` of the tensors, so with equal link times this
  is the per-board period of ``partition/period.py``. The ``send`` model ignores receiving and can
  replicate a stage whose boards' radios are then still saturated by their receivers' work.
* ``energy``: balance energy so that no board dies first: the largest ``e_s / r_s``, where
  ``e_s`` is the energy a board of stage ``s`` spends on one inference above idle, from the
  datasheet currents of :class:`tinysplit.sim.energy.PowerModel` at its supply voltage ``V``::

      e_s = V * ((I_inference - I_cpu_idle) * compute_s
                 + max(I_tx - I_idle, 0) * send_s + max(I_rx - I_idle, 0) * receive_s)

  with ``send_s`` / ``receive_s`` the outgoing / incoming tensor at the link rate. At ``rate``
  inferences per second a board of stage ``s`` draws on average
  ``P_s = V * I_idle + rate * e_s / r_s`` watts (:attr:`ReplicatedPlan.board_power_w`); the idle
  term is the same on every board, so minimising the largest ``e_s / r_s`` minimises the largest
  ``P_s`` at any rate.

Ties go to fewer boards, then the smaller sum of stage costs, then fewer stages. With a graph,
:func:`replicate` chooses cuts and replicas together (an exact dynamic program over cut position
and boards used, :func:`tinysplit.partition.search.replicated_path`); with a plan it keeps the
plan's cuts and chooses replicas only (:func:`replicate_plan`), e.g. the paper's split plus spare
boards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.model.graph import Graph
from tinysplit.partition.memory import IntArray, MemoryModel
from tinysplit.partition.partitioners import _Problem
from tinysplit.partition.plan import Plan
from tinysplit.partition.profiles import (
    DEFAULT_PROFILE,
    DeviceProfile,
    load_profile,
    load_transport,
)
from tinysplit.partition.search import FloatArray, replica_counts, replicated_path

if TYPE_CHECKING:
    from tinysplit.sim.energy import PowerModel

#: What the replica search minimises (see the module docstring).
REPLICATION_OBJECTIVES = ("throughput", "energy")
#: Stage time models of the throughput objective (see the module docstring).
STAGE_TIMES = ("send", "radio")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicatedPlan:
    """A plan with a replica count per stage.

    Attributes:
        plan: the cuts (its stages' estimates are per inference, for one board).
        replicas: boards running each stage (>= 1 each); stage s uses ``replicas[s]`` boards.
        period_s: steady period of the throughput model, ``max_s t_s / r_s`` (s per inference).
        stage_time: the stage time model of ``period_s``: ``send`` or ``radio``.
        objective: what the search minimised, ``throughput`` or ``energy``.
        rate_per_s: inference rate of :attr:`board_power_w` (``1 / period_s`` by default).
        board_power_w: per stage, the average power of one of its boards at ``rate_per_s`` (W).
    """

    plan: Plan
    replicas: tuple[int, ...]
    period_s: float
    objective: str = "throughput"
    stage_time: str = "send"
    rate_per_s: float = math.nan
    board_power_w: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.replicas) != len(self.plan.stages) or min(self.replicas, default=0) < 1:
            raise ConfigError(
                f"replicas must give a count >= 1 for each of the {len(self.plan.stages)} stages, "
                f"got {self.replicas}"
            )
        if self.objective not in REPLICATION_OBJECTIVES:
            raise ConfigError(
                f"unknown replication objective {self.objective!r} "
                f"(valid: {', '.join(REPLICATION_OBJECTIVES)})"
            )
        if self.stage_time not in STAGE_TIMES:
            raise ConfigError(
                f"unknown stage_time {self.stage_time!r} (valid: {', '.join(STAGE_TIMES)})"
            )
        if not self.period_s >= 0:
            raise ConfigError(f"period_s must be >= 0, got {self.period_s}")

    @property
    def boards(self) -> int:
        """Boards used, ``sum(replicas)``."""
        return sum(self.replicas)

    @property
    def placement(self) -> tuple[tuple[int, ...], ...]:
        """Stage s on consecutive boards (0-based), for ``PipelineConfig.placement``."""
        from tinysplit.partition.placement import identity_placement

        return identity_placement(len(self.replicas), self.replicas)

    @property
    def throughput_per_s(self) -> float:
        """Modelled steady throughput, ``1 / period_s`` (inferences per second)."""
        return 1.0 / self.period_s if self.period_s > 0 else math.inf


def replicate(
    source: Graph | Plan,
    boards: int,
    *,
    objective: str = "throughput",
    stages: int | None = None,
    profile: DeviceProfile | str = DEFAULT_PROFILE,
    transport: str = "ble",
    link_rate_bps: float | None = None,
    rate_per_s: float | None = None,
    stage_time: str = "send",
) -> ReplicatedPlan:
    """Choose cuts and replicas for ``boards`` boards (or replicas only, for a plan).

    Args:
        source: a graph (cuts and replicas are chosen together) or a plan (its cuts are kept;
            :func:`replicate_plan`).
        boards: physical boards available; at most this many are used.
        objective: ``throughput`` or ``energy`` (see the module docstring).
        stages: exact number of stages, or None for any number the boards allow (graph only).
        profile, transport, link_rate_bps: as for :func:`tinysplit.partition.partition` (graph
            only; a plan brings its own).
        rate_per_s: inference rate for :attr:`ReplicatedPlan.board_power_w`; ``1 / period_s``
            when None.
        stage_time: ``send`` or ``radio``, the stage time of the throughput objective.

    Raises:
        ConfigError: an unknown objective, stage time, transport or profile, a bad board count
            or rate.
        PartitionError: fewer boards than stages, a fixed stage count with no spare board, a
            model that fits no split on that many boards.
    """
    if isinstance(source, Plan):
        if stages is not None and stages != len(source.stages):
            raise ConfigError(f"stages={stages} but the plan has {len(source.stages)} stages")
        return replicate_plan(
            source, boards, objective=objective, rate_per_s=rate_per_s, stage_time=stage_time
        )
    _check(boards, objective, stage_time)
    if stages is not None:
        _enough(stages, boards)
        if stages == boards:
            raise _no_spare(stages, boards)
    rate = load_transport(transport).link_rate_bps if link_rate_bps is None else link_rate_bps
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
        raise ConfigError(f"link_rate_bps must be a positive number, got {link_rate_bps!r}")
    prof = load_profile(profile) if isinstance(profile, str) else profile
    problem = _Problem(source, MemoryModel(source, prof, transport), "bottleneck", float(rate))
    fewest = problem.min_devices()
    _enough(max(fewest, stages or 0), boards)
    seg = problem.segments
    if objective == "energy":
        costs = _segment_energy(problem, transport)
    else:
        costs = _segment_times(problem, stage_time)
    found = replicated_path(seg.subset(np.ones(len(costs), dtype=bool), costs), boards, stages)
    if found is None:
        raise problem.infeasible(stages if stages is not None else boards)
    path, replicas = found
    plan = problem.plan(path, strategy="optimal", objective="bottleneck", transport=transport)
    return _result(plan, replicas, objective, rate_per_s, stage_time)


def replicate_plan(
    plan: Plan,
    boards: int,
    *,
    objective: str = "throughput",
    replicas: Sequence[int] | None = None,
    rate_per_s: float | None = None,
    stage_time: str = "send",
) -> ReplicatedPlan:
    """Keep ``plan``'s cuts and give its stages the spare boards (or check given ``replicas``).

    Args:
        plan: the cuts, e.g. the paper's Table I split.
        boards: physical boards available (more than the plan's stages).
        objective: ``throughput`` or ``energy`` (see the module docstring).
        replicas: replica counts to use instead of searching (checked against ``boards``).
        rate_per_s: inference rate for :attr:`ReplicatedPlan.board_power_w`.
        stage_time: ``send`` or ``radio``, the stage time of the throughput objective.

    Raises:
        ConfigError: an unknown objective or stage time, a bad board count, rate or replicas.
        PartitionError: fewer boards than stages, no spare board, replicas needing more boards.
    """
    _check(boards, objective, stage_time)
    n = len(plan.stages)
    _enough(n, boards)
    if replicas is not None:
        counts = tuple(replicas)
        if len(counts) != n or any(
            isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in counts
        ):
            raise ConfigError(f"replicas must be {n} integers >= 1, one per stage, got {counts}")
        if sum(counts) > boards:
            raise PartitionError(
                f"replicas {counts} need {sum(counts)} boards but only {boards} are given: "
                f"no spare board for {sum(counts) - n} extra replica(s)"
            )
        return _result(plan, counts, objective, rate_per_s, stage_time)
    if n == boards:
        raise _no_spare(n, boards)
    costs = _plan_times(plan, stage_time) if objective == "throughput" else _plan_energy(plan)
    found = replica_counts(costs, boards)
    assert found is not None  # n <= boards was checked
    return _result(plan, found, objective, rate_per_s, stage_time)


def stage_energy_j(plan: Plan) -> tuple[float, ...]:
    """Per stage, ``e_s``: one board's energy above idle per inference (J; module docstring)."""
    return tuple(float(e) for e in _plan_energy(plan))


def _result(
    plan: Plan,
    replicas: Sequence[int],
    objective: str,
    rate_per_s: float | None,
    stage_time: str,
) -> ReplicatedPlan:
    times = _plan_times(plan, stage_time)
    counts = np.array(replicas, dtype=np.float64)
    period = float(np.max(times / counts))
    rate = (1.0 / period if period > 0 else math.inf) if rate_per_s is None else rate_per_s
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise ConfigError(f"rate_per_s must be a positive number, got {rate_per_s!r}")
    if period > 0 and rate > 1.0 / period * (1 + 1e-9):
        raise ConfigError(
            f"rate_per_s {rate:g}/s is more than the deployment sustains ({1.0 / period:g}/s)"
        )
    power = _power(plan.transport)
    idle_w = power.supply_v * power.idle_ma / 1000.0
    finite = math.isfinite(rate)
    per_board = _plan_energy(plan) / counts
    return ReplicatedPlan(
        plan=plan,
        replicas=tuple(int(r) for r in replicas),
        period_s=period,
        objective=objective,
        stage_time=stage_time,
        rate_per_s=float(rate),
        board_power_w=tuple(float(idle_w + rate * e) if finite else math.inf for e in per_board),
    )


def _check(boards: int, objective: str, stage_time: str) -> None:
    if stage_time not in STAGE_TIMES:
        raise ConfigError(f"unknown stage_time {stage_time!r} (valid: {', '.join(STAGE_TIMES)})")
    if objective not in REPLICATION_OBJECTIVES:
        raise ConfigError(
            f"unknown replication objective {objective!r} "
            f"(valid: {', '.join(REPLICATION_OBJECTIVES)})"
        )
    if isinstance(boards, bool) or not isinstance(boards, int) or boards < 1:
        raise ConfigError(f"boards must be a positive integer, got {boards!r}")


def _enough(stages: int, boards: int) -> None:
    if boards < stages:
        raise PartitionError(f"{stages} stages need at least {stages} boards, got {boards}")


def _no_spare(stages: int, boards: int) -> PartitionError:
    return PartitionError(
        f"replication needs spare boards: {stages} stages on {boards} boards leave none"
    )


def _power(transport: str) -> PowerModel:
    from tinysplit.sim.energy import PowerModel  # sim imports partition: import on use

    return PowerModel.for_transport(transport)


def _energy_j(
    transport: str, compute_s: FloatArray, send_s: FloatArray, receive_s: FloatArray
) -> FloatArray:
    """``e_s`` of the module docstring, vectorised (J)."""
    p = _power(transport)
    volts_per_ma = p.supply_v / 1000.0
    extra = (
        (p.inference_ma - p.cpu_idle_ma) * compute_s
        + max(p.tx_ma - p.idle_ma, 0.0) * send_s
        + max(p.rx_ma - p.idle_ma, 0.0) * receive_s
    )
    return np.asarray(volts_per_ma * extra, dtype=np.float64)


def _segment_parts(problem: _Problem) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Compute, send and receive seconds of every feasible segment of ``problem``."""
    seg, pos = problem.segments, problem.positions
    last = len(pos) - 1
    compute = problem.times[pos[seg.ends] + 1] - problem.times[pos[seg.starts] + 1]
    seconds_per_byte = 8.0 / problem.link_rate_bps
    send = _bytes(problem, seg.ends, seg.ends == last) * seconds_per_byte
    receive = _bytes(problem, seg.starts, seg.starts == 0) * seconds_per_byte
    return np.asarray(compute, dtype=np.float64), send, receive


def _segment_energy(problem: _Problem, transport: str) -> FloatArray:
    """``e_s`` of every feasible segment of ``problem``."""
    return _energy_j(transport, *_segment_parts(problem))


def _segment_times(problem: _Problem, stage_time: str) -> FloatArray:
    """``t_s`` of every feasible segment of ``problem`` (``send`` is the partitioner's cost)."""
    if stage_time == "send":
        return problem.segments.costs
    compute, send, receive = _segment_parts(problem)
    return np.maximum(compute, send + receive)


def _plan_times(plan: Plan, stage_time: str) -> FloatArray:
    """``t_s`` of every stage of ``plan``."""
    compute = np.array([s.estimated_compute_s for s in plan.stages], dtype=np.float64)
    send = np.array([s.estimated_send_s for s in plan.stages], dtype=np.float64)
    if stage_time == "send":
        return np.asarray(compute + send, dtype=np.float64)
    receive = np.concatenate(([0.0], send[:-1]))
    return np.asarray(np.maximum(compute, send + receive), dtype=np.float64)


def _bytes(problem: _Problem, at: IntArray, none: np.ndarray) -> FloatArray:
    """Tensor bytes crossing positions ``at`` (0 where ``none``: the model's start or end)."""
    inner = np.where(none, 0, at)
    sizes = problem.memory.boundary_bytes(problem.positions[inner]).astype(np.float64)
    return np.where(none, 0.0, sizes)


def _plan_energy(plan: Plan) -> FloatArray:
    """``e_s`` of every stage of ``plan``."""
    compute = np.array([s.estimated_compute_s for s in plan.stages])
    send = np.array([s.estimated_send_s for s in plan.stages])
    receive = np.concatenate(([0.0], send[:-1]))
    return _energy_j(plan.transport, compute, send, receive)
