"""``tinysplit`` command line: a thin layer over the public API.

Every command prints a readable table by default and JSON with ``--json``. Errors caused by input
(:class:`~tinysplit.errors.TinysplitError`) become one line on stderr and exit status 1; usage
errors exit 2; ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from tinysplit import __version__
from tinysplit.cli.common import (
    Handler,
    cuts,
    devices,
    optimizations,
    positive_float,
    positive_int,
)
from tinysplit.cli.hardware import add_parsers as add_hardware_parsers
from tinysplit.cli.models import cmd_export, cmd_model_show, cmd_partition
from tinysplit.cli.report import add_parsers as add_report_parsers
from tinysplit.cli.sweep import add_parsers as add_sweep_parsers
from tinysplit.cli.testbed import cmd_links_check, cmd_links_show, cmd_simulate
from tinysplit.errors import TinysplitError


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
        type=positive_int,
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
        type=devices,
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
        type=cuts,
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
        type=positive_float,
        default=None,
        metavar="KBPS",
        help="link goodput for the bottleneck objective (default: the transport's sourced rate)",
    )
    part.add_argument(
        "--optimize", type=optimizations, default=None, metavar="LIST",
        help="also choose any of placement,window,replication for the boards of --rssi "
        "(adds a deployment to the plan; docs/beyond-the-paper.md)",
    )  # fmt: skip
    part.add_argument(
        "--rssi", default=None, metavar="FILE|LAYOUT",
        help="with --optimize: the boards' pairwise RSSI (TOML/JSON matrix, positions, "
        "'tinysplit survey --json' output), or a layout name (paper, desk, room) for --devices "
        "boards (default desk: 0.5 m apart); see docs/placement.md",
    )  # fmt: skip
    part.add_argument(
        "--link-profile", default=None, help="with --optimize: link profile (links show)"
    )
    part.add_argument(
        "--mode", choices=("paper", "reliable"), default="reliable",
        help="with --optimize: protocol mode of the links (default reliable)",
    )  # fmt: skip
    part.add_argument(
        "--window", type=positive_int, default=6,
        help="with --optimize: window of every link unless 'window' is optimized (default 6)",
    )  # fmt: skip
    part.add_argument(
        "--replicate-for", choices=("throughput", "energy"), default="throughput",
        help="with --optimize replication: fastest pipeline, or the most even power per board "
        "so no board dies first (default throughput)",
    )  # fmt: skip
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
    sim.add_argument(
        "--model", default=None, help=model_help + " (default: the plan's model, else paper)"
    )
    sim.add_argument("--plan", type=Path, default=None, help="plan JSON (else --strategy)")
    sim.add_argument(
        "--strategy", choices=("paper", "greedy", "optimal"), default=None,
        help="partitioning strategy when there is no --plan (default optimal)",
    )  # fmt: skip
    sim.add_argument(
        "--devices", type=devices, default=None, metavar="N|auto",
        help="boards when there is no --plan (default auto: the fewest that fit)",
    )  # fmt: skip
    sim.add_argument(
        "--device-profile",
        default=None,
        help="device profile when there is no --plan (default esp32s3-n8r8)",
    )
    sim.add_argument(
        "--profile", default=None, help="link profile (links show; default per transport)"
    )
    sim.add_argument("--mode", choices=("paper", "reliable"), default="reliable")
    sim.add_argument("--window", type=positive_int, default=6, help="frames per acknowledgment")
    sim.add_argument("--inferences", type=positive_int, default=10)
    sim.add_argument(
        "--positions", default=None,
        help="layout name (paper, desk, room) or TOML/JSON file with rssi_dbm, positions or "
        "spacing_m (default desk; a plan with a deployment brings its own)",
    )  # fmt: skip
    sim.add_argument("--interval-s", type=positive_float, default=None, help="input interval")
    sim.add_argument("--dual-core", action="store_true", help="run ESP-DL on both cores")
    sim.add_argument(
        "--adaptive-window", action="store_true",
        help="reliable mode: each link's sender adapts its in-flight window (--window stays "
        "the acknowledgment cadence)",
    )  # fmt: skip
    sim.add_argument(
        "--wake", choices=("ble",), default=None,
        help="hybrid transport (wifi, espnow): boards sleep on BLE and wake the data radio per "
        "tensor (docs/hybrid.md)",
    )  # fmt: skip
    sim.add_argument(
        "--calibration", type=Path, default=None, metavar="FILE",
        help="user calibration file from 'tinysplit calibrate' (default: $TINYSPLIT_CALIBRATION, "
        "else the packaged data)",
    )  # fmt: skip
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
        "--samples", type=positive_int, default=16, help="calibration images (default 16)"
    )
    export.add_argument("--seed", type=int, default=0, help="seed of the calibration images")
    export.add_argument("--json", action="store_true", help="print the manifest as JSON")
    export.set_defaults(handler=cmd_export)

    add_report_parsers(commands)
    add_hardware_parsers(commands)
    add_sweep_parsers(commands)
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
