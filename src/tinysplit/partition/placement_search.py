"""The searches behind :func:`tinysplit.partition.placement.solve`: the exact chain DP, the exact
branch and bound with replicas, and the greedy + local-search heuristic (algorithms in the
placement module's docstring and ``docs/placement.md``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from tinysplit.partition.deployment import PlacementT
from tinysplit.partition.period import FloatArray, IntArray, pair_weights, slot_loads

#: Random restarts of the heuristic's local search (besides the greedy start).
RESTARTS = 8
#: Relative tolerance when comparing periods (float noise must not count as improvement).
_RTOL = 1e-12


class Problem:
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
