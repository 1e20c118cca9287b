"""Replication: the replica DP against brute force, the paper's cuts plus spares, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.model import Graph
from tinysplit.partition.paper import table_i_plan
from tinysplit.partition.replication import (
    ReplicatedPlan,
    replicate,
    replicate_plan,
    stage_energy_j,
)
from tinysplit.partition.search import Segments, replica_counts, replicated_path
from tinysplit.sim.energy import PowerModel

Key = tuple[float, int, float, int]


@st.composite
def problems(draw: st.DrawFn) -> tuple[Segments, int, int | None]:
    """Random feasibility (not monotone), small costs (ties are common), a board count."""
    m = draw(st.integers(2, 7))
    feasible = np.array(draw(st.lists(st.booleans(), min_size=m * m, max_size=m * m)))
    costs = np.array(draw(st.lists(st.integers(0, 6), min_size=m * m, max_size=m * m)), float)
    boards = draw(st.integers(1, 5))
    stages = draw(st.one_of(st.none(), st.integers(1, m - 1)))
    seg = Segments.from_matrix(np.triu(feasible.reshape(m, m), k=1), costs.reshape(m, m))
    return seg, boards, stages


def key(costs: list[float], replicas: tuple[int, ...]) -> Key:
    """What replicated_path minimises, in order."""
    worst = max(c / r for c, r in zip(costs, replicas, strict=True))
    return (worst, sum(replicas), sum(costs), len(costs))


def brute(seg: Segments, boards: int, stages: int | None) -> Key | None:
    """The best key over every path and every replica vector that fits the boards."""
    m = seg.n_positions
    cost = {
        (int(s), int(e)): float(c) for s, e, c in zip(seg.starts, seg.ends, seg.costs, strict=True)
    }
    best: Key | None = None
    for k in range(1, m) if stages is None else [stages]:
        for inner in itertools.combinations(range(1, m - 1), k - 1):
            pairs = list(itertools.pairwise((0, *inner, m - 1)))
            if not all(p in cost for p in pairs):
                continue
            costs = [cost[p] for p in pairs]
            for replicas in itertools.product(range(1, boards + 1), repeat=k):
                if sum(replicas) <= boards:
                    value = key(costs, replicas)
                    best = value if best is None or value < best else best
    return best


@settings(max_examples=400, deadline=None)
@given(problems())
def test_replica_dp_equals_brute_force(problem: tuple[Segments, int, int | None]) -> None:
    seg, boards, stages = problem
    expected = brute(seg, boards, stages)
    found = replicated_path(seg, boards, stages)
    if expected is None:
        assert found is None
        return
    assert found is not None
    path, replicas = found
    cost = {
        (int(s), int(e)): float(c) for s, e, c in zip(seg.starts, seg.ends, seg.costs, strict=True)
    }
    pairs = list(itertools.pairwise(path))
    assert path[0] == 0 and path[-1] == seg.n_positions - 1
    assert all(p in cost for p in pairs) and min(replicas) >= 1
    assert stages is None or len(replicas) == stages
    assert key([cost[p] for p in pairs], replicas) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=4), st.integers(1, 7))
def test_fixed_cut_replicas_equal_brute_force(values: list[int], boards: int) -> None:
    costs = [v / 2 for v in values]
    options = [
        (max(c / r for c, r in zip(costs, reps, strict=True)), sum(reps))
        for reps in itertools.product(range(1, boards + 1), repeat=len(costs))
        if sum(reps) <= boards
    ]
    found = replica_counts(np.array(costs), boards)
    if not options:
        assert found is None
        return
    assert found is not None
    worst = max(c / r for c, r in zip(costs, found, strict=True))
    assert (worst, sum(found)) == min(options)


def test_paper_cuts_plus_spares_replicate_the_bottleneck() -> None:
    plan = table_i_plan()
    times = [s.estimated_compute_s + s.estimated_send_s for s in plan.stages]
    base = max(times)
    six = replicate_plan(plan, 6)
    assert six.replicas[int(np.argmax(times))] == 2 and six.boards == 6
    assert six.period_s < base and six.plan is plan
    radio = replicate_plan(plan, 7, stage_time="radio")
    # Stage 2 receives 392 KiB and sends 196 KiB on one radio: it gets the spares.
    assert radio.replicas == (1, 2, 1, 1, 1)
    assert radio.placement == ((0,), (1, 2), (3,), (4,), (5,))
    periods = [replicate_plan(plan, b).period_s for b in range(6, 11)]
    assert periods == sorted(periods, reverse=True)


def test_energy_objective_balances_board_power() -> None:
    plan = table_i_plan()
    energy = np.array(stage_energy_j(plan))
    p = PowerModel.for_transport("ble")
    first = plan.stages[0]
    expected = (
        p.supply_v
        / 1000
        * (
            (p.inference_ma - p.cpu_idle_ma) * first.estimated_compute_s
            + max(p.tx_ma - p.idle_ma, 0) * first.estimated_send_s
        )
    )
    assert energy[0] == pytest.approx(expected)  # stage 1 receives nothing over the radio
    balanced = replicate_plan(plan, 8, objective="energy", rate_per_s=0.02)
    fast = replicate_plan(plan, 8, rate_per_s=0.02)
    assert balanced.objective == "energy" and balanced.rate_per_s == 0.02
    assert max(balanced.board_power_w) <= max(fast.board_power_w)
    idle_w = p.supply_v * p.idle_ma / 1000
    for watts, e, r in zip(balanced.board_power_w, energy, balanced.replicas, strict=True):
        assert watts == pytest.approx(idle_w + 0.02 * e / r)


def test_dp_chooses_cuts_and_replicas_together(paper_graph: Graph) -> None:
    for boards in (5, 7):
        found = replicate(paper_graph, boards, profile="paper")
        assert found.boards <= boards and len(found.replicas) == len(found.plan.stages)
        times = [s.estimated_compute_s + s.estimated_send_s for s in found.plan.stages]
        assert found.period_s == pytest.approx(
            max(t / r for t, r in zip(times, found.replicas, strict=True))
        )
    five = replicate(paper_graph, 5, profile="paper", stages=4)
    assert len(five.plan.stages) == 4 and five.boards == 5
    more = replicate(paper_graph, 7, profile="paper")
    assert more.period_s <= replicate(paper_graph, 5, profile="paper").period_s
    # A plan keeps its cuts.
    plan = table_i_plan()
    assert replicate(plan, 6).plan is plan


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: replicate_plan(p, 4), PartitionError, "5 stages need at least 5 boards, got 4"),
        (lambda p: replicate_plan(p, 5), PartitionError, "replication needs spare boards"),
        (
            lambda p: replicate_plan(p, 5, replicas=(1, 2, 1, 1, 1)),
            PartitionError,
            "need 6 boards but only 5 are given",
        ),
        (lambda p: replicate_plan(p, 6, replicas=(1, 0, 1, 1, 1)), ConfigError, "integers >= 1"),
        (lambda p: replicate_plan(p, 6, objective="speed"), ConfigError, "unknown replication"),
        (lambda p: replicate_plan(p, 6, stage_time="air"), ConfigError, "unknown stage_time"),
        (lambda p: replicate_plan(p, 0), ConfigError, "boards must be a positive integer"),
        (lambda p: replicate_plan(p, 6, rate_per_s=10.0), ConfigError, "more than the deployment"),
    ],
)
def test_bad_input_is_one_clear_line(call: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        call(table_i_plan())  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_graph_errors(paper_graph: Graph) -> None:
    with pytest.raises(PartitionError, match="4 stages need at least 4 boards, got 3"):
        replicate(paper_graph, 3, profile="paper", stages=4)
    with pytest.raises(PartitionError, match="replication needs spare boards"):
        replicate(paper_graph, 4, profile="paper", stages=4)
    with pytest.raises(PartitionError, match="need at least"):
        replicate(paper_graph, 1, profile="paper")


def test_replicated_plan_validation() -> None:
    plan = table_i_plan()
    with pytest.raises(ConfigError, match="each of the 5 stages"):
        ReplicatedPlan(plan=plan, replicas=(1, 1), period_s=1.0)
    given = replicate_plan(plan, 7, replicas=(1, 2, 2, 1, 1))
    assert given.replicas == (1, 2, 2, 1, 1) and given.boards == 7
