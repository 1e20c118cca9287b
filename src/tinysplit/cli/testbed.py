"""Simulated-testbed commands: ``links show``, ``links check``, ``simulate``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from tinysplit.cli.common import emit_json
from tinysplit.errors import ConfigError


def cmd_links_show(args: argparse.Namespace, console: Console) -> int:
    """List the calibrated link profiles, or every constant of one profile."""
    from tinysplit.links.calibration import default_profile, profile_names, profile_table

    transports = [args.transport] if args.transport else ["ble", "wifi", "espnow"]
    if args.name is not None:
        if args.transport is None:
            raise ConfigError("name a transport to show one profile: links show ble paper")
        from tinysplit.links import make_link

        link = make_link(args.transport, args.name)
        table = link.profile.to_dict()  # type: ignore[attr-defined]  # every profile has one
        if args.json:
            emit_json(table)
            return 0
        grid = Table(title=f"{args.transport} profile {args.name}")
        grid.add_column("constant")
        grid.add_column("value", justify="right")
        for key, value in table.items():
            grid.add_row(key, json.dumps(value))
        console.print(grid)
        return 0
    rows: list[dict[str, Any]] = [
        {
            "transport": t,
            "profile": name,
            "default": name == default_profile(t),
            "description": str(profile_table(t, name).get("description", "")),
            "goodput_kbps": list(profile_table(t, name)["goodput_kbps"]),
            "source": str(profile_table(t, name)["goodput_source"]),
        }
        for t in transports
        for name in profile_names(t)
    ]
    if args.json:
        emit_json(rows)
        return 0
    grid = Table(title="link profiles (tinysplit links show TRANSPORT PROFILE for all constants)")
    for column in ("transport", "profile", "description", "sourced goodput kbit/s"):
        grid.add_column(column)
    for row in rows:
        low, high = row["goodput_kbps"]
        name = f"{row['profile']} (default)" if row["default"] else row["profile"]
        target = f"{low:g}" if low == high else f"{low:g}-{high:g}"
        grid.add_row(row["transport"], name, row["description"], target)
    console.print(grid)
    return 0


def cmd_links_check(args: argparse.Namespace, console: Console) -> int:
    """Bulk transfer per profile against its sourced goodput (+-15 %)."""
    from tinysplit.links.check import STRONG_RSSI_DBM, TOLERANCE, check_all

    rows = check_all([args.transport] if args.transport else None, seed=args.seed)
    if args.json:
        emit_json([r.to_dict() for r in rows])
    else:
        grid = Table(
            title=f"calibration check: bulk transfer at {STRONG_RSSI_DBM:g} dBm vs sourced "
            f"goodput (+-{TOLERANCE:.0%})"
        )
        for column in ("transport", "profile", "window", "mode", "simulated", "sourced", "ok"):
            grid.add_column(
                column, justify="right" if column in ("simulated", "sourced") else "left"
            )
        grid.add_column("source")
        for r in rows:
            target = (
                f"{r.target_low_kbps:g}"
                if r.target_low_kbps == r.target_high_kbps
                else f"{r.target_low_kbps:g}-{r.target_high_kbps:g}"
            )
            grid.add_row(
                r.transport,
                r.profile,
                str(r.window),
                r.mode,
                f"{r.simulated_kbps:.0f}",
                target,
                "yes" if r.passed else "NO",
                r.source,
            )
        console.print(grid)
    return 0 if all(r.passed for r in rows) else 1


# ------------------------------------------------------------------------------------- simulate


def cmd_simulate(args: argparse.Namespace, console: Console) -> int:
    """Run a plan on the simulated testbed and print the per-stage breakdown.

    ``--calibration FILE`` applies a user calibration file (``tinysplit calibrate``) for this run.
    """
    from tinysplit.links.calibration import calibration_override

    with calibration_override(getattr(args, "calibration", None)):
        return _simulate(args, console)


def _simulate(args: argparse.Namespace, console: Console) -> int:
    from tinysplit.links.calibration import active_calibration, sourced_goodput_bps
    from tinysplit.model import load_model
    from tinysplit.partition import Plan, partition
    from tinysplit.sim.deployment import deployment_fields
    from tinysplit.sim.layout import load_layout
    from tinysplit.sim.metrics import summarize
    from tinysplit.sim.pipeline import PipelineConfig, simulate

    if args.plan is not None:
        plan = Plan.load(args.plan)
        chosen = [f"--{k.replace('_', '-')}" for k in ("strategy", "devices", "device_profile")
                  if getattr(args, k) is not None]  # fmt: skip
        if chosen:
            raise ConfigError(f"--plan fixes the split: drop {', '.join(chosen)}")
        model = args.model or plan.model
        if load_model(model).source_hash != plan.model_hash:
            raise ConfigError(
                f"plan {str(args.plan)!r} was made for {plan.model!r}, not {model!r} "
                "(model hash mismatch)"
            )
        if plan.transport != args.transport:
            raise ConfigError(
                f"plan {str(args.plan)!r} was sized for {plan.transport} (code, buffers, frames), "
                f"not {args.transport}: re-run partition --transport {args.transport}"
            )
    else:
        plan = partition(
            load_model(args.model or "paper"),
            strategy=args.strategy or "optimal",
            devices=args.devices,
            profile=args.device_profile or "esp32s3-n8r8",
            transport=args.transport,
            link_rate_bps=sourced_goodput_bps(args.transport, args.profile),
        )
    deployed = deployment_fields(plan)
    if deployed and args.positions is not None:
        raise ConfigError(
            f"plan {str(args.plan)!r} has a deployment (boards and their RSSI): drop --positions"
        )
    layout = load_layout(args.positions or "desk", len(plan.stages)) if not deployed else None
    config = PipelineConfig(
        transport=args.transport,
        link_profile=args.profile,
        mode=args.mode,
        window=args.window,
        inferences=args.inferences,
        seed=args.seed,
        interval_s=args.interval_s,
        dual_core=args.dual_core,
        rssi_dbm=layout.rssi_dbm if layout else None,
        positions_m=layout.positions_m if layout else None,
        adaptive_window=args.adaptive_window,
        wake=args.wake,
        **deployed,
    )
    summary = summarize(simulate(plan, config))
    if args.json:
        calibration = active_calibration()
        emit_json(
            {
                "plan": plan.to_dict(),
                "config": _config_dict(config),
                "calibration_file": None if calibration.path is None else str(calibration.path),
                **summary,
            }
        )
        return 0
    windows = ", ".join(map(str, config.windows)) if config.windows else str(config.window)
    extras = "".join(
        text
        for on, text in (
            (config.adaptive_window, ", adaptive"),
            (config.wake is not None, f", wake on {config.wake}"),
            (config.placement is not None, ", the plan's deployment"),
        )
        if on
    )
    grid = Table(
        title=f"{plan.model}: {len(plan.stages)} stages over {args.transport} "
        f"({config.mode} mode, window {windows}{extras}), {config.inferences} inferences"
    )
    columns = ["board", "layers", "receive s", "inference s", "send s", "RSSI dBm", "bytes"]
    columns += ["frames (all)", "retx (all)", "drops (all)", "failures", "energy J"]
    for column in columns:
        grid.add_column(column, justify="right")
    for k, stage in enumerate(summary["stages"]):
        link = summary["links"][k] if k < len(summary["links"]) else None
        grid.add_row(
            str(stage["stage"]),
            f"{plan.stages[k].first_layer}-{plan.stages[k].last_layer}",
            _num(stage["receive_s"]), _num(stage["inference_s"]), _num(stage["send_s"]),
            f"{link['rssi_dbm']:.1f}" if link else "",
            f"{link['bytes']:,}" if link else "",
            str(link["app_frames"]) if link else "",
            str(link["retransmissions"]) if link else "",
            str(link["drops"]) if link else "",
            str(link["failures"]) if link else "",
            f"{sum(summary['energy_j'][k].values()):.2f}",
        )  # fmt: skip
    console.print(grid)
    lat = summary["latency_s"]
    console.print(
        f"completed {summary['completed']}/{summary['inferences']} | latency p50 "
        f"{_num(lat['p50'])} s, p95 {_num(lat['p95'])} s | throughput "
        f"{_num(summary['throughput_per_s'])} inf/s | network {summary['network_s']:.2f} s vs "
        f"inference {summary['inference_s']:.2f} s ({_num(summary['network_to_inference'])}x) | "
        f"energy {_num(summary['energy_per_inference_j'])} J/inference"
    )
    if active_calibration().path is not None:
        console.print(f"calibration: {active_calibration().path}")
    return 0


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN prints as "-"


def _config_dict(config: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: (str(v) if k == "mode" else v) for k, v in asdict(config).items()}
