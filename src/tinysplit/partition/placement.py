"""Placement by signal strength: which physical board runs each stage (and each replica).

Minimises the steady-state period of :mod:`tinysplit.partition.period` over every assignment of
the plan's stage replicas to distinct boards (spare boards may stay unused):

* **exact** (``method="exact"``; ``auto`` for up to :data:`EXACT_MAX_BOARDS` boards):

  - a chain without replicas: dynamic programming over (set of boards used, last board) in stage
    order, numpy-vectorised over the bitmasks. Wi-Fi / ESP-NOW minimise the summed airtime, so
    the state is (set, last board). BLE minimises the largest board load, and a board's load
    needs its incoming *and* outgoing link, so the state is (set, previous board, last board);
  - with replicas: branch and bound over the stages in order, each stage's candidate replica
    tuples scored in one numpy batch, visited best bound first and pruned against the best
    period found (started from the heuristic's). The bound adds, to what is already fixed, the
    cheapest link of every boundary still open.

* **heuristic** (``auto`` beyond :data:`EXACT_MAX_BOARDS` boards): greedy construction -- the
  boundary with the slowest transfers first, its replicas onto the fastest free pair of boards --
  then local search (swap two placed boards, move a placed board onto a spare one) taking the best
  neighbour until none improves the (period, summed board loads) pair; repeated from a few seeded
  random starts, keeping the best. Its gap to exact is measured in ``tests/partition/
  test_placement.py`` and stated in ``docs/placement.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.partition.deployment import PlacementT, check_boards
from tinysplit.partition.period import (
    SHARED_CHANNEL,
    FloatArray,
    boundary_times_s,
    compute_times_s,
)
from tinysplit.partition.placement_search import Problem

if TYPE_CHECKING:
    from tinysplit.links.base import Mode
    from tinysplit.partition.plan import Plan
    from tinysplit.partition.rssi import RssiMatrix

#: Placement methods: ``auto`` picks ``exact`` up to this many boards, ``heuristic`` beyond.
METHODS = ("auto", "exact", "heuristic")
EXACT_MAX_BOARDS = 10
#: Most boards ``method="exact"`` accepts (the chain DP holds 2^B x B x B values).
EXACT_LIMIT = 14


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Boards chosen for every stage.

    Attributes:
        boards: per stage, the 0-based physical boards running it (replicas in round-robin
            order).
        period_s: modelled steady-state seconds per inference (:mod:`tinysplit.partition.period`).
        method: ``exact``, ``heuristic`` or ``identity``.
    """

    boards: PlacementT
    period_s: float
    method: str

    def __post_init__(self) -> None:
        check_boards(self.boards)
        if not self.period_s >= 0:
            raise ConfigError(f"period_s must be >= 0, got {self.period_s}")
        if self.method not in ("exact", "heuristic", "identity"):
            raise ConfigError(f"unknown placement method {self.method!r}")

    @property
    def replicas(self) -> tuple[int, ...]:
        """Boards per stage."""
        return tuple(len(g) for g in self.boards)

    @property
    def throughput_per_s(self) -> float:
        """Modelled inferences per second."""
        return 1.0 / self.period_s if self.period_s > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "boards": [list(g) for g in self.boards],
            "period_s": self.period_s,
            "throughput_per_s": self.throughput_per_s,
            "method": self.method,
        }


def identity_placement(stages: int, replicas: Sequence[int] | None = None) -> PlacementT:
    """Stage k on board k, or with replicas, each stage on the next consecutive boards."""
    counts = _replicas(stages, replicas)
    out, first = [], 0
    for r in counts:
        out.append(tuple(range(first, first + r)))
        first += r
    return tuple(out)


def place(
    plan: Plan,
    rssi: RssiMatrix,
    *,
    transport: str,
    profile: str | None = None,
    window: int | Sequence[int] = 6,
    mode: Mode | str = "reliable",
    replicas: Sequence[int] | None = None,
    method: str = "auto",
    ap_board: int = 0,
    dual_core: bool = False,
) -> Placement:
    """Assign the stages of ``plan`` (and their replicas) to the boards of ``rssi``.

    Args:
        plan: the stages (compute estimates, outgoing tensor sizes).
        rssi: the boards and their pairwise RSSI.
        transport: ``ble``, ``wifi`` or ``espnow``.
        profile: link calibration profile (the transport's default when None).
        window: one window, or one per stage boundary.
        mode: ``reliable`` or ``paper``.
        replicas: boards per stage (None: one each).
        method: ``auto`` (exact up to 10 boards), ``exact`` or ``heuristic``.
        ap_board: Wi-Fi only: the 0-based board running the SoftAP (it relays links between two
            stations, whether or not it runs a stage).
        dual_core: ESP-DL runs on both cores.

    Raises:
        PartitionError: more stage replicas than boards, bad replicas, or no assignment whose
            links can all carry their tensors (missing links).
        ConfigError: unknown method, transport, profile, bad windows or AP board.
    """
    stages = len(plan.stages)
    counts = _replicas(stages, replicas)
    sizes = [s.outgoing.size_bytes for s in plan.stages[:-1]]
    if sum(counts) > rssi.boards:
        raise PartitionError(
            f"{sum(counts)} stage replicas need {sum(counts)} boards, the RSSI matrix has "
            f"{rssi.boards}"
        )
    times = boundary_times_s(
        sizes,
        rssi,
        transport=transport,
        profile=profile,
        windows=window,
        mode=mode,
        ap_board=ap_board,
    )
    compute = compute_times_s(plan, dual_core=dual_core)
    return solve(compute, times, counts, shared_channel=transport in SHARED_CHANNEL, method=method)


def solve(
    compute_s: Sequence[float] | FloatArray,
    times_s: FloatArray,
    replicas: Sequence[int] | None = None,
    *,
    shared_channel: bool,
    method: str = "auto",
    seed: int = 0,
) -> Placement:
    """:func:`place` on precomputed costs (for optimisers that try many cuts).

    Args:
        compute_s: per stage, compute seconds per inference on one board.
        times_s: ``(stages - 1, B, B)`` transfer seconds
            (:func:`tinysplit.partition.period.boundary_times_s`; inf = unusable link).
        replicas: boards per stage (None: one each).
        shared_channel: Wi-Fi / ESP-NOW cost model (else BLE's).
        method: ``auto``, ``exact`` or ``heuristic``.
        seed: seed of the heuristic's random restarts.

    Raises:
        PartitionError: more replicas than boards, or every assignment needs a missing link.
        ConfigError: unknown method or inconsistent shapes.
    """
    compute = np.asarray(compute_s, dtype=np.float64)
    stages = len(compute)
    counts = _replicas(stages, replicas)
    times = np.asarray(times_s, dtype=np.float64)
    if times.ndim != 3 or times.shape[0] != stages - 1 or times.shape[1] != times.shape[2]:
        raise ConfigError(
            f"times_s must be ({stages - 1}, B, B) for {stages} stages, got {times.shape}"
        )
    boards = times.shape[1]
    if sum(counts) > boards:
        raise PartitionError(
            f"{sum(counts)} stage replicas need {sum(counts)} boards, there are {boards}"
        )
    if method not in METHODS:
        raise ConfigError(f"unknown placement method {method!r} (valid: {', '.join(METHODS)})")
    exact = method == "exact" or (method == "auto" and boards <= EXACT_MAX_BOARDS)
    if exact and boards > EXACT_LIMIT:
        raise ConfigError(
            f"exact placement handles at most {EXACT_LIMIT} boards, got {boards}: use "
            "method='heuristic' (or 'auto')"
        )
    problem = Problem(compute, times, counts, shared_channel, boards)
    if stages == 1:
        assign, value = np.arange(counts[0]), float(compute[0] / counts[0])
    elif not exact:
        assign, value = problem.heuristic(np.random.default_rng(seed))
    elif all(r == 1 for r in counts):
        assign, value = problem.chain_dp()
    else:
        assign, value = problem.branch_and_bound(*problem.heuristic(np.random.default_rng(seed)))
    if math.isinf(value):
        raise PartitionError(
            f"no placement of {stages} stages on {boards} boards has a usable link at every "
            "stage boundary: missing (or too weak) links needed by every assignment"
        )
    return Placement(
        boards=problem.groups(assign), period_s=value, method="exact" if exact else "heuristic"
    )


def _replicas(stages: int, replicas: Sequence[int] | None) -> tuple[int, ...]:
    if stages < 1:
        raise PartitionError("a plan needs at least one stage")
    counts = (1,) * stages if replicas is None else tuple(replicas)
    if len(counts) != stages:
        raise PartitionError(f"{len(counts)} replica counts for {stages} stages")
    if any(isinstance(r, bool) or not isinstance(r, int | np.integer) or r < 1 for r in counts):
        raise PartitionError(f"replica counts must be integers >= 1, got {list(counts)}")
    return tuple(int(r) for r in counts)
