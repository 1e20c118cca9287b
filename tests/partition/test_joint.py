"""Joint optimisation: never worse than its inputs, confirmed by the simulator, clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tinysplit.cli import main
from tinysplit.errors import ConfigError, PartitionError
from tinysplit.model import Graph
from tinysplit.partition import Plan, partition
from tinysplit.partition.joint import optimize, parse_optimizations, replica_candidates
from tinysplit.partition.period import period_s
from tinysplit.partition.placement import identity_placement
from tinysplit.partition.replication import stage_energy_j
from tinysplit.partition.rssi import RssiMatrix, load_rssi_matrix
from tinysplit.sim.deployment import deployment_fields
from tinysplit.sim.metrics import summarize
from tinysplit.sim.pipeline import PipelineConfig, simulate

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "rssi-8-boards.toml"


@pytest.fixture(scope="module")
def boards8() -> RssiMatrix:
    return load_rssi_matrix(EXAMPLE)


@pytest.fixture(scope="module")
def boards5(boards8: RssiMatrix) -> RssiMatrix:
    """The paper's five boards: their chain links are the paper layout's RSSIs."""
    return RssiMatrix(names=boards8.names[:5], dbm=tuple(row[:5] for row in boards8.dbm[:5]))


def _paper(graph: Graph, rssi: RssiMatrix, *optimizations: str) -> Plan:
    return optimize(
        graph,
        rssi,
        optimizations=optimizations,
        transport="ble",
        device_profile="paper",
        strategy="paper",
        devices=5,
    )


def test_nothing_optimized_is_the_paper_chain(paper_graph: Graph, boards5: RssiMatrix) -> None:
    plan = _paper(paper_graph, boards5)
    assert plan.deployment is not None
    assert plan.deployment.boards == identity_placement(5)
    assert plan.deployment.windows == (6, 6, 6, 6)
    assert plan.deployment.optimized == ()
    expected = period_s(plan, identity_placement(5), boards5, transport="ble")
    assert plan.deployment.period_s == pytest.approx(expected)


def test_each_optimization_never_loses(paper_graph: Graph, boards8: RssiMatrix) -> None:
    base = _paper(paper_graph, boards8).deployment
    assert base is not None
    for chosen in (("placement",), ("window",), ("replication",), ("placement", "replication")):
        found = _paper(paper_graph, boards8, *chosen).deployment
        assert found is not None and found.optimized == chosen
        assert found.period_s <= base.period_s + 1e-9, chosen
    together = _paper(paper_graph, boards8, "placement", "window", "replication").deployment
    assert together is not None
    assert together.period_s < 0.6 * base.period_s  # three spare boards, replicated and placed
    assert sum(together.replicas) <= 8


def test_the_simulator_confirms_the_chosen_deployment(
    paper_graph: Graph, boards8: RssiMatrix
) -> None:
    plan = _paper(paper_graph, boards8, "placement", "replication")
    assert plan.deployment is not None
    config = PipelineConfig(transport="ble", inferences=24, **deployment_fields(plan))
    result = simulate(plan, config)
    assert not result.failed
    measured = summarize(result)["throughput_per_s"]
    assert measured == pytest.approx(1.0 / plan.deployment.period_s, rel=0.15)


def test_replication_on_the_same_boards_uses_fewer_stages(
    paper_graph: Graph, boards5: RssiMatrix
) -> None:
    plan = optimize(
        paper_graph,
        boards5,
        optimizations=("replication",),
        transport="ble",
        device_profile="paper",
    )
    assert plan.deployment is not None
    assert plan.devices < 5 and sum(plan.deployment.replicas) == 5
    chain = partition(paper_graph, strategy="optimal", devices=5, profile="paper")
    chain_period = period_s(chain, identity_placement(5), boards5, transport="ble")
    assert plan.deployment.period_s < chain_period


def test_replica_candidates_cover_every_vector(paper_graph: Graph) -> None:
    plan = partition(paper_graph, strategy="paper", devices=3, profile="paper")
    vectors = replica_candidates(plan, 6, replicated=True, replicate_for="throughput")
    assert len(vectors) == len(set(vectors)) == math.comb(3 + 3, 3)
    assert all(min(v) >= 1 and sum(v) <= 6 for v in vectors)
    assert replica_candidates(plan, 3, replicated=True, replicate_for="throughput") == [(1, 1, 1)]
    energy = replica_candidates(plan, 6, replicated=True, replicate_for="energy")
    assert len(energy) == 1 and sum(energy[0]) <= 6


def test_errors(paper_graph: Graph, boards5: RssiMatrix) -> None:
    with pytest.raises(PartitionError, match="replication needs a spare board: 5 stages on 5"):
        _paper(paper_graph, boards5, "replication")
    with pytest.raises(ConfigError, match="window optimisation needs reliable mode"):
        optimize(paper_graph, boards5, optimizations=("window",), mode="paper")
    with pytest.raises(ConfigError, match="unknown optimization 'cuts'"):
        optimize(paper_graph, boards5, optimizations=("cuts",))
    assert parse_optimizations("window, placement") == ("placement", "window")
    with pytest.raises(ConfigError, match="comma-separated"):
        parse_optimizations(" , ")


def test_cli_optimize_then_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file = tmp_path / "plan.json"
    argv = ["partition", "--model", "paper", "--profile", "paper", "--strategy", "paper"]
    argv += ["--devices", "5", "--rssi", str(EXAMPLE), "--optimize", "placement,replication"]
    assert main([*argv, "--json", "--out", str(plan_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sum(len(g) for g in printed["deployment"]["boards"]) <= 8
    assert printed["deployment"]["board_names"][5] == "spare1"
    assert main(["simulate", "--transport", "ble", "--plan", str(plan_file), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["completed"] == 10 and run["failed"] == 0
    assert main(["simulate", "--transport", "ble", "--plan", str(plan_file), "--positions",
                 "paper"]) == 1  # fmt: skip
    assert "has a deployment" in capsys.readouterr().err
    assert main(["partition", "--model", "paper", "--optimize", "placement"]) == 1
    assert "--optimize needs the boards" in capsys.readouterr().err


def test_energy_balance_spares_the_hungriest_board(paper_graph: Graph, boards8: RssiMatrix) -> None:
    def hungriest(plan: Plan) -> float:
        assert plan.deployment is not None
        energy = stage_energy_j(plan)
        return max(e / r for e, r in zip(energy, plan.deployment.replicas, strict=True))

    common = {
        "optimizations": ("placement", "replication"),
        "transport": "ble",
        "device_profile": "paper",
    }
    fast = optimize(paper_graph, boards8, **common)  # type: ignore[arg-type]
    even = optimize(paper_graph, boards8, replicate_for="energy", **common)  # type: ignore[arg-type]
    assert hungriest(even) < hungriest(fast)
    assert fast.deployment is not None and even.deployment is not None
    assert fast.deployment.period_s <= even.deployment.period_s


def test_cli_layouts_and_options_that_need_optimize(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["partition", "--model", "paper", "--profile", "paper"]
    assert main([*argv, "--devices", "6", "--rssi", "desk", "--optimize", "replication"]) == 0
    assert "deployment on 6 boards" in capsys.readouterr().out
    assert main([*argv, "--rssi", "room", "--optimize", "replication"]) == 1
    assert "--devices N with a layout name" in capsys.readouterr().err
    assert main([*argv, "--window", "16"]) == 1
    assert "--window applies to --optimize only" in capsys.readouterr().err
