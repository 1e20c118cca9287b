"""``tinysplit sweep`` through the CLI's ``main``: table, JSON, resume, errors and ``report``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sweep.conftest import SMALL
from tinysplit.cli import main

BASE = ["sweep", "--model", SMALL, "--devices", "3", "--inferences", "3", "--jobs", "1"]


def test_table_then_resume_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    argv = [*BASE, "--out", str(out), "--transport", "ble,wifi", "--seed", "0..1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "ble_paper_w6_paper_chain_s1 done" in captured.err  # one line per point off a TTY
    assert "4 points: 4 run now" in captured.out
    assert "lwip-default" in captured.out
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ran"] == [] and len(data["skipped"]) == 4
    assert [p["status"] for p in data["points"]] == ["done"] * 4
    assert data["points"][0]["throughput_per_s"] > 0
    assert Path(data["archive"]).parent == out
    assert main(["report", data["archive"], "--json"]) == 0


def test_grid_file_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('window = [1, 6]\nseed = "0..2"\n')
    argv = [*BASE, "--out", str(tmp_path / "s"), "--grid", str(grid), "--seed", "0"]
    assert main([*argv, "--dry-run", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)
    assert [(p["window"], p["seed"], p["finished"]) for p in points] == [
        (1, 0, False),
        (6, 0, False),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--window", "6,24"], "reliable mode takes windows up to 16"),
        (["--placement", "rssi"], "--placement rssi needs --rssi"),
        (["--grid", "missing.toml"], "cannot read grid file 'missing.toml'"),
        (["--profile", "nope"], "ble has no profile 'nope'"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --executor dask"),
    ],
)
def test_input_errors_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main([*BASE, "--out", str(tmp_path / "s"), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: ") and message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--transport", "ble,zigbee"], "unknown value 'zigbee'"),
        (["--seed", "5..2"], "range '5..2' is empty"),
        (["--window", ""], "empty value"),
        (["--strategy", "best"], "unknown value 'best'"),
        (["--jobs", "0"], "expected a positive integer"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*BASE, "--out", str(tmp_path / "s"), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_changed_shared_options_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "s")
    assert main([*BASE, "--out", out]) == 0
    capsys.readouterr()
    assert main([*BASE, "--out", out, "--mode", "paper"]) == 1
    assert "holds a sweep with mode='reliable', not 'paper'" in capsys.readouterr().err
