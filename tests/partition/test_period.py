"""The period model against the simulator, and its per-board breakdown."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.links.estimate import link_time_s
from tinysplit.model import Graph
from tinysplit.partition import Plan, partition
from tinysplit.partition.period import (
    breakdown_from_times,
    compute_times_s,
    pair_weights,
    period_breakdown,
    period_s,
)
from tinysplit.partition.rssi import RssiMatrix
from tinysplit.sim.metrics import completion_times, summarize
from tinysplit.sim.pipeline import PipelineConfig, simulate

PAPER_RSSI = (-66.0, -76.0, -71.0, -60.0)
WEAK_RSSI = (-84.0, -88.0, -80.0, -86.0)
CHAIN = ((0,), (1,), (2,), (3,), (4,))


@pytest.fixture(scope="module")
def paper_plan(paper_graph: Graph) -> Plan:
    return partition(paper_graph, strategy="paper", devices=5, profile="paper")


def _chain_matrix(rssi: tuple[float, ...]) -> RssiMatrix:
    n = len(rssi) + 1
    raw = np.full((n, n), math.nan)
    for k, r in enumerate(rssi):
        raw[k, k + 1] = raw[k + 1, k] = r
    return RssiMatrix.from_array(raw)


def _steady_period_s(result: object, skip: int) -> float:
    """Mean seconds between results once the pipeline is full and before it drains (a mean
    rather than the median gap: replicas deliver their results in bursts)."""
    done = completion_times(result)  # type: ignore[arg-type]
    return (done[-1 - skip] - done[skip]) / (len(done) - 1 - 2 * skip)


def test_pair_weights() -> None:
    assert pair_weights(1, 3).tolist() == [[1 / 3] * 3]
    np.testing.assert_allclose(pair_weights(2, 3), np.full((2, 3), 1 / 6))  # coprime: uniform
    np.testing.assert_allclose(pair_weights(2, 2), np.eye(2) / 2)  # equal: replica j -> j
    for r1, r2 in [(2, 4), (3, 6), (4, 6), (5, 5)]:
        w = pair_weights(r1, r2)
        assert w.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(w.sum(axis=1), 1 / r1)  # each sender gets its share
        np.testing.assert_allclose(w.sum(axis=0), 1 / r2)


@pytest.mark.parametrize("transport", ["ble", "wifi", "espnow"])
@pytest.mark.parametrize("rssi", [PAPER_RSSI, WEAK_RSSI], ids=["paper", "weak"])
def test_matches_the_simulator(paper_plan: Plan, transport: str, rssi: tuple[float, ...]) -> None:
    """1 / period is the simulator's steady-state throughput within 3 % (measured: < 0.5 %)."""
    # The simulator's per-link RSSI relays Wi-Fi links beyond board 1 (the AP) at that RSSI on
    # both hops; price the boundaries the same way.
    times = np.full((4, 5, 5), math.inf)
    for k, r in enumerate(rssi):
        relay = r if transport == "wifi" and k > 0 else None
        size = paper_plan.stages[k].outgoing.size_bytes
        times[k, k, k + 1] = link_time_s(transport, size, r, relay_rssi_dbm=relay)
    model = breakdown_from_times(
        compute_times_s(paper_plan), times, CHAIN, transport=transport
    ).period_s
    result = simulate(paper_plan, PipelineConfig(transport=transport, rssi_dbm=rssi, inferences=24))
    simulated = summarize(result)["throughput_per_s"]
    assert 1.0 / model == pytest.approx(simulated, rel=0.03)
    if transport != "wifi":  # a chain matrix gives the same links (Wi-Fi's relay needs the AP)
        assert period_s(paper_plan, CHAIN, _chain_matrix(rssi), transport=transport) == model


@pytest.mark.parametrize("transport", ["ble", "espnow", "wifi"])
def test_replicas_and_placement_match_the_simulator(paper_plan: Plan, transport: str) -> None:
    """Placed and replicated deployments on a full RSSI matrix, against the simulator (within
    6 %; measured: 3.6 % at worst, the model ignores the round-robin's uneven queueing)."""
    rng = np.random.default_rng(3)
    upper = np.triu(-45.0 - rng.uniform(0, 40, (7, 7)), 1)
    matrix = RssiMatrix.from_array(upper + upper.T)
    for placement in [((3,), (0,), (5,), (6,), (1,)), ((0, 5), (1, 6), (2,), (3,), (4,))]:
        model = period_s(paper_plan, placement, matrix, transport=transport)
        config = PipelineConfig(
            transport=transport, placement=placement, rssi_matrix_dbm=matrix.dbm, inferences=40
        )
        simulated = _steady_period_s(simulate(paper_plan, config), skip=8)
        assert model == pytest.approx(simulated, rel=0.06)


def test_breakdown(paper_plan: Plan) -> None:
    b = period_breakdown(paper_plan, CHAIN, _chain_matrix(PAPER_RSSI), transport="ble")
    assert b.bottleneck == "the radio of b1 (stage 2)"  # receives 200 kB, sends 50 kB
    second = b.boards[1]
    assert b.period_s == pytest.approx(second.radio_s)
    assert second.receive_s == pytest.approx(b.boards[0].send_s)
    assert b.throughput_per_s == pytest.approx(1 / b.period_s)
    assert len(b.boundary_s) == 4 and b.boards[-1].send_s == 0
    json.dumps(b.to_dict(), allow_nan=False)
    shared = period_breakdown(paper_plan, CHAIN, _chain_matrix(PAPER_RSSI), transport="espnow")
    assert shared.shared_channel and "shared channel" in shared.bottleneck
    assert shared.period_s == pytest.approx(sum(shared.boundary_s))


def test_replicas_share_the_work(paper_plan: Plan) -> None:
    """Two replicas of every stage on a full matrix halve compute and radio shares."""
    matrix = RssiMatrix.from_array(np.where(np.eye(10, dtype=bool), math.nan, -60.0))
    one = period_breakdown(paper_plan, CHAIN, matrix, transport="ble")
    two = period_breakdown(paper_plan, tuple((k, k + 5) for k in range(5)), matrix, transport="ble")
    assert two.period_s == pytest.approx(one.period_s / 2)
    assert [b.replica for b in two.boards[:2]] == [0, 1]


def test_missing_link_costs_infinity(paper_plan: Plan) -> None:
    matrix = _chain_matrix(PAPER_RSSI)
    b = period_breakdown(paper_plan, ((1,), (0,), (2,), (3,), (4,)), matrix, transport="ble")
    assert math.isinf(b.period_s) and b.throughput_per_s == 0.0
    assert b.bottleneck == "a link that cannot carry its tensor"
    assert b.to_dict()["period_s"] is None


def test_dual_core_and_windows(paper_plan: Plan) -> None:
    assert compute_times_s(paper_plan, dual_core=True)[0] < compute_times_s(paper_plan)[0]
    matrix = _chain_matrix(PAPER_RSSI)
    slow = period_s(paper_plan, CHAIN, matrix, transport="espnow", windows=[1, 1, 1, 1])
    assert slow > period_s(paper_plan, CHAIN, matrix, transport="espnow", windows=6)


@pytest.mark.parametrize(
    ("placement", "error", "message"),
    [
        (((0,), (1,)), PartitionError, "2 stages, the plan has 5"),
        (((0,), (1,), (2,), (3,), (9,)), PartitionError, "within 0..4"),
        (((0,), (1,), (2,), (3,), (3,)), PartitionError, "one stage"),
        (((0,), (), (2,), (3,), (4,)), PartitionError, "at least one board"),
    ],
)
def test_bad_placements(
    paper_plan: Plan, placement: tuple[tuple[int, ...], ...], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        period_s(paper_plan, placement, _chain_matrix(PAPER_RSSI), transport="ble")


def test_bad_inputs(paper_plan: Plan) -> None:
    matrix = _chain_matrix(PAPER_RSSI)
    with pytest.raises(ConfigError, match="3 windows for 4"):
        period_s(paper_plan, CHAIN, matrix, transport="ble", windows=[6, 6, 6])
    with pytest.raises(ConfigError, match="ap_board"):
        period_s(paper_plan, CHAIN, matrix, transport="wifi", ap_board=7)
    with pytest.raises(ConfigError, match="square"):
        period_s(paper_plan, CHAIN, np.zeros((5, 4)), transport="ble")
