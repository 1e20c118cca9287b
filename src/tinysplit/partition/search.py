"""Search over a chain of cut positions: exact min-max dynamic program and greedy fill.

The problem is abstract so it can be tested against brute force: positions ``0..m-1`` (0 is the
model start, ``m-1`` its end, the rest are valid cuts) and a list of feasible *segments*
``(start, end)``, each a possible stage with a cost. A split into ``k`` stages is a path
``0 = p_0 < p_1 < ... < p_k = m-1`` whose consecutive pairs are all feasible segments.

Feasibility is not assumed monotone (a sub-range of a feasible stage may start at a larger tensor),
so every segment is listed explicitly; callers bound the list with a monotone criterion (weights).
All loops over segments are vectorised with numpy; Python loops run over stages or positions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Segments:
    """Feasible stages between positions ``0..n_positions-1``, sorted by (end, start).

    Attributes:
        n_positions: number of positions ``m`` (at least 2).
        starts: start position of each segment.
        ends: end position of each segment (``starts < ends``).
        costs: cost of each segment (finite).
    """

    n_positions: int
    starts: IntArray
    ends: IntArray
    costs: FloatArray

    def __post_init__(self) -> None:
        if self.n_positions < 2:
            raise ValueError("a chain needs at least two positions (start and end)")
        if not (len(self.starts) == len(self.ends) == len(self.costs)):
            raise ValueError("starts, ends and costs must have equal lengths")
        if len(self.starts):
            if not (np.all(self.starts >= 0) and np.all(self.starts < self.ends)):
                raise ValueError("segments must satisfy 0 <= start < end")
            if self.ends[-1] >= self.n_positions:
                raise ValueError("segment end out of range")
            key = self.ends * self.n_positions + self.starts
            if np.any(np.diff(key) <= 0):
                raise ValueError("segments must be unique and sorted by (end, start)")
            if not np.all(np.isfinite(self.costs)):
                raise ValueError("segment costs must be finite")

    @classmethod
    def from_matrix(cls, feasible: BoolArray, costs: FloatArray) -> Segments:
        """Segments from dense ``m x m`` matrices indexed ``[start, end]`` (upper triangle used)."""
        m = feasible.shape[0]
        ends, starts = np.nonzero(np.triu(feasible, k=1).T)  # row-major over (end, start)
        return cls(
            n_positions=m,
            starts=starts.astype(np.int64),
            ends=ends.astype(np.int64),
            costs=costs[starts, ends].astype(np.float64),
        )

    def subset(self, keep: BoolArray, costs: FloatArray | None = None) -> Segments:
        """The segments where ``keep`` is true, optionally with new costs (one per segment)."""
        new_costs = self.costs if costs is None else np.asarray(costs, dtype=np.float64)
        return Segments(
            n_positions=self.n_positions,
            starts=self.starts[keep],
            ends=self.ends[keep],
            costs=new_costs[keep],
        )

    def covered(self) -> BoolArray:
        """``covered[j]``: whether some segment spans the gap between positions j and j+1."""
        diff = np.bincount(self.starts, minlength=self.n_positions) - np.bincount(
            self.ends, minlength=self.n_positions
        )
        return np.cumsum(diff)[:-1] > 0


def _group_heads(ends: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct end positions and the index where each one's run of segments begins."""
    heads = np.flatnonzero(np.concatenate(([True], ends[1:] != ends[:-1]))) if len(ends) else ends
    return ends[heads], heads.astype(np.int64)


def min_stages(seg: Segments) -> int | None:
    """Fewest stages that cover the chain, or ``None`` when no path exists."""
    m = seg.n_positions
    reach = np.zeros(m, dtype=bool)
    reach[0] = True
    for k in range(1, m):
        nxt = np.zeros(m, dtype=bool)
        nxt[seg.ends[reach[seg.starts]]] = True
        if nxt[m - 1]:
            return k
        if not nxt.any():
            return None
        reach = nxt
    return None


def minmax_value(seg: Segments, stages: int) -> float:
    """Smallest possible maximum segment cost over paths of exactly ``stages`` stages.

    Returns ``inf`` when no such path exists.
    """
    m = seg.n_positions
    targets, heads = _group_heads(seg.ends)
    f = np.full(m, np.inf)
    f[0] = 0.0
    for _ in range(stages):
        nxt = np.full(m, np.inf)
        if len(heads):
            nxt[targets] = np.minimum.reduceat(np.maximum(f[seg.starts], seg.costs), heads)
        f = nxt
    return float(f[m - 1])


def optimal_path(seg: Segments, stages: int) -> tuple[int, ...] | None:
    """Best path of exactly ``stages`` stages, or ``None`` if there is none.

    Minimises the largest segment cost first; among the paths that reach that minimum, minimises
    the sum of segment costs. Ties left after both are broken towards earlier cut positions.

    Returns:
        The positions ``(0, p_1, ..., m-1)``.
    """
    if stages < 1 or stages > seg.n_positions - 1:
        return None
    best_max = minmax_value(seg, stages)
    if not np.isfinite(best_max):
        return None
    keep = seg.costs <= best_max
    starts, ends, costs = seg.starts[keep], seg.ends[keep], seg.costs[keep]
    targets, heads = _group_heads(ends)
    m = seg.n_positions
    layers = [np.full(m, np.inf)]
    layers[0][0] = 0.0
    for _ in range(stages):
        nxt = np.full(m, np.inf)
        nxt[targets] = np.minimum.reduceat(layers[-1][starts] + costs, heads)
        layers.append(nxt)
    path = [m - 1]
    for k in range(stages, 0, -1):
        q = path[-1]
        lo, hi = np.searchsorted(ends, [q, q + 1])
        values = layers[k - 1][starts[lo:hi]] + costs[lo:hi]
        path.append(int(starts[lo + int(np.argmax(values == layers[k][q]))]))
    return tuple(reversed(path))


def _by_start(seg: Segments) -> tuple[IntArray, IntArray]:
    """Segment ends grouped by start (ascending ends within a group) and group offsets."""
    order = np.lexsort((seg.ends, seg.starts))
    offsets = np.searchsorted(seg.starts[order], np.arange(seg.n_positions + 1))
    return seg.ends[order], offsets.astype(np.int64)


def can_finish(seg: Segments, stages: int | None) -> list[BoolArray]:
    """Which positions can still reach the end.

    Returns:
        With ``stages=None``, one array: ``[fin]`` where ``fin[p]`` says some path of any length
        runs from ``p`` to the end. Otherwise ``stages + 1`` arrays, ``fin[j][p]`` saying a path of
        exactly ``j`` stages runs from ``p`` to the end.
    """
    m = seg.n_positions
    done = np.zeros(m, dtype=bool)
    done[m - 1] = True
    if stages is not None:
        fin = [done]
        for _ in range(stages):
            hits = np.bincount(seg.starts, weights=fin[-1][seg.ends], minlength=m)
            fin.append(hits > 0)
        return fin
    ends_by_start, offsets = _by_start(seg)
    for p in range(m - 2, -1, -1):
        done[p] = bool(done[ends_by_start[offsets[p] : offsets[p + 1]]].any())
    return [done]


def fill_path(seg: Segments, stages: int | None) -> tuple[int, ...] | None:
    """Greedy fill: each stage reaches as far as it can while the rest can still be covered.

    With ``stages=None`` the number of stages is whatever the fill needs; otherwise exactly
    ``stages`` (each stage then leaves enough positions for the stages after it).

    Returns:
        The positions ``(0, p_1, ..., m-1)``, or ``None`` if no path exists.
    """
    m = seg.n_positions
    if stages is not None and not 1 <= stages <= m - 1:
        return None
    fin = can_finish(seg, stages)
    ends_by_start, offsets = _by_start(seg)
    path = [0]
    while path[-1] != m - 1:
        used = len(path) - 1
        if stages is not None and used == stages:
            return None
        ok = fin[0] if stages is None else fin[stages - used - 1]
        reach = ends_by_start[offsets[path[-1]] : offsets[path[-1] + 1]]
        reach = reach[ok[reach]]
        if not len(reach):
            return None
        path.append(int(reach[-1]))
    return tuple(path)


def fewest_replicas(costs: FloatArray, value: float, boards: int) -> IntArray:
    """Per cost, the fewest replicas ``r`` (1..``boards``) with ``cost / r <= value``.

    Returns ``boards + 1`` where even ``boards`` replicas are not enough.
    """
    costs = np.asarray(costs, dtype=np.float64)
    if value <= 0.0:
        return np.where(costs <= 0.0, 1, boards + 1).astype(np.int64)
    r = np.maximum(np.ceil(costs / value), 1.0)
    r = np.where(costs / r > value, r + 1, r)  # float rounding either way
    r = np.where((r > 1) & (costs / np.maximum(r - 1, 1) <= value), r - 1, r)
    return np.minimum(r, boards + 1).astype(np.int64)


def replicated_path(
    seg: Segments, boards: int, stages: int | None = None
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Best path and replica counts on at most ``boards`` boards (replicas share a stage's cost).

    A stage of cost ``c`` on ``r`` boards costs ``c / r``. Minimises, in order: the largest
    ``c / r`` over the stages, the number of boards used (``sum r``), the sum of stage costs
    ``sum c``, the number of stages; ties left are broken towards earlier cut positions. With
    ``stages`` the path has exactly that many stages, otherwise any number up to ``boards``.

    Dynamic program over (stages so far, boards used, position), vectorised over segments.

    Returns:
        ``(positions, replicas)``: the path ``(0, p_1, ..., m-1)`` and one count per stage, or
        ``None`` when no path fits (no segments chain, or more stages than boards).
    """
    m = seg.n_positions
    most = min(boards, m - 1)
    counts = range(1, most + 1) if stages is None else [stages]
    if not counts or max(counts) > most or min(counts) < 1 or not len(seg.costs):
        return None
    starts, ends, costs = seg.starts, seg.ends, seg.costs
    targets, heads = _group_heads(ends)
    top = max(counts)
    # layers[k][u, p]: smallest largest c/r reaching position p in k stages on exactly u boards.
    f = np.full((boards + 1, m), np.inf)
    f[0, 0] = 0.0
    layers = [f]
    for _ in range(top):
        prev, nxt = layers[-1], np.full((boards + 1, m), np.inf)
        for r in range(1, boards + 1):
            cand = np.maximum(prev[: boards + 1 - r][:, starts], costs / r)
            red = np.minimum.reduceat(cand, heads, axis=1)
            nxt[r:, targets] = np.minimum(nxt[r:, targets], red)
        layers.append(nxt)
    ends_at = np.array([layers[k][:, m - 1] for k in counts])  # (len(counts), boards + 1)
    best = float(ends_at.min())
    if not np.isfinite(best):
        return None
    used = int(np.flatnonzero((ends_at <= best).any(axis=0))[0])
    # Among the splits reaching ``best`` on ``used`` boards: the smallest sum of stage costs.
    need = fewest_replicas(costs, best, boards)
    ok = need <= boards
    starts, ends, costs, need = starts[ok], ends[ok], costs[ok], need[ok]
    targets, heads = _group_heads(ends)
    g = np.full((used + 1, m), np.inf)
    g[0, 0] = 0.0
    sums = [g]
    for _ in range(top):
        prev, nxt = sums[-1], np.full((used + 1, m), np.inf)
        for u in range(1, used + 1):
            src = u - need
            vals = np.where(src >= 0, prev[np.maximum(src, 0), starts] + costs, np.inf)
            if len(heads):
                nxt[u, targets] = np.minimum.reduceat(vals, heads)
        sums.append(nxt)
    totals = [sums[k][used, m - 1] for k in counts]
    k = list(counts)[int(np.argmin(totals))]  # the first minimum: the fewest stages
    if not np.isfinite(sums[k][used, m - 1]):
        return None
    path, replicas, u = [m - 1], [], used
    for j in range(k, 0, -1):
        q = path[-1]
        lo, hi = np.searchsorted(ends, [q, q + 1])
        src = u - need[lo:hi]
        prev = sums[j - 1]
        vals = np.where(src >= 0, prev[np.maximum(src, 0), starts[lo:hi]] + costs[lo:hi], np.inf)
        pick = lo + int(np.argmax(vals == sums[j][u, q]))
        path.append(int(starts[pick]))
        replicas.append(int(need[pick]))
        u -= int(need[pick])
    return tuple(reversed(path)), tuple(reversed(replicas))


def replica_counts(costs: FloatArray, boards: int) -> tuple[int, ...] | None:
    """Replica counts for fixed stages of ``costs`` on at most ``boards`` boards.

    Minimises the largest ``cost / r``, then the boards used; ``None`` when there are more stages
    than boards. Exact: the optimum is one of the values ``cost / r``, and for each the fewest
    replicas are known (:func:`fewest_replicas`).
    """
    costs = np.asarray(costs, dtype=np.float64)
    if len(costs) == 0 or len(costs) > boards:
        return None
    candidates = np.unique(np.concatenate([costs / r for r in range(1, boards + 1)]))
    for value in candidates:  # ascending: the first that fits is the smallest maximum
        need = fewest_replicas(costs, float(value), boards)
        if int(need.sum()) <= boards:
            return tuple(int(r) for r in need)
    return None  # unreachable: the largest candidate fits with one board per stage
