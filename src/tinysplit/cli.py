"""``tinysplit`` command line: a thin layer over the public API.

Every command prints a readable table by default and JSON with ``--json``. Errors caused by input
(:class:`~tinysplit.errors.TinysplitError`) become one line on stderr and exit status 1; usage
errors exit 2; ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tinysplit import __version__
from tinysplit.errors import ConfigError, TinysplitError

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Console], int]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _devices(text: str) -> int | None:
    return None if text == "auto" else _positive_int(text)


def _cuts(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer numbers, got {text!r}"
        ) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _mb(n: int | float) -> str:
    return f"{n / 1e6:.2f}"


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------------------------------- model


def cmd_model_show(args: argparse.Namespace, console: Console) -> int:
    """Print the layers of a model: op, NHWC output, parameters, MACs and cut points."""
    from tinysplit.model import load_model
    from tinysplit.model.graph import nhwc

    graph = load_model(args.model)
    cuts = set(graph.cut_points)
    sqnr = _layer_sqnr(graph, args.sqnr) if args.sqnr else {}
    layers: list[dict[str, Any]] = [
        {
            "layer": layer.index + 1,
            "name": layer.name,
            "op": layer.op,
            "output_shape_nhwc": list(layer.nhwc_shape),
            "output_bytes": layer.output_bytes,
            "params": layer.param_count,
            "param_bytes": layer.param_bytes,
            "macs": layer.macs,
            "cut_after": layer.index in cuts,
        }
        | ({"sqnr_db": sqnr[layer.name]} if sqnr else {})
        for layer in graph.layers
    ]
    summary: dict[str, Any] = {
        "model": graph.name,
        "hash": graph.source_hash,
        "input_shape_nhwc": list(nhwc(graph.input_shape)),
        "layers": len(graph),
        "conv_layers": sum(layer.op == "Conv" for layer in graph.layers),
        "params": graph.param_count,
        "param_bytes": graph.param_bytes,
        "macs": graph.macs,
        "cut_points": len(cuts),
    }
    if args.json:
        _emit_json(summary | {"layer_table": layers})
        return 0
    table = Table(title=f"{graph.name}: {len(graph)} layers, {summary['conv_layers']} Conv")
    columns = ["#", "name", "op", "output (NHWC)", "out KB", "params", "MACs", "cut"]
    for column in columns + (["SQNR dB"] if sqnr else []):
        table.add_column(column, justify="left" if column in ("name", "op") else "right")
    for row in layers:
        table.add_row(
            str(row["layer"]),
            row["name"],
            row["op"],
            "x".join(map(str, row["output_shape_nhwc"][1:])),
            f"{row['output_bytes'] / 1e3:.1f}",
            f"{row['params']:,}",
            f"{row['macs']:,}",
            "yes" if row["cut_after"] else "",
            *([f"{row['sqnr_db']:.1f}"] if sqnr else []),
        )
    console.print(table)
    console.print(
        f"input {'x'.join(map(str, summary['input_shape_nhwc'][1:]))} (NHWC) | "
        f"params {graph.param_count:,} ({_mb(graph.param_bytes)} MB int16) | "
        f"{graph.macs / 1e6:.1f} M MACs | {len(cuts)} cut points"
    )
    return 0


def _layer_sqnr(graph: Any, samples: int) -> dict[str, float]:
    """Per-layer SQNR (dB) of the int16 model, calibrated on ``samples`` images (seed 0) and
    measured on one held-out image (seed 1)."""
    from tinysplit.model.execute import layer_sqnr
    from tinysplit.model.quantize import calibrate, sample_inputs

    qmodel = calibrate(graph, sample_inputs(graph, samples, seed=0))
    return dict(layer_sqnr(qmodel, sample_inputs(graph, 1, seed=1)))


# ------------------------------------------------------------------------------------ partition


def cmd_partition(args: argparse.Namespace, console: Console) -> int:
    """Split a model into stages and print (and optionally save) the plan."""
    from tinysplit.model import load_model
    from tinysplit.partition import partition, plan_from_cuts

    graph = load_model(args.model)
    rate = None if args.link_rate_kbps is None else args.link_rate_kbps * 1e3
    if args.cuts is not None:
        plan = plan_from_cuts(
            graph, args.cuts, profile=args.profile, transport=args.transport, link_rate_bps=rate
        )
    else:
        plan = partition(
            graph,
            strategy=args.strategy,
            devices=args.devices,
            profile=args.profile,
            transport=args.transport,
            objective=args.objective,
            link_rate_bps=rate,
        )
    if args.out is not None:
        plan.save(args.out)
        log.info("wrote %s", args.out)
    if args.json:
        _emit_json(plan.to_dict())
        return 0
    from tinysplit.partition.render import plan_table

    console.print(plan_table(plan))
    if args.out is not None:
        console.print(f"plan written to {args.out}")
    return 0


# --------------------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    """Write one model file per stage of a plan, plus a manifest."""
    from tinysplit.model.export import export_plan
    from tinysplit.partition import Plan

    plan = Plan.load(args.plan)
    manifest = export_plan(
        plan,
        args.out,
        fmt=args.format,
        samples=args.samples,
        seed=args.seed,
        progress=None if args.json else console,
    )
    if args.json:
        _emit_json(manifest)
        return 0
    table = Table(title=f"exported {len(manifest['stages'])} stages to {args.out}")
    for column in ("stage", "layers", "file", "input", "in exp", "output", "out exp"):
        table.add_column(column)
    for stage in manifest["stages"]:
        table.add_row(
            str(stage["stage"]),
            f"{stage['first_layer']}-{stage['last_layer']}",
            stage["file"],
            stage["input"]["name"],
            str(stage["input"]["exponent"]),
            stage["output"]["name"],
            str(stage["output"]["exponent"]),
        )
    console.print(table)
    return 0


# ---------------------------------------------------------------------------------------- links


def cmd_links_show(args: argparse.Namespace, console: Console) -> int:
    """List the calibrated link profiles, or every constant of one profile."""
    from tinysplit.links.calibration import default_profile, profile_names, profile_table

    transports = [args.transport] if args.transport else ["ble", "wifi", "espnow"]
    if args.name is not None:
        if args.transport is None:
            raise ConfigError("name a transport to show one profile: links show ble paper")
        table = dict(profile_table(args.transport, args.name))
        if args.json:
            _emit_json(table)
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
        _emit_json(rows)
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
        _emit_json([r.to_dict() for r in rows])
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
    """Run a plan on the simulated testbed and print the per-stage breakdown."""
    from tinysplit.model import load_model
    from tinysplit.partition import Plan, partition
    from tinysplit.sim.layout import load_layout
    from tinysplit.sim.metrics import summarize
    from tinysplit.sim.pipeline import PipelineConfig, simulate

    graph = load_model(args.model)
    if args.plan is not None:
        plan = Plan.load(args.plan)
        if plan.model_hash != graph.source_hash:
            raise ConfigError(
                f"plan {str(args.plan)!r} was made for {plan.model!r}, not {args.model!r} "
                "(model hash mismatch)"
            )
    else:
        plan = partition(
            graph,
            strategy=args.strategy,
            devices=args.devices,
            profile=args.device_profile,
            transport=args.transport,
        )
    layout = load_layout(args.positions, len(plan.stages))
    config = PipelineConfig(
        transport=args.transport,
        link_profile=args.profile,
        mode=args.mode,
        window=args.window,
        inferences=args.inferences,
        seed=args.seed,
        interval_s=args.interval_s,
        dual_core=args.dual_core,
        rssi_dbm=layout.rssi_dbm,
        positions_m=layout.positions_m,
    )
    summary = summarize(simulate(plan, config))
    if args.json:
        _emit_json({"plan": plan.to_dict(), "config": _config_dict(config), **summary})
        return 0
    grid = Table(
        title=f"{plan.model}: {len(plan.stages)} boards over {args.transport} "
        f"({config.mode} mode, window {config.window}), {config.inferences} inferences"
    )
    for column in ("board", "layers", "receive s", "inference s", "send s", "RSSI dBm",
                   "bytes", "frames", "retx", "drops", "failures", "energy J"):  # fmt: skip
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
    return 0


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN prints as "-"


def _config_dict(config: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: (str(v) if k == "mode" else v) for k, v in asdict(config).items()}


# --------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="tinysplit",
        description="Split a neural network across ESP32-S3 boards and compare the radios "
        "that link them.",
    )
    parser.add_argument("--version", action="version", version=f"tinysplit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model_help = "built-in name (mobilenet_v1[:alpha=..,input_size=..,classes=..], paper) or .onnx"

    model = commands.add_parser("model", help="inspect models")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    show = model_commands.add_parser("show", help="list layers, shapes, parameters and cut points")
    show.add_argument("model", help=model_help)
    show.add_argument(
        "--sqnr",
        type=_positive_int,
        default=None,
        metavar="N",
        help="add each layer's int16 SQNR against float (calibrated on N seeded images, "
        "measured on another)",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(handler=cmd_model_show)

    part = commands.add_parser("partition", help="split a model into pipeline stages")
    part.add_argument("--model", required=True, help=model_help)
    part.add_argument(
        "--strategy",
        choices=("paper", "greedy", "optimal"),
        default="optimal",
        help="paper: fill each device in turn; greedy: paper then move cuts to smaller tensors; "
        "optimal: exact dynamic program (default)",
    )
    part.add_argument(
        "--devices",
        type=_devices,
        default=None,
        metavar="N|auto",
        help="number of devices, or 'auto' for the fewest that fit (default)",
    )
    part.add_argument(
        "--profile",
        default="esp32s3-n8r8",
        help="device profile (default esp32s3-n8r8; 'paper' mirrors the paper's accounting)",
    )
    part.add_argument(
        "--cuts",
        type=_cuts,
        default=None,
        metavar="L1,L2,...",
        help="evaluate this split instead of searching: last layer of each stage but the final "
        "one (the paper's Table I: 23,37,49,59); --strategy/--devices/--objective are ignored",
    )
    part.add_argument("--transport", choices=("ble", "wifi", "espnow"), default="ble")
    part.add_argument(
        "--objective",
        choices=("bottleneck", "bytes"),
        default="bottleneck",
        help="bottleneck: slowest stage (compute + send); bytes: largest tensor sent",
    )
    part.add_argument(
        "--link-rate-kbps",
        type=_positive_float,
        default=None,
        metavar="KBPS",
        help="link goodput for the bottleneck objective (default: the transport's sourced rate)",
    )
    part.add_argument("--json", action="store_true", help="print the plan as JSON")
    part.add_argument("--out", type=Path, default=None, help="write the plan to this JSON file")
    part.set_defaults(handler=cmd_partition)

    links = commands.add_parser("links", help="calibrated radio link profiles")
    link_commands = links.add_subparsers(dest="links_command", required=True, metavar="ACTION")
    lshow = link_commands.add_parser("show", help="list profiles, or all constants of one")
    lshow.add_argument("transport", nargs="?", choices=("ble", "wifi", "espnow"))
    lshow.add_argument("name", nargs="?", help="profile name")
    lshow.add_argument("--json", action="store_true", help="print JSON")
    lshow.set_defaults(handler=cmd_links_show)
    lcheck = link_commands.add_parser(
        "check", help="bulk transfer per profile vs its sourced goodput (exit 1 if any is off)"
    )
    lcheck.add_argument("transport", nargs="?", choices=("ble", "wifi", "espnow"))
    lcheck.add_argument("--seed", type=int, default=0)
    lcheck.add_argument("--json", action="store_true", help="print JSON")
    lcheck.set_defaults(handler=cmd_links_check)

    sim = commands.add_parser("simulate", help="run a pipeline on the simulated testbed")
    sim.add_argument("--transport", choices=("ble", "wifi", "espnow"), required=True)
    sim.add_argument("--model", default="paper", help=model_help + " (default paper)")
    sim.add_argument("--plan", type=Path, default=None, help="plan JSON (else --strategy)")
    sim.add_argument("--strategy", choices=("paper", "greedy", "optimal"), default="optimal")
    sim.add_argument("--devices", type=_devices, default=None, metavar="N|auto")
    sim.add_argument(
        "--device-profile", default="esp32s3-n8r8", help="device profile for --strategy"
    )
    sim.add_argument(
        "--profile", default=None, help="link profile (links show; default per transport)"
    )
    sim.add_argument("--mode", choices=("paper", "reliable"), default="reliable")
    sim.add_argument("--window", type=_positive_int, default=6, help="frames per acknowledgment")
    sim.add_argument("--inferences", type=_positive_int, default=10)
    sim.add_argument(
        "--positions", default="desk",
        help="layout name (paper, desk, room) or TOML/JSON file with rssi_dbm, positions or "
        "spacing_m (default desk)",
    )  # fmt: skip
    sim.add_argument("--interval-s", type=_positive_float, default=None, help="input interval")
    sim.add_argument("--dual-core", action="store_true", help="run ESP-DL on both cores")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--json", action="store_true", help="print JSON")
    sim.set_defaults(handler=cmd_simulate)

    export = commands.add_parser("export", help="write one model file per stage of a plan")
    export.add_argument("--plan", type=Path, required=True, help="plan JSON from 'partition --out'")
    export.add_argument("--out", type=Path, required=True, help="output directory (new or empty)")
    export.add_argument(
        "--format",
        choices=("onnx", "espdl"),
        default="onnx",
        help="onnx (default) or espdl (ESP-DL int16 via esp-ppq; needs tinysplit[espdl])",
    )
    export.add_argument(
        "--samples", type=_positive_int, default=16, help="calibration images (default 16)"
    )
    export.add_argument("--seed", type=int, default=0, help="seed of the calibration images")
    export.add_argument("--json", action="store_true", help="print the manifest as JSON")
    export.set_defaults(handler=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Pipes get a wide console so tables stay readable in logs and CI output.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    handler: Handler = args.handler
    try:
        return handler(args, console)
    except TinysplitError as exc:
        if args.debug:
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"tinysplit: error: {reason}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("tinysplit: interrupted\n")
        return 130
