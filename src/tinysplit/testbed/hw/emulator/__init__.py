"""Emulated boards: pipeline boards and a scribe on pseudo-terminals, driven by the simulator.

The emulator is the test double of a hardware testbed. It runs as its own process, like real
boards, and serves one pty per board and one for the scribe:

* every board answers the board console of ``docs/protocol.md`` (:mod:`.boards`), the scribe the
  lines of ``firmware/scribe/README.md`` (:mod:`.scribe`);
* each input injected into stage 1 releases the next inference of a simulated run
  (:func:`tinysplit.sim.simulate` of the plan and configuration, :mod:`.timeline`): scribe marks
  at the simulated times, board counters from the simulated link records, power samples from the
  simulated activity, paper-mode losses as ``evt error`` and no output (:mod:`.pipeline`);
* the last stage reports the **real** output of the injected input, computed by the int16
  reference executor on the plan's model (:mod:`.reference`).

``start_emulator`` launches ``python -m tinysplit.testbed.hw.emulator`` (:mod:`.__main__`) and
waits until it has written its port map; the handle's :meth:`EmulatorHandle.close` ends it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from tinysplit.errors import BoardError, ConfigError

if TYPE_CHECKING:
    from tinysplit.partition import Plan
    from tinysplit.sim.pipeline import PipelineConfig
    from tinysplit.testbed.hw.inventory import Inventory

__all__ = ["EmulatorHandle", "config_to_dict", "load_config", "save_config", "start_emulator"]

#: Seconds to wait for the port map: the emulator quantizes the model before it serves (the
#: paper's MobileNet takes about 10 s on one core).
START_TIMEOUT_S = 180.0
#: Seconds to wait for the emulator to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0


def config_to_dict(config: PipelineConfig) -> dict[str, Any]:
    """A :class:`PipelineConfig` as plain JSON values."""
    data = asdict(config)
    data["mode"] = config.mode.value
    return data


def save_config(config: PipelineConfig, path: str | Path) -> None:
    """Write a configuration as JSON (``--config`` of the emulator)."""
    Path(path).write_text(json.dumps(config_to_dict(config), indent=2) + "\n", encoding="utf-8")


def load_config(path: str | Path) -> PipelineConfig:
    """Read a configuration written by :func:`save_config`.

    Raises:
        ConfigError: unreadable file, bad JSON, unknown keys or bad values (naming the file).
    """
    from tinysplit.sim.pipeline import PipelineConfig

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {str(path)!r}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"configuration {str(path)!r} is not valid JSON: {exc.msg}") from exc
    known = {f.name for f in fields(PipelineConfig)}
    if not isinstance(data, dict) or set(data) - known:
        unknown = sorted(set(data) - known) if isinstance(data, dict) else data
        raise ConfigError(f"configuration {str(path)!r}: unknown keys {unknown}")
    if data.get("rssi_dbm") is not None:
        data["rssi_dbm"] = tuple(data["rssi_dbm"])
    if data.get("positions_m") is not None:
        data["positions_m"] = tuple(tuple(p) for p in data["positions_m"])
    try:
        return PipelineConfig(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"configuration {str(path)!r}: {exc}") from exc


@dataclass(slots=True)
class EmulatorHandle:
    """A running emulator process (a context manager: leaving it closes the process).

    Attributes:
        process: the emulator process.
        ports: board name -> pty path the host opens like a USB serial port.
        scribe_port: the scribe's pty path (None when the inventory has no scribe).
        log_path: the file holding the emulator's stderr.
    """

    process: subprocess.Popen[bytes]
    ports: dict[str, str]
    scribe_port: str | None
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    def close(self) -> None:
        """Terminate the emulator and wait for it (killed if it does not exit in time)."""
        proc = self.process
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_emulator(
    inventory: Inventory,
    plan: Plan,
    config: PipelineConfig,
    workdir: str | Path,
    *,
    timeout_s: float = START_TIMEOUT_S,
) -> EmulatorHandle:
    """Launch emulated boards for ``inventory`` running ``plan`` and wait until they serve.

    ``workdir`` receives ``plan.json``, ``config.json``, ``PORTS.json`` and ``emulator.log``
    (the process's stderr). The process exits when the handle is closed, and by itself when the
    calling process dies (it watches a pipe on its standard input).

    Args:
        inventory: an inventory with an ``[emulator]`` table (its path is passed on).
        plan: the plan the boards run.
        config: the run the emulator simulates (transport, mode, window, inferences, seed, ...).
        workdir: an existing directory for the emulator's files.
        timeout_s: how long to wait for the port map.

    Raises:
        BoardError: the emulator exited or did not write its port map in time; the message
            carries the end of its stderr.
    """
    work = Path(workdir)
    plan_path, config_path = work / "plan.json", work / "config.json"
    ports_path, log_path = work / "PORTS.json", work / "emulator.log"
    plan.save(plan_path)
    save_config(config, config_path)
    ports_path.unlink(missing_ok=True)
    import tinysplit

    env = dict(os.environ)
    src = str(Path(tinysplit.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "tinysplit.testbed.hw.emulator",
        "--inventory", str(Path(inventory.path).resolve()), "--plan", str(plan_path),
        "--config", str(config_path), "--ports-out", str(ports_path), "--exit-with-stdin",
    ]  # fmt: skip
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, env=env
    )
    handle = EmulatorHandle(process, {}, None, log_path, log)
    deadline = time.monotonic() + timeout_s
    while not ports_path.exists():
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            handle.close()
            why = (
                f"exited with status {process.returncode}"
                if exited
                else f"did not start within {timeout_s:g} s"
            )
            raise BoardError(f"emulated boards {why}: {_tail(log_path)}")
        time.sleep(0.05)
    data = json.loads(ports_path.read_text(encoding="utf-8"))
    handle.ports = dict(data["boards"])
    handle.scribe_port = data["scribe"]
    return handle


def _tail(path: Path, lines: int = 5) -> str:
    """The last lines of the emulator's stderr, on one line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "(no log)"
    return " | ".join(text.splitlines()[-lines:]) or "(no output on stderr)"
