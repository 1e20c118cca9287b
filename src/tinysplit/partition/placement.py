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

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.partition.period import (
    SHARED_CHANNEL,
    FloatArray,
    IntArray,
    PlacementT,
    boundary_times_s,
    compute_times_s,
    pair_weights,
    slot_loads,
)

if TYPE_CHECKING:
    from tinysplit.links.base import Mode
    from tinysplit.partition.plan import Plan
    from tinysplit.partition.rssi import RssiMatrix

#: Placement methods: ``auto`` picks ``exact`` up to this many boards, ``heuristic`` beyond.
METHODS = ("auto", "exact", "heuristic")
EXACT_MAX_BOARDS = 10
#: Most boards ``method="exact"`` accepts (the chain DP holds 2^B x B x B values).
EXACT_LIMIT = 14
#: Random restarts of the heuristic's local search (besides the greedy start).
RESTARTS = 8
#: Relative tolerance when comparing periods (float noise must not count as improvement).
_RTOL = 1e-12


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
        used = [b for group in self.boards for b in group]
        if not self.boards or any(not group for group in self.boards):
            raise ConfigError("a placement needs at least one board per stage")
        if any(b < 0 for b in used) or len(set(used)) != len(used):
            raise ConfigError(f"placement boards must be distinct and >= 0, got {used}")
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
    problem = _Problem(compute, times, counts, shared_channel, boards)
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


class _Problem:
    """One placement instance: costs, replicas and the searches over it."""

    def __init__(
        self,
        compute: FloatArray,
        times: FloatArray,
        replicas: tuple[int, ...],
        shared: bool,
        boards: int,
    ) -> None:
        self.compute, self.times, self.replicas = compute, times, replicas
        self.shared, self.boards = shared, boards
        self.stages = len(replicas)
        self.starts = np.concatenate([[0], np.cumsum(replicas)]).astype(int)
        self.slots = int(self.starts[-1])
        self.base = float(max(c / r for c, r in zip(compute, replicas, strict=True)))
        finite = [t[~np.eye(boards, dtype=bool)] for t in times]
        self.min_t = np.array([float(f.min()) if f.size else math.inf for f in finite])

    def groups(self, assign: IntArray) -> PlacementT:
        return tuple(
            tuple(int(b) for b in assign[self.starts[s] : self.starts[s + 1]])
            for s in range(self.stages)
        )

    def evaluate(self, assign: IntArray) -> tuple[FloatArray, FloatArray]:
        """(period, summed board loads) of each row of ``assign`` (N, slots)."""
        compute, receive, send, channel = slot_loads(
            self.compute, self.times, self.replicas, assign
        )
        if self.shared:
            total = channel.sum(axis=1)
            return np.maximum(self.base, total), total
        loads = np.maximum(compute[None, :], receive + send)
        with np.errstate(invalid="ignore"):
            return loads.max(axis=1), loads.sum(axis=1)

    # ------------------------------------------------------------------ exact: chain DP

    def chain_dp(self) -> tuple[IntArray, float]:
        """Exact placement of a chain (one board per stage) by bitmask DP."""
        return self._dp_shared() if self.shared else self._dp_radio()

    def _dp_shared(self) -> tuple[IntArray, float]:
        n, t = self.boards, self.times
        full = 1 << n
        value = np.full((full, n), math.inf)
        value[1 << np.arange(n), np.arange(n)] = 0.0
        parents = []
        for s in range(self.stages - 1):
            new = np.full((full, n), math.inf)
            parent = np.zeros((full, n), dtype=np.int8)
            for nxt in range(n):
                masks = _masks_without(n, nxt)
                cand = value[masks] + t[s][:, nxt][None, :]  # (masks, last)
                best = cand.argmin(axis=1)
                new[masks | (1 << nxt), nxt] = cand[np.arange(len(masks)), best]
                parent[masks | (1 << nxt), nxt] = best
            value = new
            parents.append(parent)
        mask, last = (int(v) for v in np.unravel_index(int(value.argmin()), value.shape))
        total = float(value[mask, last])
        boards = [last]
        for parent in reversed(parents):
            prev = int(parent[mask, last])
            mask ^= 1 << last
            boards.append(prev)
            last = prev
        return np.array(boards[::-1], dtype=np.int64), max(self.base, total)

    def _dp_radio(self) -> tuple[IntArray, float]:
        n, t, c = self.boards, self.times, self.compute
        full = 1 << n
        # value[mask, prev, last]: the largest load among the stages before ``last``.
        value = np.full((full, n, n), math.inf)
        a, b = np.nonzero(~np.eye(n, dtype=bool))
        value[(1 << a) | (1 << b), a, b] = np.maximum(c[0], t[0][a, b])
        parents = []
        for s in range(1, self.stages - 1):  # place stage s + 1; stage s's load is now known
            new = np.full((full, n, n), math.inf)
            parent = np.zeros((full, n, n), dtype=np.int8)
            for nxt in range(n):
                masks = _masks_without(n, nxt)
                load = t[s - 1] + t[s][:, nxt][None, :]  # (prev, last)
                cand = np.maximum(value[masks], np.maximum(load, c[s])[None])  # (m, prev, last)
                best = cand.argmin(axis=1)  # (m, last)
                rows = np.arange(len(masks))[:, None]
                new[masks | (1 << nxt), :, nxt] = cand[rows, best, np.arange(n)[None, :]]
                parent[masks | (1 << nxt), :, nxt] = best
            value = new
            parents.append(parent)
        last_load = np.maximum(t[self.stages - 2], c[self.stages - 1])
        total = np.maximum(value, last_load[None])
        mask, prev, last = (int(v) for v in np.unravel_index(int(total.argmin()), total.shape))
        period = float(total[mask, prev, last])
        boards = [last, prev]
        for parent in reversed(parents):
            before = int(parent[mask, prev, last])
            mask ^= 1 << last
            boards.append(before)
            prev, last = before, prev
        return np.array(boards[::-1], dtype=np.int64), max(self.base, period)

    # ------------------------------------------------------ exact: branch and bound

    def branch_and_bound(self, start: IntArray, start_value: float) -> tuple[IntArray, float]:
        """Exact placement with replicas, starting from a known assignment and its period."""
        self._best = (start.copy(), float(start_value))
        stages = self.stages
        if self.shared:
            # Cheapest remaining airtime from boundary s on.
            self._future = np.concatenate([np.cumsum(self.min_t[::-1])[::-1], [0.0]])
        else:
            stage_lb = np.array(
                [
                    (
                        (self.min_t[s - 1] if s > 0 else 0.0)
                        + (self.min_t[s] if s < stages - 1 else 0.0)
                    )
                    / self.replicas[s]
                    for s in range(stages)
                ]
            )
            self._future = np.concatenate([np.maximum.accumulate(stage_lb[::-1])[::-1], [0.0]])
        self._ordered = [self._order_matters(s) for s in range(stages)]
        if max(self.base, float(self._future[0])) >= self._best[1] * (1 - _RTOL):
            return self._best  # the start already meets the lower bound
        for first in self._tuples(0, frozenset()):
            self._search(1, [first], np.zeros(len(first)), 0.0)
        return self._best

    def _order_matters(self, s: int) -> bool:
        """Whether the round-robin order of stage ``s``'s replicas changes any pairing."""
        r = self.replicas[s]
        nbrs = [self.replicas[t] for t in (s - 1, s + 1) if 0 <= t < self.stages]
        return r > 1 and any(math.gcd(r, q) > 1 for q in nbrs)

    def _tuples(self, s: int, used: frozenset[int]) -> Iterator[tuple[int, ...]]:
        free = [b for b in range(self.boards) if b not in used]
        r = self.replicas[s]
        if self._ordered[s]:
            return itertools.permutations(free, r)
        return itertools.combinations(free, r)

    def _search(
        self, s: int, placed: list[tuple[int, ...]], prev_in: FloatArray, fixed: float
    ) -> None:
        """Place stage ``s`` given stages ``0..s-1`` (``prev_in``: incoming radio load of
        stage ``s-1``'s boards; ``fixed``: the largest final load so far, or the airtime so far
        on a shared channel)."""
        used = frozenset(b for g in placed for b in g)
        cands = np.array(list(self._tuples(s, used)), dtype=np.int64)
        if cands.size == 0:
            return
        prev = np.array(placed[-1], dtype=np.int64)
        w = pair_weights(self.replicas[s - 1], self.replicas[s])
        t = self.times[s - 1][prev[None, :, None], cands[:, None, :]]  # (K, r_prev, r)
        with np.errstate(invalid="ignore"):
            cost = np.where(w > 0, t * w, 0.0)
        incoming = cost.sum(axis=1)  # (K, r)
        last = s == self.stages - 1
        if self.shared:
            airtime = fixed + cost.sum(axis=(1, 2))
            done = np.maximum(self.base, airtime)
            bound = done if last else np.maximum(self.base, airtime + self._future[s])
        else:
            c_prev = self.compute[s - 1] / self.replicas[s - 1]
            prev_load = np.maximum(c_prev, prev_in[None, :] + cost.sum(axis=2)).max(axis=1)
            airtime = np.maximum(fixed, prev_load)  # the largest final load so far
            c_here = self.compute[s] / self.replicas[s]
            if last:
                bound = np.maximum(airtime, np.maximum(c_here, incoming).max(axis=1))
            else:
                own = (incoming + self.min_t[s] / self.replicas[s]).max(axis=1)
                rest = max(self.base, float(self._future[s + 1]))
                bound = np.maximum(np.maximum(airtime, own), rest)
        for k in np.argsort(bound, kind="stable"):
            if bound[k] >= self._best[1] * (1 - _RTOL):
                return
            if last:
                groups = [*placed, tuple(int(b) for b in cands[k])]
                assign = np.array([b for g in groups for b in g], dtype=np.int64)
                self._best = (assign, float(bound[k]))
                continue
            self._search(
                s + 1,
                [*placed, tuple(int(b) for b in cands[k])],
                incoming[k],
                float(airtime[k]),
            )

    # ------------------------------------------------------------------ heuristic

    def heuristic(self, rng: np.random.Generator) -> tuple[IntArray, float]:
        """Greedy start + local search, then seeded random restarts; the best found."""
        starts = [self._greedy()]
        for _ in range(RESTARTS):
            starts.append(rng.permutation(self.boards)[: self.slots].astype(np.int64))
        best, best_key = starts[0], (math.inf, math.inf)
        for start in starts:
            assign, key = self._local_search(start)
            if _better(key, best_key):
                best, best_key = assign, key
        return best, best_key[0]

    def _greedy(self) -> IntArray:
        """Slowest boundary first; its slot pairs onto the fastest free boards."""
        assign = np.full(self.slots, -1, dtype=np.int64)
        finite = [t[np.isfinite(t)] for t in self.times]
        weight = [float(np.median(f)) if f.size else math.inf for f in finite]
        for s in sorted(range(self.stages - 1), key=lambda k: -weight[k]):
            w = pair_weights(self.replicas[s], self.replicas[s + 1])
            for j, k in sorted(np.ndindex(*w.shape), key=lambda jk: -w[jk]):
                if w[j, k] == 0:
                    continue
                sj, sk = self.starts[s] + j, self.starts[s + 1] + k
                free = np.setdiff1d(np.arange(self.boards), assign[assign >= 0])
                if assign[sj] < 0 and assign[sk] < 0:
                    cost = (
                        self.times[s][np.ix_(free, free)]
                        + self._slot_cost(assign, sj, free)[:, None]
                        + self._slot_cost(assign, sk, free)[None, :]
                    )
                    a, b = np.unravel_index(int(np.argmin(cost)), cost.shape)
                    assign[sj], assign[sk] = free[a], free[b]
                elif assign[sj] < 0 or assign[sk] < 0:
                    slot = sj if assign[sj] < 0 else sk
                    assign[slot] = free[int(np.argmin(self._slot_cost(assign, slot, free)))]
        return assign

    def _slot_cost(self, assign: IntArray, slot: int, free: IntArray) -> FloatArray:
        """Transfer time between each free board in ``slot`` and the assigned neighbours."""
        s = int(np.searchsorted(self.starts, slot, side="right") - 1)
        j = slot - self.starts[s]
        cost = np.zeros(len(free))
        for other, forward in ((s - 1, False), (s + 1, True)):
            if not 0 <= other < self.stages:
                continue
            lo = self.starts[other]
            for k in range(self.replicas[other]):
                board = assign[lo + k]
                if board < 0:
                    continue
                if forward:
                    wt = pair_weights(self.replicas[s], self.replicas[other])[j, k]
                    t = self.times[s][free, board]
                else:
                    wt = pair_weights(self.replicas[other], self.replicas[s])[k, j]
                    t = self.times[other][board, free]
                if wt > 0:
                    cost += wt * t
        return cost

    def _local_search(self, start: IntArray) -> tuple[IntArray, tuple[float, float]]:
        """Best-neighbour descent over swaps of two placed boards and moves onto spares."""
        current = start.copy()
        period, total = self.evaluate(current[None])
        key = (float(period[0]), float(total[0]))
        swaps = list(itertools.combinations(range(self.slots), 2))
        while True:
            spares = np.setdiff1d(np.arange(self.boards), current)
            batch = np.tile(current, (len(swaps) + self.slots * len(spares), 1))
            for n, (i, j) in enumerate(swaps):
                batch[n, i], batch[n, j] = current[j], current[i]
            n = len(swaps)
            for i in range(self.slots):
                batch[n : n + len(spares), i] = spares
                n += len(spares)
            if len(batch) == 0:
                return current, key
            periods, totals = self.evaluate(batch)
            order = np.lexsort((totals, periods))
            k = int(order[0])
            cand = (float(periods[k]), float(totals[k]))
            if not _better(cand, key):
                return current, key
            current, key = batch[k].copy(), cand


def _better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Lexicographically smaller beyond float noise."""
    if a[0] < b[0] * (1 - _RTOL):
        return True
    if a[0] > b[0] * (1 + _RTOL) or math.isinf(a[0]):
        return False
    return a[1] < b[1] * (1 - _RTOL)


def _masks_without(n: int, bit: int) -> IntArray:
    """Every bitmask over ``n`` boards without ``bit``."""
    masks = np.arange(1 << n, dtype=np.int64)
    return np.asarray(masks[(masks >> bit) & 1 == 0], dtype=np.int64)
