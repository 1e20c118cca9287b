"""``python -m tinysplit.testbed.hw.emulator``: serve emulated boards and a scribe on ptys.

    python -m tinysplit.testbed.hw.emulator --inventory boards.toml --plan plan.json \\
        --config config.json --ports-out PORTS.json [--exit-with-stdin]

Starts one pty per board of the inventory and one for its scribe, writes
``{"boards": {"<name>": "/dev/pts/N", ...}, "scribe": "/dev/pts/M"}`` (``null`` without a scribe)
to the ``--ports-out`` file atomically once every port answers, then serves until SIGTERM /
SIGINT or, with ``--exit-with-stdin``, until its standard input closes (its parent is gone).
Bad input exits with status 2 and one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from tinysplit import __version__
from tinysplit.errors import ConfigError, TinysplitError
from tinysplit.partition import Plan
from tinysplit.sim.pipeline import PipelineConfig
from tinysplit.testbed.hw.emulator import load_config
from tinysplit.testbed.hw.emulator import reference as ref
from tinysplit.testbed.hw.emulator.boards import BoardInfo, EmulatedBoard
from tinysplit.testbed.hw.emulator.pipeline import EmulatedPipeline
from tinysplit.testbed.hw.emulator.pty_server import PtyServer
from tinysplit.testbed.hw.emulator.scribe import EmulatedScribe
from tinysplit.testbed.hw.emulator.settings import Settings
from tinysplit.testbed.hw.inventory import Inventory, load_inventory

#: The firmware version emulated boards report in ``hello``.
FIRMWARE = f"emulator-{__version__}"
#: Each board's esp_timer reads this many microseconds more than the previous board's at time 0.
CLOCK_SPREAD_US = 1_234_567


def build(
    inventory: Inventory, plan: Plan, config: PipelineConfig, server: PtyServer
) -> tuple[EmulatedPipeline, dict[str, str], str | None]:
    """Create the pipeline, a pty per board and one for the scribe.

    Returns:
        The pipeline, board name -> pty path, and the scribe's pty path (None without a scribe).

    Raises:
        ConfigError: the inventory, plan and configuration do not describe one pipeline.
    """
    n = len(plan.stages)
    if len(inventory.boards) != n:
        raise ConfigError(
            f"{inventory.path}: {len(inventory.boards)} boards for a plan of {n} stages"
        )
    if config.transport != inventory.transport:
        raise ConfigError(
            f"{inventory.path}: the boards run {inventory.transport}, the run asks for "
            f"{config.transport}"
        )
    qmodel = ref.quantized_model(plan.model, plan.model_hash)
    tensors = ref.stage_tensors(qmodel, plan)
    emulator = inventory.emulator
    pipeline = EmulatedPipeline(
        plan,
        config,
        qmodel,
        time_scale=emulator.time_scale if emulator else 0.0,
        seed=emulator.seed if emulator else 0,
        wake=server.wake,
        supply_v=inventory.power.supply_v,
        clock=server.clock,
    )
    ports: dict[str, str] = {}
    for k, spec in enumerate(inventory.boards, start=1):
        port = server.add(spec.name)
        info = BoardInfo(
            name=spec.name,
            transport=inventory.transport,
            firmware=FIRMWARE,
            in_values=tensors[k - 1].in_values,
            in_exp=tensors[k - 1].in_exp,
            out_values=tensors[k - 1].out_values,
        )
        settings = Settings(stage=k, stages=n, mode=config.mode.value, window=config.window)
        board = EmulatedBoard(info, settings, pipeline, port.write, CLOCK_SPREAD_US * k)
        port.on_input = _pumped(pipeline, board.feed)
        pipeline.boards.append(board)
        ports[spec.name] = port.path
    for board in pipeline.boards:
        pipeline.booted(board)
        board.boot_log()
    scribe_path = None
    if inventory.scribe is not None:
        spec_lines = dict(inventory.scribe.lines)
        for k, b in enumerate(inventory.boards, start=1):
            if k not in spec_lines and b.scribe_line is not None:
                spec_lines[k] = b.scribe_line
        port = server.add("scribe")
        scribe = EmulatedScribe(
            lines=max(spec_lines.values(), default=n),
            power="ina226" if inventory.power.meter == "scribe-ina" else "none",
            unit_us=inventory.scribe.pulse_unit_us,
            write=port.write,
            started=pipeline.new_run,
            now_ns=pipeline.scribe_now_ns,
            stopping=pipeline.flush_power,
            drops=lambda: port.drops,
        )
        port.on_input = _pumped(pipeline, scribe.feed)
        pipeline.scribe, pipeline.scribe_lines = scribe, spec_lines
        scribe.boot_log()
        scribe_path = port.path
    return pipeline, ports, scribe_path


def _pumped(pipeline: EmulatedPipeline, feed: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Emit what is due before a command is answered, so replies follow earlier events."""

    def on_input(data: bytes) -> None:
        pipeline.pump()
        feed(data)

    return on_input


def write_ports(path: Path, ports: dict[str, str], scribe: str | None) -> None:
    """Write the port map atomically (temporary file in the same directory, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"boards": ports, "scribe": scribe}, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tinysplit.testbed.hw.emulator",
        description="Emulated tinysplit boards and scribe on pseudo-terminals.",
    )
    parser.add_argument("--inventory", required=True, help="boards.toml with an [emulator] table")
    parser.add_argument("--plan", required=True, help="plan JSON (tinysplit partition --json)")
    parser.add_argument("--config", required=True, help="pipeline configuration JSON")
    parser.add_argument("--ports-out", required=True, help="where to write the port map (JSON)")
    parser.add_argument(
        "--exit-with-stdin", action="store_true", help="exit when standard input closes"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    server = PtyServer()
    pipeline: EmulatedPipeline | None = None
    try:
        inventory = load_inventory(args.inventory, check_ports=False)
        plan = Plan.load(args.plan)
        config = load_config(args.config)
        pipeline, ports, scribe = build(inventory, plan, config, server)
        write_ports(Path(args.ports_out), ports, scribe)
        server.serve(
            pipeline.pump,
            pipeline.next_deadline,
            watch_fd=sys.stdin.fileno() if args.exit_with_stdin else None,
        )
    except TinysplitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if pipeline is not None:
            pipeline.close()
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
