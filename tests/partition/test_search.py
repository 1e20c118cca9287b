"""The search core against brute force over every cut subset (cost-array level)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinysplit.partition.search import (
    Segments,
    fill_path,
    min_stages,
    minmax_value,
    optimal_path,
)


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Random feasibility (not monotone) and small integer costs, so ties are common."""
    m = draw(st.integers(2, 8))
    feasible = np.array(draw(st.lists(st.booleans(), min_size=m * m, max_size=m * m))).reshape(m, m)
    costs = np.array(draw(st.lists(st.integers(0, 5), min_size=m * m, max_size=m * m)), dtype=float)
    costs = costs.reshape(m, m)
    return np.triu(feasible, k=1), costs


def all_paths(m: int, stages: int) -> Iterator[tuple[int, ...]]:
    for inner in itertools.combinations(range(1, m - 1), stages - 1):
        yield (0, *inner, m - 1)


def brute(feasible: np.ndarray, costs: np.ndarray, stages: int) -> tuple[float, float] | None:
    """Lexicographic (max cost, sum of costs) over every feasible path, or None."""
    best = None
    for path in all_paths(feasible.shape[0], stages):
        pairs = list(itertools.pairwise(path))
        if all(feasible[p, q] for p, q in pairs):
            value = (max(costs[p, q] for p, q in pairs), sum(costs[p, q] for p, q in pairs))
            best = value if best is None else min(best, value)
    return best


def check_path(feasible: np.ndarray, path: tuple[int, ...], stages: int) -> None:
    assert path[0] == 0
    assert path[-1] == feasible.shape[0] - 1
    assert len(path) == stages + 1
    assert all(feasible[p, q] for p, q in itertools.pairwise(path))


@settings(max_examples=300, deadline=None)
@given(problems())
def test_dp_equals_brute_force(problem: tuple[np.ndarray, np.ndarray]) -> None:
    feasible, costs = problem
    m = feasible.shape[0]
    seg = Segments.from_matrix(feasible, costs)
    fewest = None
    for stages in range(1, m):
        expected = brute(feasible, costs, stages)
        path = optimal_path(seg, stages)
        if expected is None:
            assert path is None
            assert minmax_value(seg, stages) == np.inf
            continue
        fewest = fewest or stages
        assert path is not None
        check_path(feasible, path, stages)
        pairs = list(itertools.pairwise(path))
        got = (max(costs[p, q] for p, q in pairs), sum(costs[p, q] for p, q in pairs))
        assert got == expected
        assert minmax_value(seg, stages) == expected[0]
    assert min_stages(seg) == fewest


@settings(max_examples=300, deadline=None)
@given(problems(), st.data())
def test_fill_takes_the_furthest_completable_reach(
    problem: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    feasible, costs = problem
    m = feasible.shape[0]
    seg = Segments.from_matrix(feasible, costs)
    stages = data.draw(st.none() | st.integers(1, m - 1))
    path = fill_path(seg, stages)
    counts = range(1, m) if stages is None else [stages]
    completions = {
        p
        for k in counts
        for p in all_paths(m, k)
        if all(feasible[a, b] for a, b in itertools.pairwise(p))
    }
    if not completions:
        assert path is None
        return
    assert path is not None
    check_path(feasible, path, len(path) - 1)
    # the fill is the lexicographically largest feasible path (each stage reaches furthest first)
    assert path == max(completions)


def test_segments_validation() -> None:
    one = np.array([0])
    with pytest.raises(ValueError, match="at least two"):
        Segments(n_positions=1, starts=one, ends=one, costs=np.array([0.0]))
    with pytest.raises(ValueError, match="start < end"):
        Segments(n_positions=3, starts=np.array([1]), ends=np.array([1]), costs=np.array([0.0]))
    with pytest.raises(ValueError, match="sorted"):
        Segments(n_positions=3, starts=np.array([1, 0]), ends=np.array([2, 1]), costs=np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        Segments(n_positions=2, starts=one, ends=np.array([1]), costs=np.array([np.inf]))


def test_covered_gaps() -> None:
    feasible = np.zeros((4, 4), dtype=bool)
    feasible[0, 2] = feasible[2, 3] = True
    seg = Segments.from_matrix(feasible, np.zeros((4, 4)))
    assert seg.covered().tolist() == [True, True, True]
    feasible[2, 3] = False
    assert Segments.from_matrix(feasible, np.zeros((4, 4))).covered().tolist() == [
        True,
        True,
        False,
    ]
