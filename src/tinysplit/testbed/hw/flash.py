"""Flash the pipeline boards with esptool's Python API: firmware, partition table, stage slice.

The only tinysplit module that imports ``esptool``. For each board, in stage order,
:func:`flash_boards` connects (``esptool.cmds.detect_chip``), checks the chip is an ESP32-S3 and
reads its base MAC, then writes every image of the build (bootloader, partition table, app) and
the stage's ``.espdl`` slice at the ``model`` partition offset with ``write_flash``, which checks
each written region against the image's MD5 (esptool's verification). A board counts as flashed
only once every region verified; it is then recorded in ``tinysplit-flash-state.json`` in the
build directory (chip MAC -> sha256 of every ``(offset, image)`` pair and the flash settings), and
the next run skips a board whose images have not changed, unless ``force``. The board is reset
into its app after either.

esptool reports through a process-wide logger: while it runs, its output goes to a
:class:`_EsptoolLog` that keeps the text (logged at debug level, shown in error messages) and
turns its progress reports into a rich progress bar per board on a terminal.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esp_pylib.logger import EspLog, EspLogBase
from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, write_flash
from esptool.util import FatalError

from tinysplit.errors import BoardError, ConfigError
from tinysplit.fileio import write_text_atomic
from tinysplit.testbed.hw.build import FirmwareBuild, FlashImage

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from tinysplit.testbed.hw.inventory import BoardSpec

__all__ = [
    "DEFAULT_BAUD",
    "DEFAULT_CONNECT_ATTEMPTS",
    "STATE_FILE",
    "FlashResult",
    "FlashStatus",
    "flash_boards",
    "load_state",
]

log = logging.getLogger(__name__)

#: Name of the flash record kept in the build directory.
STATE_FILE = "tinysplit-flash-state.json"
STATE_SCHEMA_VERSION = 1
#: Baud rate for writing (``idf.py flash``'s default); the ROM is reached at 115200 first.
DEFAULT_BAUD = 460800
#: Connection attempts per board (esptool's default).
DEFAULT_CONNECT_ATTEMPTS = 7
_ROM_BAUD = 115200
_CHIP_NAME = "ESP32-S3"
# ESP-IDF derives the Wi-Fi AP, Bluetooth and Ethernet MACs as base + 1, + 2, + 3.
_DERIVED_MACS = 4
_TAIL_LINES = 15


class FlashStatus(StrEnum):
    """What happened to a board."""

    FLASHED = "flashed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashResult:
    """One board's outcome.

    Attributes:
        name: the board's inventory name.
        stage: its stage.
        port: the serial port used.
        mac: the chip's base MAC (eFuse), ``aa:bb:cc:dd:ee:ff``.
        status: flashed (written and verified) or unchanged (skipped).
        bytes: image bytes written (0 when unchanged).
        seconds: wall time spent on the board, connection and reset included.
    """

    name: str
    stage: int
    port: str
    mac: str
    status: FlashStatus
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "name": self.name,
            "stage": self.stage,
            "port": self.port,
            "mac": self.mac,
            "status": str(self.status),
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class _Job:
    board: BoardSpec
    images: tuple[FlashImage, ...]

    @property
    def total_bytes(self) -> int:
        return sum(image.size for image in self.images)


def flash_boards(
    boards: Sequence[BoardSpec],
    build: FirmwareBuild,
    slices: Sequence[Path],
    *,
    force: bool = False,
    stub: bool | None = None,
    baud: int = DEFAULT_BAUD,
    connect_attempts: int = DEFAULT_CONNECT_ATTEMPTS,
    console: Console | None = None,
) -> list[FlashResult]:
    """Flash every board with ``build`` and its stage's slice, skipping unchanged boards.

    All input is checked before the first board is touched. Boards are flashed one after the
    other in stage order; the first failure stops the run (boards flashed before it stay
    recorded, the failing one is not).

    Args:
        boards: the pipeline boards (an inventory's, sorted by stage 1..n).
        build: the transport firmware build (:func:`~tinysplit.testbed.hw.build.read_build`).
        slices: the ``.espdl`` slice of each stage, stage 1 first.
        force: flash every board even when its record says it already holds these images.
        stub: upload esptool's flasher stub (None: as the build's ``flasher_args.json`` says).
        baud: baud rate for writing (ignored by USB-Serial-JTAG ports and ptys).
        connect_attempts: esptool connection attempts per board (1 fails fastest).
        console: where to draw a progress bar per board; only drawn on a terminal.

    Returns:
        One result per board, in stage order.

    Raises:
        ConfigError: as many boards as slices are needed; a slice missing or too large.
        BoardError: a board that cannot be reached, is not an ESP32-S3, has another MAC than the
            inventory says, or fails to write or verify; the message names board and port, and
            the lines after the first one hold esptool's last output.
    """
    if len(boards) != len(slices):
        raise ConfigError(
            f"the inventory has {len(boards)} boards, the plan has {len(slices)} stages"
        )
    ordered = sorted(boards, key=lambda b: b.stage)
    jobs = [
        _Job(board, build.stage_images(path, stage=board.stage))
        for board, path in zip(ordered, slices, strict=True)
    ]
    use_stub = build.stub if stub is None else stub
    state_path = build.build_dir / STATE_FILE
    state = load_state(state_path)
    results = []

    def forget(mac: str) -> None:
        # A board being rewritten holds neither its old images nor the new ones until verified.
        if state.pop(mac, None) is not None:
            _save_state(state_path, state)

    with _progress_bars(console, jobs) as bars:
        for index, job in enumerate(jobs):
            port = _resolve_port(job.board)
            wanted = _record(job, build)
            result, flashed = _flash_one(
                job,
                port,
                build,
                known=None if force else state,
                wanted=wanted,
                stub=use_stub,
                baud=baud,
                connect_attempts=connect_attempts,
                on_bytes=functools.partial(bars, index),
                on_write=forget,
            )
            if flashed:
                state[result.mac] = {
                    **wanted,
                    "name": job.board.name,
                    "stage": job.board.stage,
                    "port": port,
                    "flashed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
                _save_state(state_path, state)
            bars(index, job.total_bytes, status=str(result.status))
            results.append(result)
    return results


def load_state(path: Path) -> dict[str, dict[str, Any]]:
    """The flash record of a build directory: chip MAC -> what was last written to it.

    A missing or unreadable record is empty (it is only a cache; the worst outcome is a
    reflash), with a warning when it exists but cannot be used.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring flash record %s (%s): every board will be flashed", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("schema_version") != STATE_SCHEMA_VERSION:
        data = {}
    boards = data.get("boards")
    if not isinstance(boards, dict):
        log.warning("ignoring flash record %s (unknown format): every board is flashed", path)
        return {}
    return {str(mac): dict(entry) for mac, entry in boards.items() if isinstance(entry, dict)}


def _save_state(path: Path, state: Mapping[str, Mapping[str, Any]]) -> None:
    data = {"schema_version": STATE_SCHEMA_VERSION, "boards": dict(sorted(state.items()))}
    try:
        write_text_atomic(path, json.dumps(data, indent=2) + "\n", what="flash record")
    except ConfigError as exc:
        # The board is flashed and verified; without the record it is only reflashed next time.
        log.warning("%s", exc)


def _record(job: _Job, build: FirmwareBuild) -> dict[str, Any]:
    """What the state file compares: the image hashes by offset and the flash settings."""
    return {
        "project": build.project,
        "images": {f"{image.offset:#x}": image.sha256 for image in job.images},
        "settings": build.settings(),
    }


def _same(entry: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    return entry is not None and all(entry.get(key) == value for key, value in wanted.items())


def _resolve_port(board: BoardSpec) -> str:
    if board.port is not None:
        return board.port
    if board.serial_number is None:
        raise ConfigError(
            f"board {board.name}: no port or serial number (an emulated inventory has nothing "
            "to flash)"
        )
    from tinysplit.testbed.hw.serial_port import find_serial_number

    return find_serial_number(board.serial_number, label=board.name)


def _flash_one(
    job: _Job,
    port: str,
    build: FirmwareBuild,
    *,
    known: Mapping[str, Mapping[str, Any]] | None,
    wanted: Mapping[str, Any],
    stub: bool,
    baud: int,
    connect_attempts: int,
    on_bytes: Callable[[int], None],
    on_write: Callable[[str], None],
) -> tuple[FlashResult, bool]:
    """Connect, check, write and verify (or skip) one board; returns the result and whether
    it was written. ``on_write(mac)`` is called before the first byte is written."""
    board = job.board
    who = f"board {board.name} on {port}"
    started = time.monotonic()
    output = _EsptoolLog(board.name)
    with _esptool_output(output):
        try:
            rom = detect_chip(
                port, _ROM_BAUD, connect_mode=build.before, connect_attempts=connect_attempts
            )
        except (FatalError, OSError) as exc:
            raise BoardError(
                f"{who}: no ESP32-S3 bootloader answered ({_first_line(exc)}); check the cable "
                f"and that the port is the board's{output.tail()}"
            ) from exc
        with rom:
            mac = _check_chip(rom, board, who, output)
            if known is not None and _same(known.get(mac), wanted):
                _reset(rom, build.after, who)
                seconds = time.monotonic() - started
                return _result(board, port, mac, FlashStatus.UNCHANGED, 0, seconds), False
            on_write(mac)
            written = _write(rom, job, build, who, stub, baud, output, on_bytes)
    return _result(board, port, mac, FlashStatus.FLASHED, written, time.monotonic() - started), True


def _result(
    board: BoardSpec, port: str, mac: str, status: FlashStatus, written: int, seconds: float
) -> FlashResult:
    return FlashResult(
        name=board.name,
        stage=board.stage,
        port=port,
        mac=mac,
        status=status,
        bytes=written,
        seconds=seconds,
    )


def _check_chip(esp: Any, board: BoardSpec, who: str, output: _EsptoolLog) -> str:
    """The chip's base MAC, after checking it is an ESP32-S3 and the inventory's board."""
    if esp.CHIP_NAME != _CHIP_NAME:
        raise BoardError(f"{who}: the chip is an {esp.CHIP_NAME}, not an {_CHIP_NAME}")
    try:
        raw = bytes(esp.read_mac())
    except (FatalError, OSError) as exc:
        raise BoardError(f"{who}: cannot read the MAC: {_first_line(exc)}{output.tail()}") from exc
    mac = ":".join(f"{b:02x}" for b in raw)
    if board.mac is not None:
        base = int.from_bytes(raw, "big")
        derived = {
            ":".join(f"{b:02x}" for b in (base + i).to_bytes(6, "big"))
            for i in range(_DERIVED_MACS)
        }
        if board.mac not in derived:
            raise BoardError(
                f"{who}: the chip's MAC is {mac}, the inventory says {board.mac} "
                "(boards swapped between ports?)"
            )
    return mac


def _write(
    rom: Any,
    job: _Job,
    build: FirmwareBuild,
    who: str,
    stub: bool,
    baud: int,
    output: _EsptoolLog,
    on_bytes: Callable[[int], None],
) -> int:
    """Write and verify every image; returns the bytes written."""
    try:
        esp = run_stub(rom) if stub else rom
        if baud != _ROM_BAUD:
            esp.change_baud(baud)
        attach_flash(esp)
    except (FatalError, OSError) as exc:
        raise BoardError(
            f"{who}: cannot prepare the flash: {_first_line(exc)}{output.tail()}"
        ) from exc
    done = 0
    for image in job.images:
        output.on_progress = _scaled(on_bytes, done, image.size)
        try:
            write_flash(
                esp,
                [(image.offset, image.data)],
                flash_mode=build.flash_mode,
                flash_size=build.flash_size,
                flash_freq=build.flash_freq,
            )
        except (FatalError, OSError) as exc:
            reason = _first_line(exc)
            if "MD5" in reason or "flash region is empty" in reason:
                raise BoardError(
                    f"{who}: verify failed for {image.name} at {image.offset:#x}: the flash does "
                    f"not hold what was written ({reason}); the board is not recorded as flashed"
                    f"{output.tail()}"
                ) from exc
            raise BoardError(
                f"{who}: writing {image.name} at {image.offset:#x} failed: {reason}{output.tail()}"
            ) from exc
        done += image.size
        on_bytes(done)
    output.on_progress = None
    _reset(esp, build.after, who)
    return done


def _reset(esp: Any, after: str, who: str) -> None:
    """Leave the bootloader as the build asks (``hard-reset`` runs the app)."""
    try:
        reset_chip(esp, after)
    except (FatalError, OSError) as exc:
        log.warning("%s: flashed, but the reset failed (%s): reset it by hand", who, exc)


def _scaled(on_bytes: Callable[[int], None], done: int, size: int) -> Callable[[int, int], None]:
    """Map esptool's per-image progress (bytes on the wire, maybe compressed) to board bytes."""

    def report(current: int, total: int) -> None:
        if total > 0:
            on_bytes(done + size * min(current, total) // total)

    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _EsptoolLog(EspLogBase):
    """esptool's logger while tinysplit drives it: keeps the text, reports progress.

    Every line is logged at debug level (``tinysplit --debug`` shows them) and the last ones are
    appended to error messages; progress reports go to :attr:`on_progress`.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.lines: list[str] = []
        self.on_progress: Callable[[int, int], None] | None = None
        self._partial = ""

    def tail(self) -> str:
        """The last lines of output, each on its own line after a newline (or "")."""
        lines = [*self.lines, self._partial] if self._partial.strip() else self.lines
        shown = [line for line in lines if line.strip()][-_TAIL_LINES:]
        return "".join(f"\n  esptool: {line}" for line in shown)

    def _emit(self, text: str) -> None:
        text = self._partial + text.replace("\\[", "[")
        *complete, self._partial = text.split("\n")
        for line in complete:
            self.lines.append(line)
            log.debug("esptool %s: %s", self.label, line)

    def print(self, *args: Any, **kwargs: Any) -> None:
        sep = kwargs.get("sep", " ")
        end = kwargs.get("end", "\n")
        self._emit(sep.join(str(a) for a in args) + end)

    def _message(self, kind: str, *args: Any) -> None:
        # A message interrupting a partial line ("Connecting...") starts a line of its own.
        if self._partial:
            self._emit("\n")
        self.print(kind, *args)

    def note(self, *args: Any) -> None:
        self._message("Note:", *args)

    def hint(self, *args: Any) -> None:
        self._message("Hint:", *args)

    def debug(self, *args: Any) -> None:
        self._message("Debug:", *args)

    def warn(self, *args: Any, suggestion: str | None = None) -> None:
        self._message("Warning:", *args)

    def err(self, *args: Any, suggestion: str | None = None) -> None:
        self._message("Error:", *args)

    # esptool still calls these older names in places.
    def warning(self, message: str, suggestion: str | None = None) -> None:
        self.warn(message)

    def error(self, message: str, suggestion: str | None = None) -> None:
        self.err(message)

    def set_verbosity(self, mode: int | str) -> None:
        pass

    def progress_bar(
        self,
        cur_iter: int,
        total_iters: int,
        prefix: str = "",
        suffix: str = "",
        bar_length: int = 30,
    ) -> None:
        if self.on_progress is not None:
            self.on_progress(cur_iter, total_iters)


@contextmanager
def _esptool_output(logger: _EsptoolLog) -> Iterator[None]:
    """Route esptool's process-wide logger to ``logger`` for the duration."""
    previous = EspLog.instance
    EspLog.instance = logger
    try:
        yield
    finally:
        EspLog.instance = previous


_Bars = Callable[..., None]


@contextmanager
def _progress_bars(console: Console | None, jobs: Sequence[_Job]) -> Iterator[_Bars]:
    """A ``bars(index, done_bytes, status=None)`` callback: one rich bar per board on a
    terminal, nothing otherwise."""
    if console is None or not console.is_terminal:

        def quiet(index: int, done: int, status: str | None = None) -> None:
            return None

        yield quiet
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    progress: Progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )
    tasks: list[TaskID] = [
        progress.add_task(
            f"{job.board.name} (stage {job.board.stage})", total=job.total_bytes, status=""
        )
        for job in jobs
    ]

    def update(index: int, done: int, status: str | None = None) -> None:
        if status is None:
            progress.update(tasks[index], completed=done)
        else:
            progress.update(tasks[index], completed=done, status=status)

    with progress:
        yield update
