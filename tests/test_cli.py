"""The ``tinysplit`` command line, run in-process through ``main`` and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinysplit.cli import main

SMALL = "mobilenet_v1:alpha=0.25,input_size=32"


def test_model_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "show", SMALL]) == 0
    out = capsys.readouterr().out
    assert "60 layers, 28 Conv" in out
    assert "conv_pw_13_relu" in out
    assert "input 32x32x3 (NHWC)" in out


def test_model_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "show", "paper", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"] == 67
    assert data["params"] == 4_231_152
    assert data["layer_table"][0]["output_shape_nhwc"] == [1, 112, 112, 32]
    assert data["layer_table"][-1]["cut_after"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model", "show", "resnet"], "unknown model 'resnet'"),
        (["model", "show", "missing/model.onnx"], "model file 'missing/model.onnx' does not exist"),
        (["model", "show", "mobilenet_v1:alpha=-1"], "alpha must be > 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["partition", "--model", SMALL, "--devices", "0"])
    assert exc.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_debug_shows_the_traceback() -> None:
    from tinysplit.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "model", "show", "resnet"])


def test_console_script_runs_as_a_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tinysplit", "model", "show", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        "tinysplit: error: unknown model 'nope': use a built-in (mobilenet_v1, paper) "
        "or a path to an .onnx file\n"
    )
    assert "Traceback" not in proc.stderr


def test_partition_paper_split_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["partition", "--model", "paper", "--strategy", "paper", "--devices", "5"]
    assert main([*argv, "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "paper split on 5 x paper over ble" in out
    assert "largest tensor sent" in out


def test_partition_json_and_out_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file = tmp_path / "plan.json"
    argv = ["partition", "--model", SMALL, "--devices", "2", "--objective", "bytes"]
    assert main([*argv, "--json", "--out", str(plan_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(plan_file.read_text())
    assert len(printed["stages"]) == 2
    assert printed["model"]["name"] == SMALL


def test_export_from_a_saved_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file = tmp_path / "plan.json"
    assert main(["partition", "--model", SMALL, "--devices", "2", "--out", str(plan_file)]) == 0
    out_dir = tmp_path / "stages"
    assert main(["export", "--plan", str(plan_file), "--out", str(out_dir), "--samples", "2"]) == 0
    assert "exported 2 stages" in capsys.readouterr().out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "manifest.json",
        "stage1.onnx",
        "stage2.onnx",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["partition", "--model", "paper", "--devices", "2", "--profile", "paper"],
            "needs at least 3",
        ),
        (
            ["partition", "--model", "paper", "--profile", "esp32s3-n4"],
            "layer 1 (conv1)",
        ),
        (["partition", "--model", SMALL, "--profile", "esp32"], "unknown device profile"),
        (["export", "--plan", "nowhere.json", "--out", "x"], "nowhere.json"),
    ],
)
def test_partition_and_export_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_malformed_plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"schema_version": 1}')
    assert main(["export", "--plan", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert "malformed plan" in capsys.readouterr().err


def test_partition_with_the_papers_cuts(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["partition", "--model", "paper", "--profile", "paper", "--cuts", "23,37,49,59"]
    assert main([*argv, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["strategy"] == "manual"
    assert [s["last_layer"] for s in plan["stages"]] == [23, 37, 49, 59, 67]


def test_partition_cuts_must_be_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["partition", "--model", SMALL, "--cuts", "a,b"])
    assert "comma-separated layer numbers" in capsys.readouterr().err


def test_model_show_sqnr_column(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "show", SMALL, "--sqnr", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["layer_table"]
    relus = [row["sqnr_db"] for row in rows if row["op"] == "Relu"]
    assert len(relus) == 27
    assert min(relus) > 40.0  # int16 keeps every ReLU output far above 8-bit quality (~40 dB)


def test_links_show_lists_every_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["links", "show", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {(r["transport"], r["profile"]) for r in rows}
    for expected in [
        ("ble", "paper"), ("ble", "nimble-default"), ("ble", "nimble-tuned"),
        ("ble", "bluedroid-1m"), ("ble", "bluedroid-2m"), ("espnow", "v1-1mbps"),
        ("espnow", "v2-1mbps"), ("espnow", "v2-fast"), ("wifi", "lwip-default"),
        ("wifi", "lwip-tuned"),
    ]:  # fmt: skip
        assert expected in names
    assert main(["links", "show", "ble", "paper"]) == 0
    assert "goodput_kbps" in capsys.readouterr().out


def test_links_check_passes_for_every_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["links", "check", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 10
    assert all(r["passed"] for r in rows)


def test_simulate_the_papers_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file = tmp_path / "plan.json"
    argv = ["partition", "--model", "paper", "--profile", "paper", "--cuts", "23,37,49,59"]
    assert main([*argv, "--out", str(plan_file), "--json"]) == 0
    capsys.readouterr()
    sim = ["simulate", "--transport", "ble", "--model", "paper", "--plan", str(plan_file)]
    opts = ["--mode", "paper", "--window", "6", "--positions", "paper", "--inferences", "2"]
    assert main([*sim, *opts, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["completed"] == 2
    assert data["network_s"] > 5 * data["inference_s"]
    assert [link["rssi_dbm"] for link in data["links"]] == [-66.0, -76.0, -71.0, -60.0]
    assert set(data["energy_j"][0]) == {"idle", "inference", "radio_tx", "radio_rx"}
    assert main([*sim, *opts]) == 0
    assert "completed 2/2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--transport", "ble", "--profile", "nope"], "unknown ble profile 'nope'"),
        (["--transport", "ble", "--positions", "nowhere.toml"], "unknown layout 'nowhere.toml'"),
        (["--transport", "wifi", "--model", SMALL, "--devices", "3", "--positions", "paper"],
         "rssi_dbm has 4 values but 3 boards have 2 links"),
    ],
)  # fmt: skip
def test_simulate_bad_input(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--inferences", "1", *extra]
    if "--model" not in extra:
        argv += ["--model", SMALL, "--devices", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_simulate_plan_for_another_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file = tmp_path / "plan.json"
    assert main(["partition", "--model", SMALL, "--devices", "2", "--out", str(plan_file)]) == 0
    argv = ["simulate", "--transport", "ble", "--model", "paper", "--plan", str(plan_file)]
    assert main(argv) == 1
    assert "model hash mismatch" in capsys.readouterr().err


def test_simulate_window_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--transport", "ble", "--window", "0"])
    assert "expected a positive integer" in capsys.readouterr().err
