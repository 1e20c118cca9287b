"""The pytest plugin, driven through pytester: options, usage errors, fixtures, archive."""

from __future__ import annotations

import json
from pathlib import Path

import pandas  # noqa: F401  imported before pytester snapshots sys.modules: it cannot reload C code
import pytest

from tinysplit.results import load

pytest_plugins = ["pytester"]

CASE = """
from tinysplit.pytest_plugin import Bench

def test_case(benchmark, bench: Bench, transport: str, window: int) -> None:
    plan = bench.plan(transport)
    config = bench.config(transport, plan, inferences=1)
    result = bench.run(f"case[{transport}]", config, plan)
    bench.timed(benchmark, 2, lambda k: 1.5 + k)
    bench.report(transport, latency_p50_s=1.5, failures=len(result.failed))
    assert config.window == window
"""

SMALL = ["--model", "mobilenet_v1:alpha=0.25,input_size=32", "--devices", "2",
         "--device-profile", "esp32s3-n8r8"]  # fmt: skip
#: The emulated boards of the CI bench run (five boards, BLE).
EMULATED = Path(__file__).parent / "fixtures" / "emulated-boards.toml"
#: A small model split over the emulated inventory's five boards.
SMALL_HW = ["--model", "mobilenet_v1:alpha=0.25,input_size=32", "--device-profile", "esp32s3-n8r8",
            "--testbed", "hw", "--inventory", str(EMULATED)]  # fmt: skip


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_bench=CASE)
    return pytester.runpytest_subprocess(*SMALL, "-p", "no:cacheprovider", *args)


def test_one_case_per_transport_and_an_archive(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = _run(pytester, "--transport", "all", "--results-dir", str(tmp_path))
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*tinysplit summary*", "*ble*", "*wifi*", "*espnow*",
                                 "*tinysplit archive: *"])  # fmt: skip
    archives = list(tmp_path.iterdir())
    assert len(archives) == 1
    assert archives[0].name.split("_")[1:3] == ["sim", "all"]
    archive = load(archives[0])
    assert archive.manifest["complete"] is True
    assert sorted(archive.summary["case"].unique()) == ["case[ble]", "case[espnow]", "case[wifi]"]


def test_device_clock_is_the_benchmark_timer(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = _run(pytester, "--results-dir", str(tmp_path), "--benchmark-json", "bench.json")
    result.assert_outcomes(passed=1)
    stats = json.loads((pytester.path / "bench.json").read_text())["benchmarks"][0]
    assert stats["group"] == "ble"
    assert stats["stats"]["min"] == 1.5  # device seconds, not the simulator's wall time
    assert stats["stats"]["max"] == 2.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--testbed", "hw"], "*--testbed hw needs --inventory boards.toml*"),
        (["--testbed", "hw", "--inventory", "missing.toml"], "*missing.toml: cannot read*"),
        (
            ["--testbed", "hw", "--inventory", str(EMULATED), "--transport", "wifi"],
            "*boards of * run the ble firmware: pick --transport ble*",
        ),
        (
            ["--testbed", "hw", "--inventory", str(EMULATED), "--positions", "paper"],
            "*--positions configures the simulator*",
        ),
        (["--inventory", "boards.toml"], "*--inventory only applies to --testbed hw*"),
        (["--window", "0"], "*--window must be >= 1*"),
        (["--window", "17"], "*--window 17: reliable mode takes windows up to 16*"),
        (["--devices", "many"], "*--devices must be a positive integer or auto*"),
        (["--transport", "all", "--profile", "paper"], "*--profile names one transport*"),
        (["--transport", "zigbee"], "*invalid choice: 'zigbee'*"),
        (["--adaptive-window", "--mode", "paper"], "*--adaptive-window needs --mode reliable*"),
        (["--wake", "ble"], "*--wake ble (hybrid transport) moves tensors on wifi or espnow*"),
    ],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_unwritable_results_dir_stops_before_any_work(pytester: pytest.Pytester) -> None:
    blocker = pytester.path / "file"
    blocker.write_text("not a directory")
    result = _run(pytester, "--results-dir", str(blocker / "results"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--results-dir*cannot be created*"])


def test_plain_tests_do_not_touch_the_results_dir(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "results").exists()


def test_infeasible_split_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--model", "paper", "--devices", "2", "--device-profile", "paper")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ble: model 'paper' needs at least 3*"])


def test_benchmark_disable_still_runs_every_round(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_rounds="""
def test_rounds(benchmark, bench, transport):
    seen = []
    bench.timed(benchmark, 4, lambda k: seen.append(k) or 1.0)
    assert seen == [0, 1, 2, 3]
"""
    )
    # -W error as in the project's own config: an unused benchmark fixture would be an error.
    result = pytester.runpytest_subprocess(
        *SMALL, "-W", "error", "--benchmark-disable", "--results-dir", str(tmp_path),
        "test_rounds.py",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def test_interrupted_session_keeps_what_it_recorded(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_interrupt="""
def test_first(bench, transport):
    plan = bench.plan(transport)
    bench.run("first", bench.config(transport, plan, inferences=2), plan)

def test_second(bench, transport):
    raise KeyboardInterrupt
"""
    )
    result = pytester.runpytest_subprocess(*SMALL, "--results-dir", str(tmp_path))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (archive_dir,) = tmp_path.iterdir()
    archive = load(archive_dir)
    assert archive.manifest["complete"] is False
    assert list(archive.summary["case"]) == ["first"]
    assert archive.summary["completed"].tolist() == [2]


def test_bench_cases_run_on_emulated_boards_and_write_a_normal_archive(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    latency = Path(__file__).parents[1] / "bench" / "test_latency.py"
    result = pytester.runpytest_subprocess(
        str(latency), *SMALL_HW, "--inferences", "2", "--results-dir", str(tmp_path),
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*tinysplit summary*", "*ble*", "*tinysplit archive: *_hw_ble_*"])
    (archive_dir,) = tmp_path.iterdir()
    archive = load(archive_dir)
    assert archive.manifest["complete"] is True
    assert archive.manifest["testbed"] == "hw"
    assert list(archive.summary["case"]) == ["latency[ble]", "latency[ble]"]
    assert archive.summary["completed"].tolist() == [1, 1]
    assert archive.summary["extra_checks_outputs_exact"].tolist() == [1, 1]
    assert archive.summary["extra_checks_outputs_mismatched"].tolist() == [0, 0]
    assert len(archive.inferences) == 2 * 5 and len(archive.links) == 2 * 4
    assert archive.energy["energy_j"].notna().all()
    case = archive.manifest["cases"][0]
    assert case["config"]["rssi_dbm"] is None and case["config"]["positions_m"] is None
    assert case["extra"]["checks"]["links"][0] == {
        "link": "1->2", "tensor_crc_errors": 0, "rx_crc_errors": 0
    }  # fmt: skip


def test_cases_boards_cannot_run_are_skipped_with_the_reason(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_rssi="""
def test_rssi(bench, transport):
    plan = bench.plan(transport)
    bench.run("rssi", bench.config(transport, plan, rssi_dbm=(-60.0,) * 4), plan)
"""
    )
    result = pytester.runpytest_subprocess(*SMALL_HW, "--results-dir", str(tmp_path), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*link RSSIs and positions cannot be imposed*"])


def test_a_board_failure_archives_the_completed_inferences_and_stops_the_session(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makeconftest(
        """
import os, signal
from tinysplit.testbed.hw import emulator, session

started = []
real_start, real_output = emulator.start_emulator, session.Session._output

def start(*args, **kwargs):
    started.append(real_start(*args, **kwargs))
    return started[-1]

def output(self, console, event):  # the USB cables are pulled after the first result
    real_output(self, console, event)
    self._scribe_command("status")
    self._take_marks()
    os.kill(started[-1].process.pid, signal.SIGKILL)
    started[-1].process.wait()

emulator.start_emulator, session.Session._output = start, output
"""
    )
    pytester.makepyfile(
        test_unplug="""
def test_first(bench, transport):
    plan = bench.plan(transport)
    bench.run("unplugged", bench.config(transport, plan, inferences=3), plan)

def test_second(bench, transport):
    raise AssertionError("the session goes on after a board failure")
"""
    )
    result = pytester.runpytest_subprocess(*SMALL_HW, "--results-dir", str(tmp_path))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        # Whichever port the host notices first: a pipeline board or the scribe, all unplugged.
        ["*board * on /dev/pts/*: unplugged or closed*run aborted after ? of 3*",
         "*Interrupted: board failure*"]
    )  # fmt: skip
    (archive_dir,) = tmp_path.iterdir()
    archive = load(archive_dir)
    assert archive.manifest["complete"] is False
    assert list(archive.summary["case"]) == ["unplugged"]
    kept = int(archive.summary["completed"].iloc[0])  # at least the first result, maybe more
    assert kept >= 1 and f"aborted after {kept} of 3" in str(result.stdout)
    assert "unplugged or closed" in archive.manifest["cases"][0]["extra"]["aborted"]
