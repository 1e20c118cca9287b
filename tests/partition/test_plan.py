"""Plan JSON: round trip, atomic save, and clear errors on malformed files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tinysplit.errors import ConfigError
from tinysplit.model import Graph
from tinysplit.partition import SCHEMA_VERSION, Plan, partition


@pytest.fixture(scope="module")
def plan(paper_graph: Graph) -> Plan:
    return partition(paper_graph, strategy="greedy", devices=5, profile="esp32s3-n8r8")


def test_dict_round_trip(plan: Plan) -> None:
    data = plan.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["model"] == {"name": "paper", "hash": plan.model_hash, "layers": 67}
    assert data["summary"]["devices"] == 5
    stage = data["stages"][0]
    assert stage["first_layer"] == 1
    assert set(stage["outgoing"]["frames"]) == {"ble", "wifi", "espnow"}
    assert set(stage["memory_by_kind"]) == {"flash", "psram", "sram"}
    assert Plan.from_dict(json.loads(json.dumps(data))) == plan


def test_save_and_load(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plan.save(path)
    plan.save(path)  # overwriting is fine
    assert Plan.load(path) == plan
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temporary file left
    assert plan.cuts == tuple(s.last_layer - 1 for s in plan.stages[:-1])


def _broken(plan: Plan, edit: str) -> dict[str, Any]:
    data = copy.deepcopy(plan.to_dict())
    match edit:
        case "version":
            data["schema_version"] = 99
        case "no stages key":
            del data["stages"]
        case "empty stages":
            data["stages"] = []
        case "string bytes":
            data["stages"][1]["weights_bytes"] = "12"
        case "bool device":
            data["stages"][0]["device"] = True
        case "gap":
            data["stages"][1]["first_layer"] += 1
        case "short":
            data["stages"].pop()
        case "strategy":
            data["strategy"] = "magic"
        case "shape":
            data["stages"][0]["outgoing"]["nhwc_shape"] = [1, -3]
        case "profile":
            data["profile"]["flash_bytes"] = -1
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("version", "schema_version 99 is not supported"),
        ("no stages key", "plan has no 'stages'"),
        ("empty stages", "no stages"),
        ("string bytes", r"plan.stages\[1\].weights_bytes must be int, got str"),
        ("bool device", r"plan.stages\[0\].device must be int, got bool"),
        ("gap", "device 2 starts at layer"),
        ("short", "the stages end at layer"),
        ("strategy", "unknown strategy 'magic'"),
        ("shape", "nhwc_shape must hold positive integers"),
        ("profile", "flash_bytes must be an integer >= 0"),
    ],
)
def test_malformed_plans(plan: Plan, edit: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(plan, edit)))
    with pytest.raises(ConfigError, match=message) as info:
        Plan.load(path)
    assert str(path) in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read plan file"):
        Plan.load(tmp_path / "missing.json")
    path = tmp_path / "garbage.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"is not valid JSON \(line 1"):
        Plan.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be an object"):
        Plan.load(path)


def test_plan_table_renders(plan: Plan) -> None:
    from rich.console import Console

    from tinysplit.partition.render import plan_table

    console = Console(record=True, width=160)
    console.print(plan_table(plan))
    text = console.export_text()
    assert "greedy split on 5 x esp32s3-n8r8 over ble" in text
    for stage in plan.stages:
        assert f"{stage.first_layer}-{stage.last_layer}" in text
    assert "psram" in text
