"""The ``tinysplit`` command line, run in-process through ``main`` and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

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
