"""Calibration: user calibration files in the simulator, and ``tinysplit calibrate`` fits.

A "hardware" archive here is the simulator run under a deliberately scaled calibration file and
written with testbed ``hw``: calibrate must recover the scales it was made with. An archive made
with the packaged data must give factors of about 1 (the round trip).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pandas  # noqa: F401  imported before pytester snapshots sys.modules: it cannot reload C code
import pytest

from tinysplit.cli import main
from tinysplit.errors import ConfigError
from tinysplit.links.calibration import (
    CALIBRATION_ENV,
    active_calibration,
    calibration_hash,
    calibration_override,
    compute_data_hash,
    data_hash,
    load_user_calibration,
)
from tinysplit.partition import Plan
from tinysplit.results import ArchiveWriter, load
from tinysplit.sim.pipeline import PipelineConfig, simulate
from tinysplit.testbed.hw.calibrate import calibrate
from tinysplit.testbed.hw.calibration_file import write_calibration

pytest_plugins = ["pytester"]

RSSI = (-50.0, -62.0, -71.0, -55.0)


@pytest.fixture(autouse=True)
def _no_user_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CALIBRATION_ENV, raising=False)


@pytest.fixture(scope="module")
def paper_plan() -> Plan:
    """The paper's 5-board split: tensors of 200,704 / 100,352 / 2,048 bytes between boards."""
    from tinysplit.links.calibration import sourced_goodput_bps
    from tinysplit.model import load_model
    from tinysplit.partition import partition

    return partition(
        load_model("paper"),
        strategy="paper",
        devices=5,
        transport="ble",
        link_rate_bps=sourced_goodput_bps("ble"),
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _archive(
    results: Path, plan: Plan, *, testbed: str, calibration: Path | None = None, runs: int = 2
) -> Path:
    """Simulate ``runs`` runs of 6 inferences (under ``calibration``) into one archive."""
    with calibration_override(calibration):
        writer = ArchiveWriter(results, testbed=testbed, transport="ble", manifest={})
        for seed in range(runs):
            config = PipelineConfig(transport="ble", inferences=6, seed=seed, rssi_dbm=RSSI)
            writer.add("latency[ble]", simulate(plan, config), run=seed)
        return writer.close(complete=True)


SCALED = """format = 1
[compute]
scale = 1.25   # pretend the boards compute 25 % slower than the model
[link.ble]
time_scale = 0.8
overhead_s = 0.5
"""


# ------------------------------------------------------------------------- the simulator side


def test_no_calibration_file_means_the_packaged_data() -> None:
    active = active_calibration()
    assert active.path is None
    assert active.compute_scale == 1.0
    assert active.link("ble").identity
    assert calibration_hash() == data_hash()


def test_a_calibration_file_scales_compute_and_transfers(tmp_path: Path, paper_plan: Plan) -> None:
    config = PipelineConfig(transport="ble", inferences=2, seed=3, rssi_dbm=RSSI)
    base = simulate(paper_plan, config)
    file = _write(tmp_path / "cal.toml", SCALED)
    with calibration_override(file) as loaded:
        scaled = simulate(paper_plan, config)
        assert os.environ[CALIBRATION_ENV] == str(file.resolve())
        assert calibration_hash() == hashlib.sha256(file.read_bytes()).hexdigest()
    assert loaded.compute_scale == 1.25
    assert CALIBRATION_ENV not in os.environ  # restored
    for b, s in zip(base.stage_events, scaled.stage_events, strict=True):
        assert s.inference_end_s - s.inference_start_s == pytest.approx(
            1.25 * (b.inference_end_s - b.inference_start_s), rel=1e-12
        )
    for b, s in zip(base.link_events, scaled.link_events, strict=True):
        # Same generator draws: the correction is applied to the very same transfer.
        assert s.result.duration_s == pytest.approx(0.8 * b.result.duration_s + 0.5, rel=1e-12)
        assert s.result.sender_tx_s == b.result.sender_tx_s  # airtime is not corrected


def test_the_archive_manifest_names_the_file_it_used(tmp_path: Path, paper_plan: Plan) -> None:
    file = _write(tmp_path / "cal.toml", SCALED)
    plain = load(_archive(tmp_path / "a", paper_plan, testbed="sim", runs=1)).manifest
    used = load(_archive(tmp_path / "b", paper_plan, testbed="sim", calibration=file, runs=1))
    assert plain["calibration_file"] is None
    assert plain["calibration_hash"] == data_hash()
    assert used.manifest["calibration_file"] == str(file.resolve())
    assert used.manifest["calibration_hash"] == hashlib.sha256(file.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format = 2\n", "format must be 1"),
        ("format = 1\nspeed = 3\n", "unknown key(s) speed"),
        ("format = 1\n[compute]\nscale = -1.0\n", "compute scale must be a finite number > 0"),
        ("format = 1\n[compute]\nfactor = 1.0\n", "unknown key(s) factor"),
        ("format = 1\n[link.zigbee]\ntime_scale = 1.0\n", "unknown transport [link.zigbee]"),
        ("format = 1\n[link.ble]\ntime_scale = 0\n", "time_scale must be a finite number > 0"),
        ("format = 1\n[link.ble]\noverhead_s = 'x'\n", "must be a number"),
        ('format = 1\nlinks_data_sha256 = "abc"\n', "fitted against other packaged link data"),
        ('format = 1\ncompute_data_sha256 = "abc"\n', "fitted against other packaged compute"),
        ("format = = 1\n", "not TOML"),
    ],
)
def test_bad_calibration_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    file = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match="calibration file") as info:
        load_user_calibration(file)
    assert message in str(info.value)
    assert str(file) in str(info.value)
    assert "\n" not in str(info.value)


def test_the_environment_variable_selects_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _write(tmp_path / "cal.toml", SCALED)
    monkeypatch.setenv(CALIBRATION_ENV, str(file))
    assert active_calibration().compute_scale == 1.25
    file.write_text(SCALED.replace("1.25", "1.5"), encoding="utf-8")
    os.utime(file, ns=(1, 1))  # a changed file is read again (mtime and size are the cache key)
    assert active_calibration().compute_scale == 1.5
    monkeypatch.setenv(CALIBRATION_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=f"{CALIBRATION_ENV}=.*missing.toml: calibration file"):
        active_calibration()


def test_simulate_command_takes_a_calibration_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _write(tmp_path / "cal.toml", SCALED)
    args = ["simulate", "--transport", "ble", "--model", "mobilenet_v1:alpha=0.25,input_size=32",
            "--devices", "2", "--inferences", "2", "--json"]  # fmt: skip
    assert main(args) == 0
    base = json.loads(capsys.readouterr().out)
    assert main([*args, "--calibration", str(file)]) == 0
    scaled = json.loads(capsys.readouterr().out)
    assert base["calibration_file"] is None
    assert scaled["calibration_file"] == str(file.resolve())
    assert scaled["inference_s"] == pytest.approx(1.25 * base["inference_s"], rel=1e-9)
    assert CALIBRATION_ENV not in os.environ
    assert main([*args, "--calibration", str(tmp_path / "nope.toml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinysplit: error: calibration file") and "\n" not in err


def test_an_emulated_hardware_run_under_a_calibration_is_recovered(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """End to end: pytest --testbed hw on emulated boards, whose emulator (a subprocess) runs the
    simulator under ``--calibration``; calibrate fits the hardware archive back."""
    file = _write(tmp_path / "cal.toml", SCALED)
    pytester.makepyfile(
        test_bench="""
def test_case(bench, transport):
    plan = bench.plan(transport)
    bench.run("case", bench.config(transport, plan, inferences=8), plan)
"""
    )
    inventory = Path(__file__).parents[2] / "fixtures" / "emulated-boards.toml"
    results = tmp_path / "results"
    result = pytester.runpytest_subprocess(
        "--model", "mobilenet_v1:alpha=0.25,input_size=64", "--device-profile", "esp32s3-n8r8",
        "--testbed", "hw", "--inventory", str(inventory), "-p", "no:cacheprovider",
        "--results-dir", str(results), "--calibration", str(file),
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    (archive,) = results.iterdir()
    manifest = load(archive).manifest
    assert manifest["testbed"] == "hw"
    assert manifest["calibration_file"] == str(file.resolve())
    assert manifest["calibration_hash"] == hashlib.sha256(file.read_bytes()).hexdigest()
    fit = calibrate(archive)
    assert fit.compute is not None and fit.compute.scale == pytest.approx(1.25, rel=1e-6)
    ble = fit.links["ble"]
    assert ble.quality.rows == 8 * 4
    # Tensors of 0.5-4 kB: a few BLE connection events each, so every transfer varies a lot and
    # the scale is known to a few percent only; it must sit within its standard errors.
    assert ble.time_scale_se is not None and ble.overhead_se_s is not None
    assert abs(ble.time_scale - 0.8) < 3 * ble.time_scale_se
    assert abs(ble.overhead_s - 0.5) < 3 * ble.overhead_se_s
    bad = pytester.runpytest_subprocess("--calibration", str(tmp_path / "nope.toml"))
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--calibration: calibration file*nope.toml*"])


# ---------------------------------------------------------------------------------- the fits


@pytest.fixture(scope="module")
def archives(
    tmp_path_factory: pytest.TempPathFactory, paper_plan: Plan
) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("archives")
    scaled = _write(root / "scaled.toml", SCALED)
    saved = os.environ.pop(CALIBRATION_ENV, None)
    try:
        yield {
            "sim": _archive(root / "sim", paper_plan, testbed="sim"),
            "hw": _archive(root / "hw", paper_plan, testbed="hw", calibration=scaled),
        }
    finally:
        if saved is not None:
            os.environ[CALIBRATION_ENV] = saved


def test_a_simulated_archive_needs_allow_sim(archives: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"a sim archive; calibrate fits hardware.*--allow-sim"):
        calibrate(archives["sim"])


def test_the_packaged_data_round_trips_to_factors_of_one(archives: dict[str, Path]) -> None:
    fit = calibrate(archives["sim"], allow_sim=True)
    assert fit.compute is not None
    assert fit.compute.scale == pytest.approx(1.0, abs=1e-9)
    assert fit.compute.quality.r2 == pytest.approx(1.0)
    assert all(s.ratio == pytest.approx(1.0) for s in fit.compute.stages)
    ble = fit.links["ble"]
    assert ble.overhead_fitted
    assert ble.time_scale == pytest.approx(1.0, abs=0.02)
    assert ble.time_scale_se is not None and ble.time_scale_se < 0.01
    mean_transfer = sum(r.measured_s * r.rows for r in ble.residuals) / ble.quality.rows
    assert abs(ble.overhead_s) < 0.01 * mean_transfer
    assert ble.quality.r2 is not None and ble.quality.r2 > 0.99
    assert [r.bytes for r in ble.residuals] == [2048, 100352, 200704]
    assert ble.quality.rows == 2 * 6 * 4  # runs x inferences x links, all delivered


def test_calibrate_recovers_the_scales_a_run_was_made_with(
    archives: dict[str, Path], tmp_path: Path, paper_plan: Plan
) -> None:
    fit = calibrate(archives["hw"])
    assert fit.testbed == "hw"
    assert fit.compute is not None and fit.compute.scale == pytest.approx(1.25, rel=0.01)
    ble = fit.links["ble"]
    assert ble.time_scale == pytest.approx(0.8, rel=0.03)
    assert ble.overhead_s == pytest.approx(0.5, abs=0.1)
    out = write_calibration(fit, tmp_path / "fitted.toml")
    text = out.read_text(encoding="utf-8")
    assert str(fit.run_dir) in text and "R^2" in text and "[measured]" in text
    loaded = load_user_calibration(out)
    assert loaded.compute_scale == pytest.approx(1.25, rel=0.01)
    assert loaded.link("ble").time_scale == pytest.approx(ble.time_scale, rel=1e-5)
    # Every constant carries its source: each value follows a comment that starts with its tag.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("scale =", "time_scale =", "overhead_s =")):
            start = i - 1
            while lines[start - 1].startswith("#"):
                start -= 1
            assert lines[start].startswith(("# [measured]", "# [derived]")), line
    # The fitted file makes the simulator reproduce the "hardware" run's timing.
    refit = calibrate(_archive(tmp_path / "again", paper_plan, testbed="hw", calibration=out))
    assert refit.compute is not None and refit.compute.scale == pytest.approx(1.25, rel=0.01)
    assert refit.links["ble"].time_scale == pytest.approx(0.8, rel=0.03)
    assert fit.to_dict()["links"]["ble"]["quality"]["rows"] == 48
    assert math.isfinite(fit.links["ble"].quality.rms_residual_s)
    assert loaded.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert f'links_data_sha256 = "{data_hash()}"' in text
    assert f'compute_data_sha256 = "{compute_data_hash()}"' in text


def test_one_tensor_size_fits_the_scale_only(tmp_path: Path) -> None:
    from tinysplit.model import load_model
    from tinysplit.partition import partition

    plan = partition(load_model("mobilenet_v1:alpha=0.25,input_size=32"), strategy="paper",
                     devices=2, transport="ble")  # fmt: skip
    writer = ArchiveWriter(tmp_path, testbed="hw", transport="ble", manifest={})
    config = PipelineConfig(transport="ble", inferences=40, rssi_dbm=(-60.0,))
    writer.add("one-link", simulate(plan, config))
    fit = calibrate(writer.close(complete=False))
    ble = fit.links["ble"]
    assert not ble.overhead_fitted and ble.overhead_s == 0.0 and ble.overhead_se_s is None
    # 1 kB BLE transfers vary by ~20 % each: the scale is 1 within its (honest) standard error.
    assert ble.time_scale_se is not None and 0.01 < ble.time_scale_se < 0.05
    assert abs(ble.time_scale - 1.0) < 3 * ble.time_scale_se
    assert any("overhead not identifiable" in note for note in fit.notes)
    assert any("incomplete" in note for note in fit.notes)
    assert "[derived] 0: not identifiable" in fit.to_toml()


def test_calibrate_command(
    archives: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "calibration.toml"
    assert main(["calibrate", str(archives["hw"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "compute.scale" in text and "link.ble.time_scale" in text and f"wrote {out}" in text
    assert load_user_calibration(out).compute_scale == pytest.approx(1.25, rel=0.01)
    assert main(["calibrate", str(archives["hw"]), "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["out"] == str(out) and data["links"]["ble"]["overhead_fitted"] is True
    assert main(["calibrate", str(archives["sim"]), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-sim" in err
    assert main(["calibrate", str(archives["sim"]), "--out", str(out), "--allow-sim"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_not_an_archive_is_a_one_line_error(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "run"
    if kind == "empty":
        target.mkdir()
    elif kind == "file":
        target.write_text("x")
    assert main(["calibrate", str(target), "--out", str(tmp_path / "c.toml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: ") and err.count("\n") == 1
    assert "not a result archive" in err or "not a directory" in err
    assert not (tmp_path / "c.toml").exists()
