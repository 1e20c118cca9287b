"""Results of ``tinysplit calibrate`` and the calibration file they become.

The fit types carry every constant with its standard error and fit quality; ``to_toml`` writes
them with that provenance as comments, in the format :mod:`tinysplit.links.calibration` loads.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tinysplit.fileio import write_text_atomic
from tinysplit.links.calibration import CALIBRATION_FORMAT, compute_data_hash, data_hash


@dataclass(frozen=True, slots=True, kw_only=True)
class FitQuality:
    """How well a fitted line reproduces the measurements.

    Attributes:
        rows: measurements fitted.
        r2: coefficient of determination (1 - residual / total sum of squares about the mean of
            the measurements); None when the measurements do not vary.
        rms_residual_s: root mean square of measured - fitted, seconds.
        max_residual_s: largest absolute residual, seconds.
        relative_rms: ``rms_residual_s`` over the mean measurement.
    """

    rows: int
    r2: float | None
    rms_residual_s: float
    max_residual_s: float
    relative_rms: float

    def describe(self) -> str:
        """One line for tables and file comments."""
        r2 = "n/a" if self.r2 is None else f"{self.r2:.4f}"
        return (
            f"R^2 {r2}, rms residual {self.rms_residual_s * 1e3:.3g} ms "
            f"({self.relative_rms:.2%}), max {self.max_residual_s * 1e3:.3g} ms"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SizeResidual:
    """The link fit at one tensor size: mean measured vs mean fitted duration."""

    bytes: int
    rows: int
    measured_s: float
    model_s: float
    fitted_s: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkCalibration:
    """Fitted correction of one transport: ``measured = time_scale x model + overhead_s``.

    Attributes:
        transport: transport id.
        profiles: link profiles the run used (each row is compared with its own profile).
        time_scale: fitted scale (> 0).
        overhead_s: fitted overhead per transfer in seconds (0 when not identifiable).
        time_scale_se, overhead_se_s: their standard errors (None: too few rows to tell; the
            overhead's also when it is not fitted).
        overhead_fitted: False when the run's sizes could not separate an overhead.
        quality: fit quality over the transfers.
        residuals: the fit per tensor size.
    """

    transport: str
    profiles: tuple[str, ...]
    time_scale: float
    overhead_s: float
    overhead_fitted: bool
    time_scale_se: float | None
    overhead_se_s: float | None
    quality: FitQuality
    residuals: tuple[SizeResidual, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "transport": self.transport,
            "profiles": list(self.profiles),
            "time_scale": self.time_scale,
            "overhead_s": self.overhead_s,
            "overhead_fitted": self.overhead_fitted,
            "time_scale_se": self.time_scale_se,
            "overhead_se_s": self.overhead_se_s,
            "quality": self.quality.to_dict(),
            "residuals": [r.to_dict() for r in self.residuals],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StageRatio:
    """One stage's measured compute time against the plan's estimate."""

    stage: int
    rows: int
    model_s: float
    measured_s: float

    @property
    def ratio(self) -> float:
        """Mean measured time over the estimate."""
        return self.measured_s / self.model_s if self.model_s > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "stage": self.stage,
            "rows": self.rows,
            "model_s": self.model_s,
            "measured_s": self.measured_s,
            "ratio": self.ratio,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeCalibration:
    """Fitted compute scale: ``measured = scale x estimated_compute_s``.

    Attributes:
        scale: the fitted factor (> 0).
        scale_se: its standard error (None: a single row).
        quality: fit quality over every stage's inferences.
        stages: measured against estimated time per stage.
    """

    scale: float
    scale_se: float | None
    quality: FitQuality
    stages: tuple[StageRatio, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "scale": self.scale,
            "scale_se": self.scale_se,
            "quality": self.quality.to_dict(),
            "stages": [s.to_dict() for s in self.stages],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationFit:
    """Everything :func:`calibrate` fitted from one archive.

    Attributes:
        run_dir: the archive directory (absolute).
        testbed: the archive's testbed (``hw``, or ``sim`` with ``allow_sim``).
        archive_created_utc, archive_git_sha: from the archive's manifest.
        archive_complete: False for an interrupted run (its recorded inferences are used).
        fitted_utc: when the fit was made.
        compute: the compute scale, or None when the archive holds no timed inference.
        links: corrections per transport (transports without delivered transfers are absent).
        notes: what the fit could not do, one sentence each.
    """

    run_dir: Path
    testbed: str
    archive_created_utc: str | None
    archive_git_sha: str | None
    archive_complete: bool
    fitted_utc: str
    compute: ComputeCalibration | None
    links: Mapping[str, LinkCalibration] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "links", MappingProxyType(dict(self.links)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``tinysplit calibrate --json``)."""
        return {
            "run_dir": str(self.run_dir),
            "testbed": self.testbed,
            "archive_created_utc": self.archive_created_utc,
            "archive_git_sha": self.archive_git_sha,
            "archive_complete": self.archive_complete,
            "fitted_utc": self.fitted_utc,
            "compute": None if self.compute is None else self.compute.to_dict(),
            "links": {t: link.to_dict() for t, link in self.links.items()},
            "notes": list(self.notes),
        }

    def to_toml(self) -> str:
        """The calibration file the simulator loads (``--calibration``), every constant sourced."""
        run = str(self.run_dir)
        lines = [
            f"# tinysplit calibration file (format {CALIBRATION_FORMAT}), written by "
            f"`tinysplit calibrate` at {self.fitted_utc}.",
            f"# Source: result archive {run}",
            f"#   testbed {self.testbed}, created {self.archive_created_utc}, git "
            f"{self.archive_git_sha}{'' if self.archive_complete else ', INCOMPLETE run'}.",
            "# Use: tinysplit simulate --calibration FILE | pytest bench/ --calibration FILE |",
            "#      TINYSPLIT_CALIBRATION=FILE. Factors correct the packaged model data named by",
            "#      the two hashes below; the simulator refuses the file if that data changed.",
            "# Tags as in links/data/esp32s3.toml: [measured] fitted on the run, "
            "[derived] computed.",
        ]
        lines += [f"# Note: {note}" for note in self.notes]
        lines += [
            f"format = {CALIBRATION_FORMAT}",
            "# [derived] sha256 of the packaged link data (links/data/esp32s3.toml) fitted against",
            f'links_data_sha256 = "{data_hash()}"',
            "# [derived] sha256 of the packaged compute data (partition/data/compute-esp32s3.toml)",
            f'compute_data_sha256 = "{compute_data_hash()}"',
            "",
            "[source]",
            f"run_dir = {_toml_str(run)}",
            f"testbed = {_toml_str(self.testbed)}",
            f"archive_created_utc = {_toml_str(self.archive_created_utc or '')}",
            f"archive_git_sha = {_toml_str(self.archive_git_sha or '')}",
            f"fitted_utc = {_toml_str(self.fitted_utc)}",
        ]
        if self.compute is not None:
            c = self.compute
            ratios = [s.ratio for s in c.stages]
            lines += ["", "[compute]"]
            lines += _comment(
                "[measured] fitted on the run above: inference_end - inference_start = scale x "
                f"the plan's estimate, least squares through 0 over {c.quality.rows} stage "
                f"inferences; {_se(c.scale_se)}{c.quality.describe()}; measured/estimate per "
                f"stage {min(ratios):.3f}..{max(ratios):.3f}"
            )
            lines.append(f"scale = {_toml_float(c.scale)}")
        for transport, link in self.links.items():
            how = (
                "time_scale x model + overhead_s" if link.overhead_fitted else "time_scale x model"
            )
            lines += ["", f"[link.{transport}]"]
            lines += _comment(
                f"[measured] fitted on the run above: duration = {how}, least squares over "
                f"{link.quality.rows} delivered transfers of {len(link.residuals)} tensor sizes "
                f"(profiles {', '.join(link.profiles)}); {_se(link.time_scale_se)}"
                f"{link.quality.describe()}"
            )
            lines.append(f"time_scale = {_toml_float(link.time_scale)}")
            lines += _comment(
                f"[measured] same fit; {_se(link.overhead_se_s, 's')}".rstrip("; ")
                if link.overhead_fitted
                else "[derived] 0: not identifiable, the run's transfers are all about one size"
            )
            lines.append(f"overhead_s = {_toml_float(link.overhead_s)}")
        return "\n".join(lines) + "\n"


def write_calibration(fit: CalibrationFit, path: str | Path) -> Path:
    """Write ``fit`` as a calibration file atomically and check it loads; returns the path.

    Raises:
        ConfigError: the file cannot be written.
    """
    from tinysplit.links.calibration import load_user_calibration

    target = Path(path)
    write_text_atomic(target, fit.to_toml(), what="calibration file")
    load_user_calibration(target)  # what was written must be what the simulator reads
    return target


def _se(value: float | None, unit: str = "") -> str:
    """``standard error X; `` for comments (empty when unknown)."""
    if value is None:
        return ""
    return f"standard error {value:.2g}{' ' + unit if unit else ''}; "


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_float(value: float) -> str:
    """Six significant digits (fits are not more precise), always a TOML float."""
    text = f"{float(value):.6g}"
    return text if any(c in text for c in ".en") else f"{text}.0"


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, width=96)]
