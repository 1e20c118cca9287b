"""Result archives: round trip, never overwriting, atomicity, interruption, bad input."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tinysplit.errors import ConfigError
from tinysplit.links.calibration import calibration_hash, section
from tinysplit.model import load_model
from tinysplit.partition import plan_from_cuts
from tinysplit.results import SCHEMA_VERSION, ArchiveWriter, load
from tinysplit.results import archive as archive_module
from tinysplit.results.schema import COLUMNS
from tinysplit.sim import PipelineConfig, SimResult, simulate
from tinysplit.sim.metrics import summarize

RSSI = (-60.0, -70.0)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "results-format.md"


@pytest.fixture(scope="module")
def reliable() -> SimResult:
    """Three inferences on three boards over BLE: every one completes."""
    plan = plan_from_cuts(load_model("mobilenet_v1:alpha=0.25,input_size=32"), [20, 40])
    return simulate(plan, PipelineConfig(transport="ble", rssi_dbm=RSSI, inferences=3))


@pytest.fixture(scope="module")
def lossy() -> SimResult:
    """Paper mode with a 12-frame window on a 4 KiB tensor: every inference is lost."""
    plan = plan_from_cuts(load_model("mobilenet_v1:alpha=0.25,input_size=32"), [10, 40])
    config = PipelineConfig(transport="ble", rssi_dbm=RSSI, inferences=3, mode="paper", window=12)
    return simulate(plan, config)


def _writer(results: Path) -> ArchiveWriter:
    return ArchiveWriter(results, testbed="sim", transport="ble", manifest={"seed": 0})


def _final_dirs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if not p.name.startswith("."))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_round_trip_gives_back_the_records(
    tmp_path: Path, reliable: SimResult, lossy: SimResult
) -> None:
    writer = ArchiveWriter(
        tmp_path, testbed="sim", transport="ble", manifest={"seed": 7, "cuts": (20, 40)}
    )
    writer.add("latency[ble]", reliable, extra={"group": "latency", "params": {"window": 6}})
    writer.add("latency[ble]", reliable, run=1)
    writer.add("window-sweep[ble-w12]", lossy)
    archive = load(writer.close(complete=True))

    inf = archive.inferences[archive.inferences.case == "latency[ble]"]
    assert len(inf) == 2 * len(reliable.stage_events)
    for event, row in zip(reliable.stage_events, inf[inf.run == 0].itertuples(), strict=True):
        assert (row.inference, row.stage) == (event.inference, event.stage)
        assert _same(row.inference_end_s, event.inference_end_s)
        assert _same(row.receive_start_s, event.receive_start_s)
        assert _same(row.send_end_s, event.send_end_s)
        expected_injected = reliable.injected_s[event.inference] if event.stage == 1 else math.nan
        assert _same(row.injected_s, expected_injected)
    assert inf.completed.all() and not inf.failed.any()

    links = archive.links[(archive.links.case == "latency[ble]") & (archive.links.run == 0)]
    assert list(links.duration_s) == [e.result.duration_s for e in reliable.link_events]
    assert list(links.bytes) == [e.bytes for e in reliable.link_events]
    assert list(links.bytes_on_air) == [e.result.bytes_on_air for e in reliable.link_events]
    assert list(links.link) == [f"{e.stage}->{e.stage + 1}" for e in reliable.link_events]
    assert set(links["mode"]) == {"reliable"} and links.delivered.all()

    energy = archive.energy[(archive.energy.case == "latency[ble]") & (archive.energy.run == 0)]
    states = energy[energy.state != "total"]
    assert states.energy_j.sum() == pytest.approx(summarize(reliable)["energy_total_j"])
    total = energy[(energy.state == "total") & (energy.board == 1)].iloc[0]
    assert total.energy_j == pytest.approx(sum(reliable.energy_j[0].values()))
    supply_v = float(section("power")["supply_v"])
    assert total.mean_current_ma == pytest.approx(
        total.energy_j / (supply_v * reliable.duration_s) * 1000
    )
    assert energy.duration_s.eq(reliable.duration_s).all()

    summary = archive.summary.set_index(["case", "run"])
    expected = summarize(reliable)
    row = summary.loc[("latency[ble]", 0)]
    assert row.latency_p50_s == expected["latency_s"]["p50"]
    assert row.throughput_per_s == expected["throughput_per_s"]
    assert row.energy_total_j == expected["energy_total_j"]
    assert (row.completed, row["mode"], row.window, row.boards) == (3, "reliable", 6, 3)
    assert (row.extra_group, row.extra_params_window) == ("latency", 6)
    assert pd.isna(summary.loc[("latency[ble]", 1)].extra_group)

    manifest = archive.manifest
    assert manifest["schema_version"] == SCHEMA_VERSION and archive.complete
    assert manifest["session"] == {"seed": 7, "cuts": [20, 40]}
    assert manifest["calibration_hash"] == calibration_hash()
    assert [(c["case"], c["run"]) for c in manifest["cases"]] == [
        ("latency[ble]", 0),
        ("latency[ble]", 1),
        ("window-sweep[ble-w12]", 0),
    ]
    assert manifest["cases"][2]["config"]["mode"] == "paper"
    assert manifest["cases"][0]["plan"] == manifest["cases"][1]["plan"] == row.plan
    assert len(manifest["plans"]) == 2  # each distinct plan once
    assert manifest["plans"][row.plan] == json.loads(json.dumps(reliable.plan.to_dict()))


def test_paper_mode_losses_are_failed_and_undelivered(tmp_path: Path, lossy: SimResult) -> None:
    writer = _writer(tmp_path)
    writer.add("paper", lossy)
    archive = load(writer.close(complete=True))
    assert archive.inferences.failed.all() and not archive.inferences.completed.any()
    assert not archive.links.delivered.all()
    assert archive.links.drops.sum() > 0
    assert archive.summary.failed.iloc[0] == len(lossy.failed) == 3
    assert math.isnan(archive.summary.latency_p50_s.iloc[0])


def test_files_have_the_documented_columns_and_dtypes(tmp_path: Path) -> None:
    archive = load(_writer(tmp_path).close(complete=True))
    docs = DOCS.read_text(encoding="utf-8")
    for name, columns in COLUMNS.items():
        header = (archive.path / f"{name}.csv").read_text(encoding="utf-8").splitlines()
        assert header == [",".join(c for c, _ in columns)]  # empty tables keep their header
        frame = getattr(archive, name)
        assert list(frame.columns) == [c for c, _ in columns] and frame.empty
        for column, kind in columns:
            assert f"`{column}`" in docs, f"{name}.{column} is not documented"
            dtype = frame[column].dtype
            match kind:
                case "bool":
                    assert dtype == "bool"
                case "int":
                    assert dtype == "int64"
                case "float":
                    assert dtype == "float64"
                case "str":
                    assert pd.api.types.is_string_dtype(dtype)


def test_directory_name_and_manifest_identify_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = datetime(2026, 11, 28, 12, 15, 30, tzinfo=UTC)
    monkeypatch.setattr(archive_module, "_utcnow", lambda: stamp)
    path = _writer(tmp_path / "new" / "results").close(complete=True)
    manifest = load(path).manifest
    assert re.fullmatch(r"[0-9a-f]{4,64}|nogit", manifest["git_sha"])
    assert path.name == f"20261128T121530Z_sim_ble_{manifest['git_sha']}"
    assert manifest["created_utc"] == "2026-11-28T12:15:30Z"
    assert (manifest["testbed"], manifest["transport"]) == ("sim", "ble")
    assert set(manifest["packages"]) >= {"numpy", "onnx"} and manifest["platform"]["machine"]


def test_archives_are_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = datetime(2026, 11, 28, 12, 15, 30, tzinfo=UTC)
    monkeypatch.setattr(archive_module, "_utcnow", lambda: stamp)
    first, second = _writer(tmp_path), _writer(tmp_path)  # same second
    paths = [first.close(complete=True), second.close(complete=True)]
    squatter = tmp_path / f"{paths[0].name}-3"
    squatter.mkdir()
    (squatter / "keep.txt").write_text("mine")
    paths.append(_writer(tmp_path).close(complete=True))
    assert [p.name for p in paths] == [paths[0].name, f"{paths[0].name}-2", f"{paths[0].name}-4"]
    assert (squatter / "keep.txt").read_text() == "mine"
    assert all(load(p).manifest["complete"] for p in paths)


def test_nothing_is_final_before_close_but_records_are_on_disk(
    tmp_path: Path, reliable: SimResult
) -> None:
    writer = _writer(tmp_path)
    writer.add("latency[ble]", reliable)
    assert _final_dirs(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == [writer.temp_dir.name]
    assert writer.temp_dir.name.startswith(".tmp-")
    # What a killed process leaves behind is already a readable (incomplete) archive.
    partial = load(writer.temp_dir)
    assert not partial.complete
    assert len(partial.inferences) == len(reliable.stage_events)
    assert len(partial.links) == len(reliable.link_events)
    assert list(partial.summary.case) == ["latency[ble]"]


def test_an_exception_midway_leaves_no_final_archive(tmp_path: Path, reliable: SimResult) -> None:
    writer = _writer(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        writer.add("latency[ble]", reliable)
        raise KeyboardInterrupt
    assert _final_dirs(tmp_path) == []


def test_close_incomplete_keeps_exactly_the_recorded_runs(
    tmp_path: Path, reliable: SimResult, lossy: SimResult
) -> None:
    writer = _writer(tmp_path)
    writer.add("latency[ble]", reliable)
    writer.add("paper", lossy, extra={"group": "window-sweep"})
    with pytest.raises(ConfigError, match="already recorded"):
        writer.add("paper", reliable)  # a failing add records nothing
    archive = load(writer.close(complete=False))
    assert not archive.complete and archive.manifest["complete"] is False
    assert list(archive.summary.case) == ["latency[ble]", "paper"]
    assert list(archive.summary.extra_group.fillna("")) == ["", "window-sweep"]
    assert len(archive.inferences) == len(reliable.stage_events) + len(lossy.stage_events)
    assert len(archive.links) == len(reliable.link_events) + len(lossy.link_events)
    assert [c["case"] for c in archive.manifest["cases"]] == ["latency[ble]", "paper"]
    assert list(tmp_path.iterdir()) == [archive.path]  # the temporary directory is gone


def test_closing_twice_or_adding_after_close_is_a_bug(tmp_path: Path, reliable: SimResult) -> None:
    writer = _writer(tmp_path)
    writer.close(complete=True)
    with pytest.raises(RuntimeError, match="twice"):
        writer.close(complete=True)
    with pytest.raises(RuntimeError, match="after close"):
        writer.add("late", reliable)
    assert len(_final_dirs(tmp_path)) == 1


@pytest.mark.parametrize(
    ("case", "run", "extra"),
    [("", 0, None), ("x", -1, None), ("x", 0, {1: "not a string key"})],
)
def test_bad_add_arguments_are_config_errors(
    tmp_path: Path, reliable: SimResult, case: str, run: int, extra: dict[object, object] | None
) -> None:
    writer = _writer(tmp_path)
    with pytest.raises(ConfigError):
        writer.add(case, reliable, run=run, extra=extra)  # type: ignore[arg-type]
    assert load(writer.temp_dir).summary.empty


def test_unwritable_results_dir_is_a_config_error(tmp_path: Path) -> None:
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    for results in (regular, regular / "results"):
        with pytest.raises(ConfigError, match="cannot be written"):
            _writer(results)


def test_names_that_would_break_the_directory_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="testbed"):
        ArchiveWriter(tmp_path, testbed="../up", transport="ble", manifest={})
    with pytest.raises(ConfigError, match="transport"):
        ArchiveWriter(tmp_path, testbed="sim", transport="b_le", manifest={})
    assert list(tmp_path.iterdir()) == []


def _archive(tmp_path: Path) -> Path:
    return _writer(tmp_path / "results").close(complete=True)


def _no_dir(tmp_path: Path) -> Path:
    return tmp_path / "missing"


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "file.csv"
    path.write_text("a,b\n")
    return path


def _no_manifest(tmp_path: Path) -> Path:
    path = _archive(tmp_path)
    (path / "manifest.json").unlink()
    return path


def _bad_json(tmp_path: Path) -> Path:
    path = _archive(tmp_path)
    (path / "manifest.json").write_text("{not json")
    return path


def _not_a_manifest(tmp_path: Path) -> Path:
    path = _archive(tmp_path)
    (path / "manifest.json").write_text("[1, 2]")
    return path


def _newer_schema(tmp_path: Path) -> Path:
    path = _archive(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def _missing_csv(tmp_path: Path) -> Path:
    path = _archive(tmp_path)
    (path / "links.csv").unlink()
    return path


def _missing_column(tmp_path: Path) -> Path:
    path = _archive(tmp_path)
    (path / "energy.csv").write_text("case,run,board\n")
    return path


def _bad_value(tmp_path: Path) -> Path:
    path = _archive(tmp_path)
    header = ",".join(c for c, _ in COLUMNS["inferences"])
    row = ",".join(["c", "0", "0", "1", "", "", "", "", "", "", "", "maybe", "false"])
    (path / "inferences.csv").write_text(f"{header}\n{row}\n")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_no_dir, "not a directory"),
        (_a_file, "not a directory"),
        (_no_manifest, "no manifest.json"),
        (_bad_json, "cannot read"),
        (_not_a_manifest, "no schema_version"),
        (_newer_schema, "newer than this tinysplit"),
        (_missing_csv, "missing links.csv"),
        (_missing_column, "missing columns"),
        (_bad_value, "completed"),
    ],
)
def test_load_refuses_bad_input_with_one_line(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value)


def test_importing_results_does_not_import_pandas() -> None:
    code = "import sys, tinysplit.results; print('pandas' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_unknown_rssi_and_setup_are_null_in_the_manifest(
    tmp_path: Path, reliable: SimResult
) -> None:
    """A board that reports no RSSI (NaN) must not break the manifest's strict JSON."""
    unknown = SimResult(
        config=reliable.config,
        plan=reliable.plan,
        stage_events=reliable.stage_events,
        link_events=reliable.link_events,
        injected_s=reliable.injected_s,
        duration_s=reliable.duration_s,
        setup_s=[math.nan, *reliable.setup_s[1:]],
        rssi_dbm=[math.nan, *reliable.rssi_dbm[1:]],
        energy_j=reliable.energy_j,
    )
    writer = _writer(tmp_path)
    writer.add("case", unknown)
    writer.close(complete=True)
    (case,) = load(_final_dirs(tmp_path)[0]).manifest["cases"]
    assert case["rssi_dbm"][0] is None and case["setup_s"][0] is None
    assert case["rssi_dbm"][1:] == list(reliable.rssi_dbm[1:])
