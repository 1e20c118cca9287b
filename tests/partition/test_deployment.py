"""Deployments in plans: JSON round trip (missing links as null) and clear errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from tinysplit.errors import ConfigError
from tinysplit.model import Graph
from tinysplit.partition import Plan, partition
from tinysplit.partition.deployment import Deployment

NAN = math.nan


def _deployment(**overrides: Any) -> Deployment:
    fields: dict[str, Any] = {
        "boards": ((0,), (2, 3), (1,)),
        "board_names": ("a", "b", "c", "d"),
        "rssi_dbm": (
            (NAN, -60.0, -70.0, NAN),
            (-60.0, NAN, -65.0, -72.0),
            (-70.0, -65.0, NAN, -58.0),
            (NAN, -72.0, -58.0, NAN),
        ),
        "windows": (16, 8),
        "period_s": 2.5,
        "optimized": ("placement", "replication"),
    }
    return Deployment(**(fields | overrides))


@pytest.fixture(scope="module")
def plan(paper_graph: Graph) -> Plan:
    base = partition(paper_graph, strategy="optimal", devices=3, profile="paper")
    return dataclasses.replace(base, deployment=_deployment())


def test_round_trip_keeps_missing_links(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plan.save(path)
    data = json.loads(path.read_text())
    assert data["deployment"]["rssi_dbm"][0][3] is None  # strict JSON: no NaN literal
    loaded = Plan.load(path)
    assert loaded.deployment is not None
    assert loaded.deployment.boards == ((0,), (2, 3), (1,))
    assert loaded.deployment.replicas == (1, 2, 1)
    assert math.isnan(loaded.deployment.rssi_dbm[0][3])
    assert loaded.deployment.to_dict() == plan.deployment.to_dict()  # type: ignore[union-attr]


def test_plan_without_deployment_has_no_key(paper_graph: Graph) -> None:
    plan = partition(paper_graph, strategy="paper", devices=5, profile="paper")
    assert "deployment" not in plan.to_dict()
    assert Plan.from_dict(plan.to_dict()).deployment is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"boards": ((0,), (0, 3), (1,))}, "distinct"),
        ({"boards": ((0,), (4,), (1,))}, "distinct"),
        ({"boards": ((0,), (), (1,))}, "at least one board"),
        ({"windows": (16,)}, "1 windows for 2 stage boundaries"),
        ({"windows": (17, 1)}, "within 1..16"),
        ({"board_names": ("a", "b", "c")}, "3 x 3"),
        ({"period_s": 0.0}, "period_s"),
        ({"optimized": ("cuts",)}, "unknown optimization 'cuts'"),
    ],
)
def test_bad_deployment(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _deployment(**overrides)


def test_deployment_must_place_every_stage(plan: Plan) -> None:
    with pytest.raises(ConfigError, match="places 2 stages, the plan has 3"):
        dataclasses.replace(plan, deployment=_deployment(boards=((0,), (1,)), windows=(6,)))


def test_malformed_deployment_json(plan: Plan) -> None:
    data = plan.to_dict()
    del data["deployment"]["windows"]
    with pytest.raises(ConfigError, match="deployment has no 'windows'"):
        Plan.from_dict(data)
    data = plan.to_dict()
    data["deployment"]["boards"][0] = [True]
    with pytest.raises(ConfigError, match="expected an integer"):
        Plan.from_dict(data)
