"""Comparing two archives: per-case metrics, differences, thresholds in both directions, CLI."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinysplit.errors import ConfigError
from tinysplit.model import load_model
from tinysplit.partition import plan_from_cuts
from tinysplit.results import ArchiveWriter, load
from tinysplit.results.compare import METRICS, Threshold, case_metrics, compare
from tinysplit.sim import PipelineConfig, SimResult, simulate
from tinysplit.sim.metrics import summarize

STRONG, WEAK = (-60.0, -70.0), (-88.0, -90.0)


def _archive(
    root: Path, *, rssi: tuple[float, float], window: int = 6, mode: str = "reliable"
) -> tuple[Path, list[SimResult]]:
    """``latency[ble]`` (2 runs of one inference) and ``stream[ble]`` (6 inferences)."""
    plan = plan_from_cuts(load_model("mobilenet_v1:alpha=0.25,input_size=32"), [10, 40])
    writer = ArchiveWriter(root, testbed="sim", transport="ble", manifest={})
    results = []
    for k in range(2):
        config = PipelineConfig(transport="ble", rssi_dbm=rssi, inferences=1, seed=k,
                                window=window, mode=mode)  # fmt: skip
        results.append(simulate(plan, config))
        writer.add("latency[ble]", results[-1], run=k)
    config = PipelineConfig(transport="ble", rssi_dbm=rssi, inferences=6, window=window, mode=mode)
    results.append(simulate(plan, config))
    writer.add("stream[ble]", results[-1])
    return writer.close(complete=True), results


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[SimResult]]]:
    """``fast`` (strong links), ``slow`` (weak links: more retries) and ``lost`` (paper mode,
    window 12: every tensor lost)."""
    root = tmp_path_factory.mktemp("results")
    return {
        "fast": _archive(root / "fast", rssi=STRONG),
        "slow": _archive(root / "slow", rssi=WEAK),
        "lost": _archive(root / "lost", rssi=STRONG, window=12, mode="paper"),
    }


def test_case_metrics_pool_every_run(archives: dict[str, tuple[Path, list[SimResult]]]) -> None:
    path, results = archives["fast"]
    metrics = case_metrics(load(path)).set_index("case")
    assert list(metrics.index) == ["latency[ble]", "stream[ble]"]
    latency = [summarize(r)["latency_s"]["p50"] for r in results[:2]]  # one inference each
    row = metrics.loc["latency[ble]"]
    assert (row.runs, row.inferences, row.completed, row.failed) == (2, 2, 2, 0)
    assert row.latency_p50_s == pytest.approx(np.percentile(latency, 50))
    assert row.latency_p95_s == pytest.approx(np.percentile(latency, 95))
    assert math.isnan(row.throughput_per_s)  # one inference per run: no steady state
    energy = sum(summarize(r)["energy_total_j"] for r in results[:2])
    assert row.energy_per_inference_j == pytest.approx(energy / 2)
    stream = summarize(results[2])
    row = metrics.loc["stream[ble]"]
    assert row.throughput_per_s == pytest.approx(stream["throughput_per_s"])
    assert row.latency_mean_s == pytest.approx(stream["latency_s"]["mean"])
    assert row.network_to_inference == pytest.approx(stream["network_to_inference"])
    lost = case_metrics(load(archives["lost"][0])).set_index("case").loc["latency[ble]"]
    assert lost.failure_rate == 1.0 and math.isnan(lost.latency_p50_s)


def test_rows_hold_a_b_delta_and_percent(archives: dict[str, tuple[Path, list[SimResult]]]) -> None:
    a, b = load(archives["fast"][0]), load(archives["slow"][0])
    result = compare(a, b)
    rows = result.rows.set_index(["case", "metric"])
    ma, mb = (case_metrics(x).set_index("case") for x in (a, b))
    row = rows.loc[("latency[ble]", "latency_p50_s")]
    assert (row.a, row.b) == (ma.at["latency[ble]", "latency_p50_s"],
                              mb.at["latency[ble]", "latency_p50_s"])  # fmt: skip
    assert row.delta == pytest.approx(row.b - row.a)
    assert row.delta_pct == pytest.approx((row.b - row.a) / row.a * 100)
    assert row.delta > 0  # weak links are slower
    assert ("latency[ble]", "throughput_per_s") not in rows.index  # NaN on both sides: no row
    assert not result.rows.regression.any() and result.regressions == 0
    assert (result.only_a, result.only_b) == ((), ())


@pytest.mark.parametrize(
    ("metric", "worse_when"),
    [("latency_p50_s", "slower"), ("throughput_per_s", "slower"),
     ("energy_per_inference_j", "slower")],
)  # fmt: skip
def test_thresholds_know_each_metrics_direction(
    archives: dict[str, tuple[Path, list[SimResult]]], metric: str, worse_when: str
) -> None:
    fast, slow = load(archives["fast"][0]), load(archives["slow"][0])
    strict = [Threshold(metric=metric, pct=1.0)]
    assert compare(fast, slow, strict).regressions >= 1  # fast -> slow: worse
    assert compare(slow, fast, strict).regressions == 0  # slow -> fast: better
    rows = compare(fast, slow, strict).rows
    worse = rows[rows.metric == metric].worse_pct
    assert (worse > 1.0).all()
    huge = [Threshold(metric=metric, pct=float(worse.max()) + 1)]
    assert compare(fast, slow, huge).regressions == 0


def test_a_value_b_lost_is_a_regression(archives: dict[str, tuple[Path, list[SimResult]]]) -> None:
    fast, lost = load(archives["fast"][0]), load(archives["lost"][0])
    result = compare(fast, lost, [Threshold(metric="latency_p50_s", pct=1e6),
                                  Threshold(metric="failure_rate", pct=1e6)])  # fmt: skip
    rows = result.rows.set_index(["case", "metric"])
    gone = rows.loc[("latency[ble]", "latency_p50_s")]
    assert math.isnan(gone.b) and gone.worse_pct == math.inf and gone.regression
    failures = rows.loc[("latency[ble]", "failure_rate")]
    assert (failures.a, failures.b, failures.delta_pct) == (0.0, 1.0, math.inf)
    assert failures.regression
    data = result.to_dict()
    json.dumps(data, allow_nan=False)  # plain JSON
    row = next(r for r in data["rows"] if r["metric"] == "latency_p50_s" and
               r["case"] == "latency[ble]")  # fmt: skip
    assert row["b"] is None and row["worse_pct"] == "inf"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("latency", "expected METRIC:PCT"),
        ("speed:5", "unknown metric 'speed' (valid: latency_p50_s, latency_p95_s"),
        ("latency_p95_s:fast", "is not a percentage"),
        ("latency_p95_s:-1", "must be a percentage >= 0"),
    ],
)
def test_bad_thresholds(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        Threshold.parse(text)


def test_threshold_forms() -> None:
    assert Threshold.parse("latency_p95_s:5%") == Threshold(metric="latency_p95_s", pct=5.0)
    assert Threshold.parse("throughput_per_s:0") == Threshold(metric="throughput_per_s", pct=0.0)
    assert set(METRICS) >= {"latency_p50_s", "throughput_per_s", "energy_per_inference_j"}


# ------------------------------------------------------------------------------------------ CLI


def test_cli_exit_status_follows_regressions(
    archives: dict[str, tuple[Path, list[SimResult]]], capsys: pytest.CaptureFixture[str]
) -> None:
    from tinysplit.cli import main

    fast, slow = str(archives["fast"][0]), str(archives["slow"][0])
    gate = ["--fail-on", "latency_p95_s:5", "--fail-on", "throughput_per_s:5%"]
    assert main(["compare", fast, slow, *gate]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "REGRESSION (worse > 5 %)" in out and "regression(s) beyond the thresholds" in out
    assert main(["compare", slow, fast, *gate]) == 0
    assert "no regression beyond the thresholds (latency_p95_s 5%, throughput_per_s 5%)" in (
        " ".join(capsys.readouterr().out.split())
    )
    assert main(["compare", fast, fast]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "unchanged (case, metric) rows not shown" in out and "no threshold given" in out
    assert main(["compare", fast, slow, "--json", *gate]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["regressions"] >= 2 and data["a"] == fast
    assert {r["metric"] for r in data["rows"] if r["regression"]} == {
        "latency_p95_s",
        "throughput_per_s",
    }


@pytest.mark.parametrize("problem", ["not-archive", "too-new", "nothing-in-common"])
def test_cli_bad_input_exits_2(
    archives: dict[str, tuple[Path, list[SimResult]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    from tinysplit.cli import main

    fast = archives["fast"][0]
    other = tmp_path / "other"
    shutil.copytree(fast, other)
    if problem == "not-archive":
        other = tmp_path
        message = "not a result archive (no manifest.json)"
    elif problem == "too-new":
        manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
        (other / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
        message = "archive schema_version 99 is newer than this tinysplit reads"
    else:
        summary = (other / "summary.csv").read_text(encoding="utf-8")
        (other / "summary.csv").write_text(summary.replace("[ble]", "[wifi]"))
        message = "have no case in common: nothing to compare"
    assert main(["compare", str(fast), str(other), "--fail-on", "latency_p95_s:5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: ") and err.count("\n") == 1
    assert message in err


def test_cli_unknown_metric_is_a_usage_error(
    archives: dict[str, tuple[Path, list[SimResult]]], capsys: pytest.CaptureFixture[str]
) -> None:
    from tinysplit.cli import main

    fast = str(archives["fast"][0])
    with pytest.raises(SystemExit) as exc:
        main(["compare", fast, fast, "--fail-on", "speed:5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown metric 'speed' (valid: latency_p50_s," in err
    assert "network_to_inference)" in err
