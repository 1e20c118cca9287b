"""Hardware commands: ``flash`` (firmware and model slices onto the boards of an inventory),
``survey`` (the testbed's RSSI matrix) and ``calibrate`` (fit the simulator to a hardware run).

Each command has its own ``add_<command>_parser(commands)``; :func:`add_parsers` registers them
all. Handlers import the hardware modules (esptool, pyserial) only when they run, so
``import tinysplit.cli`` stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tinysplit.cli.common import emit_json, positive_float, positive_int

TRANSPORT_CHOICES = ("ble", "wifi", "espnow")


def add_parsers(commands: Any) -> None:
    """Register the hardware commands on the CLI's subcommand parsers."""
    add_flash_parser(commands)
    add_survey_parser(commands)
    add_calibrate_parser(commands)


def add_flash_parser(commands: Any) -> None:
    """Register ``flash``."""
    flash = commands.add_parser(
        "flash",
        help="write the transport firmware and each stage's model slice to the boards",
        description="For every board of the inventory, in stage order: write the ESP-IDF "
        "build's images (bootloader, partition table, app) and the stage's .espdl slice at the "
        "'model' partition offset with esptool, verify them by MD5 and reset the board. Boards "
        "whose images have not changed since the last flash from this build directory are "
        "skipped (the record is tinysplit-flash-state.json in the build directory).",
    )
    flash.add_argument("--inventory", type=Path, required=True, metavar="FILE", help="boards.toml")
    flash.add_argument(
        "--transport",
        choices=TRANSPORT_CHOICES,
        default=None,
        help="the firmware to flash (default: the inventory's transport)",
    )
    flash.add_argument(
        "--plan",
        type=Path,
        required=True,
        metavar="FILE",
        help="plan JSON (partition --out) or an export's manifest.json",
    )
    flash.add_argument(
        "--build-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="ESP-IDF build directory of firmware/<transport> (holds flasher_args.json)",
    )
    flash.add_argument(
        "--espdl-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory of stage<k>.espdl (export --format espdl; default: the plan's directory)",
    )
    flash.add_argument(
        "--force", action="store_true", help="flash every board, even unchanged ones"
    )
    flash.add_argument(
        "--no-stub",
        dest="stub",
        action="store_false",
        default=None,
        help="talk to the ROM bootloader only (default: as flasher_args.json says)",
    )
    flash.add_argument(
        "--baud",
        type=positive_int,
        default=None,
        help="baud rate for writing (default 460800; ignored by USB-Serial-JTAG)",
    )
    flash.add_argument(
        "--connect-attempts",
        type=positive_int,
        default=None,
        metavar="N",
        help="esptool connection attempts per board (default 7)",
    )
    flash.add_argument("--json", action="store_true", help="print JSON instead of a table")
    flash.set_defaults(handler=cmd_flash)


def cmd_flash(args: argparse.Namespace, console: Console) -> int:
    """Flash the boards of an inventory; prints one row per board."""
    from tinysplit.errors import ConfigError
    from tinysplit.testbed.hw.build import load_slices, read_build
    from tinysplit.testbed.hw.flash import DEFAULT_BAUD, DEFAULT_CONNECT_ATTEMPTS, flash_boards
    from tinysplit.testbed.hw.inventory import load_inventory

    inventory = load_inventory(args.inventory)
    if inventory.emulated:
        raise ConfigError(
            f"{inventory.path}: an emulated testbed ([emulator]) has no boards to flash"
        )
    transport = args.transport or inventory.transport
    plan, slices = load_slices(args.plan, args.espdl_dir)
    if plan.devices != inventory.stages:
        raise ConfigError(
            f"the plan has {plan.devices} stages, {inventory.path} has {inventory.stages} boards"
        )
    build = read_build(args.build_dir, transport=transport)
    results = flash_boards(
        inventory.boards,
        build,
        slices,
        force=args.force,
        stub=args.stub,
        baud=args.baud or DEFAULT_BAUD,
        connect_attempts=args.connect_attempts or DEFAULT_CONNECT_ATTEMPTS,
        console=None if args.json else console,
    )
    if args.json:
        emit_json([r.to_dict() for r in results])
        return 0
    table = Table(title=f"{build.project} on {len(results)} boards ({build.build_dir})")
    for column in ("stage", "board", "port", "MAC", "status", "bytes", "seconds"):
        table.add_column(column, justify="right" if column in ("bytes", "seconds") else "left")
    for r in results:
        table.add_row(
            str(r.stage),
            r.name,
            r.port,
            r.mac,
            str(r.status),
            f"{r.bytes:,}",
            f"{r.seconds:.1f}",
        )
    console.print(table)
    return 0


# --------------------------------------------------------------------------------------- survey


def add_survey_parser(commands: Any) -> None:
    """Register ``survey``."""
    survey = commands.add_parser(
        "survey",
        help="measure the boards' pairwise RSSI (consoles + a BLE scan) and save the matrix",
        description="Ask every board of the inventory for its links' RSSI over its console and, "
        "for BLE boards, scan their advertisements from this host with bleak. Saves the RSSI "
        "matrix as JSON (docs/hardware.md, 'RSSI matrix file') for placement and simulation. "
        "Without a Bluetooth adapter the host's view is skipped (say --require-scan to fail).",
    )
    survey.add_argument("--inventory", type=Path, required=True, metavar="FILE", help="boards.toml")
    survey.add_argument(
        "--out", type=Path, default=Path("rssi.json"), metavar="FILE",
        help="where the matrix goes (default rssi.json)",
    )  # fmt: skip
    survey.add_argument(
        "--scan-s", type=positive_float, default=5.0, metavar="S",
        help="seconds the host scans BLE advertisements (default 5)",
    )  # fmt: skip
    scan = survey.add_mutually_exclusive_group()
    scan.add_argument(
        "--require-scan", action="store_true",
        help="fail when the host cannot scan (no Bluetooth adapter) instead of going on",
    )  # fmt: skip
    scan.add_argument("--no-scan", action="store_true", help="the boards' view only")
    survey.add_argument("--json", action="store_true", help="print the matrix as JSON")
    survey.set_defaults(handler=cmd_survey)


def cmd_survey(args: argparse.Namespace, console: Console) -> int:
    """Survey the testbed's RSSI and save the matrix (an emulated testbed is started first)."""
    import contextlib
    import sys

    from tinysplit.testbed.hw.inventory import load_inventory
    from tinysplit.testbed.hw.survey import emulated_ports, save_survey, survey

    inventory = load_inventory(args.inventory)
    with contextlib.ExitStack() as stack:
        ports = stack.enter_context(emulated_ports(inventory)) if inventory.emulated else None
        result = survey(
            inventory,
            scan_s=None if args.no_scan else args.scan_s,
            require_scan=args.require_scan,
            ports=ports,
        )
    path = save_survey(result, args.out)
    if args.json:
        emit_json({**result.to_dict(), "out": str(path)})
        for note in result.notes:
            sys.stderr.write(f"tinysplit: note: {note}\n")
        return 0
    names = [n.name for n in result.nodes]
    grid = Table(title=f"RSSI dBm: the row's node hears the column's ({inventory.path})")
    grid.add_column("hears / from")
    for name in names:
        grid.add_column(name, justify="right")
    for name, row in zip(names, result.matrix, strict=True):
        grid.add_row(name, *("" if v is None else f"{v:.0f}" for v in row))
    console.print(grid)
    if result.adverts:
        heard = Table(title=f"host BLE scan, {result.scan_s:g} s")
        for column in ("stage", "address", "name", "median dBm", "min..max", "adverts"):
            heard.add_column(column, justify="right" if column != "name" else "left")
        for a in result.adverts:
            heard.add_row(
                str(a["stage"]), str(a["address"]), str(a["name"] or ""),
                f"{a['rssi_dbm']:.0f}", f"{a['rssi_min_dbm']:.0f}..{a['rssi_max_dbm']:.0f}",
                str(a["samples"]),
            )  # fmt: skip
        console.print(heard)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"saved {path}", markup=False)
    return 0


# ------------------------------------------------------------------------------------ calibrate


def add_calibrate_parser(commands: Any) -> None:
    """Register ``calibrate``."""
    calibrate = commands.add_parser(
        "calibrate",
        help="fit the simulator's link and compute corrections to a hardware run",
        description="Least-squares fits on a hardware result archive: per transport, measured "
        "transfer time = time_scale x the link model + overhead_s; measured inference time = "
        "scale x the plan's estimate. Writes a calibration file (TOML, every constant with its "
        "source and fit quality) for 'simulate --calibration' and 'pytest --calibration'.",
    )
    calibrate.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a result archive")
    calibrate.add_argument(
        "--out", type=Path, default=Path("calibration.toml"), metavar="FILE",
        help="the calibration file to write (default calibration.toml)",
    )  # fmt: skip
    calibrate.add_argument(
        "--allow-sim", action="store_true",
        help="accept a simulated archive (a check: the packaged data fit with factors ~1)",
    )  # fmt: skip
    calibrate.add_argument("--json", action="store_true", help="print the fit as JSON")
    calibrate.set_defaults(handler=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    """Fit the corrections and write the calibration file."""
    from tinysplit.testbed.hw.calibrate import calibrate
    from tinysplit.testbed.hw.calibration_file import write_calibration

    fit = calibrate(args.run_dir, allow_sim=args.allow_sim)
    path = write_calibration(fit, args.out)
    if args.json:
        emit_json({**fit.to_dict(), "out": str(path)})
        return 0
    grid = Table(title=f"calibration of {fit.run_dir} ({fit.testbed})")
    for column in ("constant", "value", "rows", "R^2", "rms residual", "fit"):
        grid.add_column(column, justify="left" if column in ("constant", "fit") else "right")

    def quality(q: Any) -> tuple[str, str, str]:
        r2 = "n/a" if q.r2 is None else f"{q.r2:.4f}"
        return str(q.rows), r2, f"{q.rms_residual_s * 1e3:.3g} ms ({q.relative_rms:.1%})"

    def value(x: float, se: float | None) -> str:
        return f"{x:.4g}" if se is None else f"{x:.4g} ± {se:.2g}"

    if fit.compute is not None:
        c = fit.compute
        ratios = [s.ratio for s in c.stages]
        grid.add_row(
            "compute.scale", value(c.scale, c.scale_se), *quality(c.quality),
            f"through 0; per stage {min(ratios):.3f}..{max(ratios):.3f}",
        )  # fmt: skip
    for transport, link in fit.links.items():
        how = "with overhead" if link.overhead_fitted else "through 0 (one size)"
        grid.add_row(
            f"link.{transport}.time_scale", value(link.time_scale, link.time_scale_se),
            *quality(link.quality), how,
        )  # fmt: skip
        grid.add_row(
            f"link.{transport}.overhead_s", value(link.overhead_s, link.overhead_se_s),
            "", "", "", how,
        )  # fmt: skip
    console.print(grid)
    for transport, link in fit.links.items():
        sizes = Table(title=f"{transport}: transfers per tensor size")
        for column in ("bytes", "rows", "measured s", "model s", "fitted s"):
            sizes.add_column(column, justify="right")
        for r in link.residuals:
            sizes.add_row(
                f"{r.bytes:,}", str(r.rows), f"{r.measured_s:.4g}", f"{r.model_s:.4g}",
                f"{r.fitted_s:.4g}",
            )  # fmt: skip
        console.print(sizes)
    for note in fit.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"wrote {path}: tinysplit simulate --calibration {path} ...", markup=False)
    return 0
