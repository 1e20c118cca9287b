"""Fit the simulator's corrections to a hardware run: ``tinysplit calibrate RUN_DIR``.

Two fits, both plain least squares, each reported with its quality so nobody trusts a bad one:

* **Links, per transport.** Every delivered transfer of ``links.csv`` is compared with the
  packaged link model's mean duration for the same tensor size, RSSI, window and mode (the mean of
  at least :data:`MODEL_DRAWS` seeded draws of that transfer, more for noisy small transfers, up
  to :data:`MAX_MODEL_DRAWS`): ``measured = time_scale x model + overhead_s``. The overhead is
  only fitted when the run holds transfers of clearly different sizes (model durations spread by
  at least :data:`MIN_SPREAD`); otherwise it stays 0 and the scale is fitted through the origin,
  and the result says so.
* **Compute.** Every stage's measured ``inference_end - inference_start`` is compared with the
  plan's ``estimated_compute_s`` (divided by the dual-core speedup when the run used both cores):
  one multiplicative ``scale``, fitted through the origin. Per layer class factors are not fitted:
  a run gives one total per stage, five or so sums over six layer classes whose mixes are nearly
  proportional, so per-class factors are not identifiable from it. The per-stage ratios are
  reported instead, so a stage that a single factor fits badly is visible.

Every fitted constant comes with its standard error (from the residual variance of its fit), R^2
and the residuals, and the calibration file carries them as comments.

Both fits are relative to the **packaged** model data (never to a user calibration that may be in
force), and the calibration file records the sha256 of that data, so the simulator refuses to
apply it to other data. ``docs/hardware.md`` ("Calibration") describes the workflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.testbed.hw.calibration_file import (
    CalibrationFit,
    ComputeCalibration,
    FitQuality,
    LinkCalibration,
    SizeResidual,
    StageRatio,
)

if TYPE_CHECKING:
    from tinysplit.links import LinkConditions, LinkModel
    from tinysplit.partition import Plan
    from tinysplit.results.load import Archive
    from tinysplit.sim.pipeline import PipelineConfig

#: Seeded draws of the link model averaged per distinct transfer, at least...
MODEL_DRAWS = 16
#: ...and at most, drawing more until the mean's standard error is under :data:`MODEL_REL_SE`.
MAX_MODEL_DRAWS = 512
MODEL_REL_SE = 0.002
#: Smallest relative spread (max / min) of the model durations that identifies an overhead.
MIN_SPREAD = 1.5


def calibrate(
    run_dir: str | Path, *, allow_sim: bool = False, draws: int = MODEL_DRAWS
) -> CalibrationFit:
    """Fit the link and compute corrections of the simulator to one result archive.

    Args:
        run_dir: a result archive directory (``tinysplit.results.load``).
        allow_sim: accept a simulated archive (useful to check the fit: an archive made with the
            packaged data gives factors of about 1).
        draws: seeded link-model draws averaged per distinct transfer, at least (>= 1).

    Raises:
        ConfigError: not an archive, a simulated archive without ``allow_sim``, a manifest
            without the cases' configurations and plans, or nothing to fit.
    """
    from tinysplit.results import load

    if draws < 1:
        raise ConfigError(f"draws must be >= 1, got {draws}")
    archive = load(run_dir)
    manifest = archive.manifest
    testbed = str(manifest.get("testbed"))
    where = str(archive.path)
    if testbed != "hw" and not allow_sim:
        raise ConfigError(
            f"{where}: a {testbed} archive; calibrate fits hardware measurements "
            "(--allow-sim fits a simulated run anyway)"
        )
    cases = _cases(archive)
    notes: list[str] = []
    if not archive.complete:
        notes.append("the archive is incomplete (interrupted run): its recorded rows were used")
    compute = _fit_compute(archive, cases, notes)
    links = _fit_links(archive, cases, draws, notes)
    if compute is None and not links:
        raise ConfigError(f"{where}: nothing to fit (no timed inference and no delivered transfer)")
    return CalibrationFit(
        run_dir=archive.path.resolve(),
        testbed=testbed,
        archive_created_utc=manifest.get("created_utc"),
        archive_git_sha=manifest.get("git_sha"),
        archive_complete=archive.complete,
        fitted_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        compute=compute,
        links=links,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------ internals


@dataclass(frozen=True, slots=True)
class _Case:
    config: PipelineConfig
    plan: Plan


def _cases(archive: Archive) -> dict[tuple[str, int], _Case]:
    """Each recorded (case, run)'s pipeline configuration and plan, from the manifest."""
    from tinysplit.partition import Plan
    from tinysplit.sim.pipeline import PipelineConfig

    where = str(archive.path)
    plans = archive.manifest.get("plans")
    entries = archive.manifest.get("cases")
    if not isinstance(plans, dict) or not isinstance(entries, list):
        raise ConfigError(f"{where}: manifest has no cases/plans to fit against")
    known = {f.name for f in fields(PipelineConfig)}
    cases: dict[tuple[str, int], _Case] = {}
    for entry in entries:
        try:
            raw = {k: v for k, v in dict(entry["config"]).items() if k in known}
            if raw.get("rssi_dbm") is not None:
                raw["rssi_dbm"] = tuple(float(v) for v in raw["rssi_dbm"])
            if raw.get("positions_m") is not None:
                raw["positions_m"] = tuple(tuple(float(x) for x in p) for p in raw["positions_m"])
            plan = Plan.from_dict(plans[entry["plan"]])
            cases[str(entry["case"]), int(entry["run"])] = _Case(PipelineConfig(**raw), plan)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: malformed case in manifest.json ({exc!r})") from exc
    return cases


def _fit_compute(
    archive: Archive, cases: Mapping[tuple[str, int], _Case], notes: list[str]
) -> ComputeCalibration | None:
    from tinysplit.partition.cost import load_compute_model

    rows = archive.inferences
    duration = (rows["inference_end_s"] - rows["inference_start_s"]).to_numpy(dtype=float)
    speedup = load_compute_model().dual_core_speedup
    measured: list[float] = []
    model: list[float] = []
    stages: list[int] = []
    for (case, run, stage), d in zip(
        zip(rows["case"], rows["run"], rows["stage"], strict=True), duration, strict=True
    ):
        info = cases.get((str(case), int(run)))
        if info is None or not math.isfinite(d) or not 1 <= int(stage) <= len(info.plan.stages):
            continue
        estimate = info.plan.stages[int(stage) - 1].estimated_compute_s
        estimate /= speedup if info.config.dual_core else 1.0
        if estimate > 0:
            measured.append(float(d))
            model.append(estimate)
            stages.append(int(stage))
    if not measured:
        notes.append("no timed inference (inference_start/end): the compute scale is not fitted")
        return None
    d_arr, m_arr = np.asarray(measured), np.asarray(model)
    (scale,), (scale_se,) = _least_squares(m_arr[:, None], d_arr)
    per_stage = []
    for stage in sorted(set(stages)):
        pick = np.asarray(stages) == stage
        per_stage.append(
            StageRatio(
                stage=stage,
                rows=int(pick.sum()),
                model_s=float(m_arr[pick].mean()),
                measured_s=float(d_arr[pick].mean()),
            )
        )
    return ComputeCalibration(
        scale=scale,
        scale_se=scale_se,
        quality=_quality(d_arr, scale * m_arr),
        stages=tuple(per_stage),
    )


def _fit_links(
    archive: Archive, cases: Mapping[tuple[str, int], _Case], draws: int, notes: list[str]
) -> dict[str, LinkCalibration]:
    from tinysplit.links import LinkConditions, Mode, default_profile, make_link
    from tinysplit.sim.pipeline import link_hops

    rows = archive.links
    hops: dict[tuple[str, int], tuple[list[float], list[float | None]]] = {}
    keys: dict[tuple[Any, ...], list[int]] = {}  # distinct transfer -> row indices
    skipped = no_rssi = 0
    for i, (case, run, stage, size, rssi, window, mode, delivered, duration) in enumerate(
        zip(
            rows["case"], rows["run"], rows["stage"], rows["bytes"], rows["rssi_dbm"],
            rows["window"], rows["mode"], rows["delivered"], rows["duration_s"], strict=True,
        )
    ):  # fmt: skip
        info = cases.get((str(case), int(run)))
        if info is None or not math.isfinite(float(duration)):
            continue
        if not bool(delivered):
            skipped += 1
            continue
        config = info.config
        boards = len(info.plan.stages)
        if (str(case), int(run)) not in hops:
            try:
                hops[str(case), int(run)] = link_hops(config, boards)
            except ConfigError:  # a configuration without RSSI or positions: rows only
                hops[str(case), int(run)] = ([math.nan] * boards, [None] * boards)
        first, relay = hops[str(case), int(run)]
        # The row's RSSI is what the boards measured; the relay hop through a Wi-Fi SoftAP is
        # only known to the configuration.
        rssi = float(rssi) if math.isfinite(float(rssi)) else first[int(stage) - 1]
        if not math.isfinite(rssi):
            no_rssi += 1
            continue
        relay_rssi = relay[int(stage) - 1]
        profile = config.link_profile or default_profile(config.transport)
        key = (config.transport, profile, str(mode), int(window), int(size), float(rssi),
               relay_rssi)  # fmt: skip
        keys.setdefault(key, []).append(i)
    if skipped:
        notes.append(f"{skipped} undelivered transfers (paper-mode failures) were left out")
    if no_rssi:
        notes.append(f"{no_rssi} transfers without an RSSI (none measured) were left out")
    model_mean: dict[tuple[Any, ...], float] = {}
    links_cache: dict[tuple[str, str], Any] = {}
    for number, key in enumerate(sorted(keys, key=repr)):
        transport, profile, mode, window, size, rssi, relay_rssi = key
        link = links_cache.setdefault((transport, profile), make_link(transport, profile))
        conditions = LinkConditions(
            rssi_dbm=rssi, window=window, mode=Mode(mode), relay_rssi_dbm=relay_rssi
        )
        rng = np.random.default_rng([2024, number])
        model_mean_s = _model_mean(link, size, conditions, rng, draws)
        if model_mean_s is not None:
            model_mean[key] = model_mean_s
    duration = rows["duration_s"].to_numpy(dtype=float)
    fits: dict[str, LinkCalibration] = {}
    for transport in sorted({k[0] for k in keys}):
        chosen = [k for k in keys if k[0] == transport and k in model_mean]
        if len(chosen) < len([k for k in keys if k[0] == transport]):
            notes.append(
                f"{transport}: the model never delivers some transfers; they were left out"
            )
        index = [i for k in chosen for i in keys[k]]
        if not index:
            continue
        measured = duration[index]
        model = np.asarray([model_mean[k] for k in chosen for _ in keys[k]])
        sizes = np.asarray([k[4] for k in chosen for _ in keys[k]])
        fits[transport] = _fit_link(
            transport, sorted({k[1] for k in chosen}), measured, model, sizes, notes
        )
    if not keys:
        notes.append("no delivered transfer in links.csv: no link correction is fitted")
    return fits


def _model_mean(
    link: LinkModel,
    size: int,
    conditions: LinkConditions,
    rng: np.random.Generator,
    draws: int,
) -> float | None:
    """Mean duration of the delivered draws of one transfer (None: none delivered).

    At least ``draws`` draws, then more (up to :data:`MAX_MODEL_DRAWS`) until the mean's
    standard error is below :data:`MODEL_REL_SE` of it: small transfers vary most.
    """
    durations: list[float] = []
    made = 0
    while made < max(draws, MAX_MODEL_DRAWS):
        result = link.transfer(size, conditions, rng)
        made += 1
        if result.delivered:
            durations.append(float(result.duration_s))
        if made >= draws and len(durations) >= 2:
            mean = float(np.mean(durations))
            se = float(np.std(durations, ddof=1)) / math.sqrt(len(durations))
            if se <= MODEL_REL_SE * mean:
                break
    return float(np.mean(durations)) if durations else None


def _fit_link(
    transport: str,
    profiles: Sequence[str],
    measured: np.ndarray,
    model: np.ndarray,
    sizes: np.ndarray,
    notes: list[str],
) -> LinkCalibration:
    spread = float(model.max() / model.min()) if model.min() > 0 else math.inf
    overhead_fitted = len(set(sizes.tolist())) >= 2 and spread >= MIN_SPREAD
    (scale,), (scale_se,) = _least_squares(model[:, None], measured)
    overhead, overhead_se = 0.0, None
    if overhead_fitted:
        design = np.column_stack([model, np.ones_like(model)])
        (two_scale, two_overhead), (two_scale_se, two_overhead_se) = _least_squares(
            design, measured
        )
        if two_scale > 0:
            scale, overhead = two_scale, two_overhead
            scale_se, overhead_se = two_scale_se, two_overhead_se
        else:
            overhead_fitted = False
            notes.append(f"{transport}: the two-parameter fit gave a scale <= 0; fitted scale only")
    else:
        notes.append(
            f"{transport}: the transfers' model durations spread by {spread:.2f}x (< "
            f"{MIN_SPREAD}x): overhead not identifiable, fitted the scale through 0"
        )
    fitted = scale * model + overhead
    residuals = []
    for size in sorted(set(sizes.tolist())):
        pick = sizes == size
        residuals.append(
            SizeResidual(
                bytes=int(size),
                rows=int(pick.sum()),
                measured_s=float(measured[pick].mean()),
                model_s=float(model[pick].mean()),
                fitted_s=float(fitted[pick].mean()),
            )
        )
    return LinkCalibration(
        transport=transport,
        profiles=tuple(profiles),
        time_scale=scale,
        overhead_s=overhead,
        overhead_fitted=overhead_fitted,
        time_scale_se=scale_se,
        overhead_se_s=overhead_se,
        quality=_quality(measured, fitted),
        residuals=tuple(residuals),
    )


def _least_squares(
    design: np.ndarray, measured: np.ndarray
) -> tuple[list[float], list[float | None]]:
    """Least-squares coefficients and their standard errors (None with no residual freedom)."""
    coef, *_ = np.linalg.lstsq(design, measured, rcond=None)
    rows, params = design.shape
    if rows <= params:
        return [float(c) for c in coef], [None] * params
    residual = measured - design @ coef
    variance = float(residual @ residual) / (rows - params)
    covariance = variance * np.linalg.pinv(design.T @ design)
    return [float(c) for c in coef], [float(math.sqrt(max(v, 0.0))) for v in np.diag(covariance)]


def _quality(measured: np.ndarray, fitted: np.ndarray) -> FitQuality:
    residual = measured - fitted
    total = float(np.sum((measured - measured.mean()) ** 2))
    rms = float(np.sqrt(np.mean(residual**2)))
    mean = float(measured.mean())
    # A total below rounding noise means the measurements do not vary: R^2 says nothing then.
    tiny = total <= 1e-12 * max(mean * mean, 1e-300) * len(measured)
    return FitQuality(
        rows=len(measured),
        r2=None if tiny else 1.0 - float(np.sum(residual**2)) / total,
        rms_residual_s=rms,
        max_residual_s=float(np.max(np.abs(residual))),
        relative_rms=rms / mean if mean > 0 else math.nan,
    )
