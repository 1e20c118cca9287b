"""The console of an emulated pipeline board (``docs/protocol.md``, "Commands of a pipeline board").

:class:`EmulatedBoard` answers every command with the firmware's replies, error codes and
messages (``firmware/components/tinysplit_core/src/ts_console_stage.c``), checking arguments in
the same order. What a real board gets from its stage runner and radio it asks the
:class:`BoardHost` (the emulated pipeline, :mod:`.pipeline`): whether the links are up, what
happens to an injected input, RSSI values and ping round trips.

Differences from a board, by design: settings live in memory (``config`` stores them, ``reset``
applies them, as NVS would across the emulated reboot, until the emulator exits); the board's
``esp_timer`` clock in ``evt mark`` lines is its simulated time plus a per-board offset, so it
never runs backwards and differs from board to board as unsynchronised clocks do.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tinysplit.testbed.hw.emulator.lineproto import (
    Command,
    CommandError,
    LineConsole,
    Write,
    decode_base64,
    no_args,
    parse_hex32,
    parse_i8,
    parse_u32,
    usage_error,
)
from tinysplit.testbed.hw.emulator.settings import DATA_MAX, Settings

#: The stage runner's counters, in the order ``stats`` lists them (``ts_stage_stats_t``).
STAGE_COUNTERS = (
    "tensors_in", "tensors_out", "inference_errors", "send_failures", "tx_frames", "tx_bytes",
    "retransmissions", "tx_refused", "timeouts", "rx_frames", "rx_bytes", "rx_crc_errors",
    "rx_malformed", "rx_duplicates", "rx_dropped_tensors", "tensor_crc_errors", "requantized",
    "rtt_up_us", "rtt_down_us",
)  # fmt: skip
#: Counters whose growth a board reports at once as ``evt error what=<counter>``.
REPORTED_COUNTERS = ("inference_errors", "send_failures", "rx_dropped_tensors", "tx_refused")


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardInfo:
    """What a board knows of itself from its firmware and model partition."""

    name: str
    transport: str
    firmware: str
    in_values: int
    in_exp: int
    out_values: int


class BoardHost(Protocol):
    """The emulated pipeline as one board sees it."""

    def links_up(self, board: EmulatedBoard) -> bool:
        """Whether the board's transport links are up."""

    def inject(self, board: EmulatedBoard, inference: int, exponent: int, data: bytes) -> None:
        """Hand stage 1 a checked input; raises ``CommandError("state", ...)`` while busy."""

    def rssi_dbm(self, board: EmulatedBoard, link: str) -> int | None:
        """Latest RSSI of the board's ``up`` / ``down`` link, None if it has none."""

    def ping(self, board: EmulatedBoard, link: str, token: int) -> None:
        """Send a PING; the host later calls :meth:`EmulatedBoard.pong`."""

    def started(self, board: EmulatedBoard) -> None:
        """The board went from idle to running."""

    def stopped(self, board: EmulatedBoard) -> None:
        """The board went idle: its partial tensors are dropped."""

    def rebooted(self, board: EmulatedBoard) -> None:
        """The board restarted with its stored settings."""


@dataclass(slots=True)
class _Inject:
    inference: int
    exponent: int
    size: int
    crc32: int
    data: bytearray


class EmulatedBoard(LineConsole):
    """One pipeline board's console.

    Args:
        info: identity, tensor sizes and firmware version.
        settings: the settings it boots with (also the stored ones).
        host: the emulated pipeline.
        write: where the board's output lines go (its pty).
        clock_offset_us: the board's ``esp_timer`` reading at simulated time 0 of the first run.
    """

    def __init__(
        self,
        info: BoardInfo,
        settings: Settings,
        host: BoardHost,
        write: Write,
        clock_offset_us: int = 0,
    ) -> None:
        super().__init__(write)
        self.info = info
        self.settings = settings
        self.stored = settings
        self.host = host
        self.clock_base_us = clock_offset_us
        self.last_clock_us = clock_offset_us
        self._boot()
        self.commands = {
            "hello": Command("hello", self._hello),
            "status": Command("status", self._status),
            "config": Command("config [key=value]...", self._config),
            "reset": Command("reset", self._reset),
            "start": Command("start", self._start),
            "stop": Command("stop", self._stop),
            "inject": Command("inject <inference> <exponent> <bytes> <crc32hex>", self._inject),
            "data": Command("data <offset> <base64>", self._data),
            "end": Command("end", self._end),
            "read": Command("read <inference> <offset> <len>", self._read),
            "stats": Command("stats [reset]", self._stats),
            "rssi": Command("rssi", self._rssi),
            "ping": Command("ping <up|down>", self._ping),
            "marks": Command("marks <on|off>", self._marks),
        }

    def _boot(self) -> None:
        """The state right after power-on or ``reset``: idle, nothing held, counters zero."""
        self.running = False
        self.marks = False
        self.counters = dict.fromkeys(STAGE_COUNTERS, 0)
        self.rx_ignored = 0
        self.lines = self.errors = 0
        self.inflight = 0
        self.ping_token = 0
        self.output: tuple[int, int, bytes] | None = None  # inference, exponent, bytes
        self._inject_state: _Inject | None = None

    @property
    def stage(self) -> int:
        """The stage this board runs (its running settings)."""
        return self.settings.stage

    @property
    def last(self) -> bool:
        """Whether the board runs the last stage."""
        return self.settings.stage == self.settings.stages

    def boot_log(self) -> None:
        """The ESP-IDF boot line (no ``TS1`` prefix: hosts skip it as log output)."""
        s = self.settings
        self.raw_line(
            f"I (312) tinysplit: emulated board {self.info.name}: stage {s.stage} of {s.stages}, "
            f"{self.info.transport}, {s.mode}, window {s.window}"
        )

    # ---- what the pipeline drives ----------------------------------------------------------

    def add_counters(self, deltas: dict[str, int] | None) -> None:
        """Grow counters; a failure counter that grows is reported as ``evt error``."""
        for key, value in (deltas or {}).items():
            self.counters[key] += value
            if value and key in REPORTED_COUNTERS:
                self.event("error", f"what={key} total={self.counters[key]}")

    def mark(self, name: str, inference: int, t_s: float) -> None:
        """Print ``evt mark`` (with ``marks on``) at the board's clock for simulated ``t_s``."""
        t_us = max(self.clock_base_us + round(t_s * 1e6), self.last_clock_us)
        self.last_clock_us = t_us
        if self.marks:
            self.event("mark", f"mark={name} inference={inference} t_us={t_us}")

    def new_run(self, gap_us: int = 1000) -> None:
        """Simulated time restarts at 0: continue the board's clock after its last reading."""
        self.clock_base_us = self.last_clock_us + gap_us

    def produce(self, inference: int, exponent: int, data: bytes) -> None:
        """The last stage's output: keep it for ``read`` and print ``evt output``."""
        self.output = (inference, exponent, data)
        crc = zlib.crc32(data) & 0xFFFFFFFF
        self.event(
            "output", f"inference={inference} exp={exponent} bytes={len(data)} crc32={crc:08x}"
        )

    def pong(self, link: str, rtt_us: int) -> None:
        """The PONG of a ``ping`` arrived after ``rtt_us`` microseconds."""
        self.counters[f"rtt_{link}_us"] = rtt_us
        self.event("rtt", f"link={link} rtt_us={rtt_us}")

    # ---- commands --------------------------------------------------------------------------

    def _need_links(self) -> None:
        if not self.host.links_up(self):
            raise CommandError("state", "links down")

    def _hello(self, args: Sequence[str]) -> str:
        no_args(args, "hello")
        s, i = self.settings, self.info
        return (
            f"proto=1 fw={i.firmware} transport={i.transport} stage={s.stage} stages={s.stages} "
            f"mode={s.mode} window={s.window} in={i.in_values} in_exp={i.in_exp} "
            f"out={i.out_values}"
        )

    def _status(self, args: Sequence[str]) -> str:
        no_args(args, "status")
        state = "running" if self.running else "idle"
        if not self.host.links_up(self):
            return f"state={state} links=down busy=0 tensors_in=0 tensors_out=0 errors=0"
        c = self.counters
        errors = c["inference_errors"] + c["send_failures"] + c["rx_dropped_tensors"]
        return (
            f"state={state} links=up busy={int(self.inflight > 0)} tensors_in={c['tensors_in']} "
            f"tensors_out={c['tensors_out']} errors={errors}"
        )

    def _config(self, args: Sequence[str]) -> str:
        following = self.stored
        for word in args:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise usage_error("config [key=value]...")
            if key not in Settings.__dataclass_fields__:
                raise CommandError("usage", f"unknown key {key}")
            following = following.with_value(key, value)
        if following.stage > following.stages:
            raise CommandError(
                "range", f"stage {following.stage} is past stages {following.stages}"
            )
        self.stored = following
        return f"{following.text()} pending={int(following != self.settings)}"

    def _reset(self, args: Sequence[str]) -> str:
        no_args(args, "reset")
        self.after_reply(self._reboot)
        return "rebooting"

    def _reboot(self) -> None:
        self.settings = self.stored
        self._boot()
        self.boot_log()
        self.host.rebooted(self)

    def _start(self, args: Sequence[str]) -> str:
        no_args(args, "start")
        was_running, self.running = self.running, True
        if not was_running:
            self.host.started(self)
        return "state=running"

    def _stop(self, args: Sequence[str]) -> str:
        no_args(args, "stop")
        self.running = False
        self._inject_state = None
        self.host.stopped(self)
        return "state=idle"

    def _inject(self, args: Sequence[str]) -> str:
        use = "inject <inference> <exponent> <bytes> <crc32hex>"
        if len(args) != 4:
            raise usage_error(use)
        inference, exponent = parse_u32(args[0], 0xFFFF), parse_i8(args[1])
        size, crc = parse_u32(args[2]), parse_hex32(args[3])
        if inference is None or exponent is None or size is None or crc is None:
            raise usage_error(use)
        if self.stage != 1:
            raise CommandError("state", f"inject is for stage 1, this is stage {self.stage}")
        self._need_links()
        if not self.running:
            raise CommandError("state", "stopped")
        if size != 2 * self.info.in_values:
            raise CommandError("size", f"input is {2 * self.info.in_values} bytes")
        self._inject_state = _Inject(inference, exponent, size, crc, bytearray())
        return f"max_data={DATA_MAX}"

    def _data(self, args: Sequence[str]) -> str:
        offset = parse_u32(args[0]) if len(args) == 2 else None
        if offset is None:
            raise usage_error("data <offset> <base64>")
        inj = self._inject_state
        if inj is None:
            raise CommandError("state", "no inject in progress")
        if offset != len(inj.data):
            raise CommandError("range", f"expected offset {len(inj.data)}")
        room = min(inj.size - offset, DATA_MAX)
        inj.data += decode_base64(args[1], room, offset)
        return f"received={len(inj.data)}"

    def _end(self, args: Sequence[str]) -> str:
        no_args(args, "end")
        inj = self._inject_state
        if inj is None:
            raise CommandError("state", "no inject in progress")
        if len(inj.data) != inj.size:
            raise CommandError("size", f"received {len(inj.data)} of {inj.size} bytes")
        self._inject_state = None
        crc = zlib.crc32(inj.data) & 0xFFFFFFFF
        if crc != inj.crc32:
            raise CommandError("crc", f"computed {crc:08x}, expected {inj.crc32:08x}")
        self._need_links()
        self.host.inject(self, inj.inference, inj.exponent, bytes(inj.data))
        return f"inference={inj.inference}"

    def _read(self, args: Sequence[str]) -> str:
        words = [parse_u32(args[0], 0xFFFF), *map(parse_u32, args[1:])] if len(args) == 3 else []
        if len(words) != 3 or None in words:
            raise usage_error("read <inference> <offset> <len>")
        inference, offset, length = (int(w or 0) for w in words)
        if not self.last:
            raise CommandError("state", "read is for the last stage")
        if self.output is None:
            raise CommandError("state", "no output yet")
        latest, _, data = self.output
        if inference != latest:
            raise CommandError("range", f"latest output is inference {latest}")
        if length > DATA_MAX:
            raise CommandError("size", f"at most {DATA_MAX} bytes per read")
        if offset > len(data) or length > len(data) - offset:
            raise CommandError("range", f"output is {len(data)} bytes")
        return base64.b64encode(data[offset : offset + length]).decode("ascii")

    def _stats(self, args: Sequence[str]) -> str:
        reset = list(args) == ["reset"]
        if args and not reset:
            raise usage_error("stats [reset]")
        self._need_links()
        if reset:
            self.counters = dict.fromkeys(STAGE_COUNTERS, 0)
            self.rx_ignored = 0
            return ""
        counters = " ".join(f"{k}={v}" for k, v in self.counters.items())
        return (
            f"{counters} rx_ignored={self.rx_ignored} console_lines={self.lines} "
            f"console_errors={self.errors} rx_queue_drops=0"
        )

    def has_link(self, link: str) -> bool:
        """Whether the board has an ``up`` (stage > 1) or ``down`` (not last) link."""
        return self.stage > 1 if link == "up" else not self.last

    def _rssi(self, args: Sequence[str]) -> str:
        no_args(args, "rssi")
        values = []
        for link in ("up", "down"):
            dbm = self.host.rssi_dbm(self, link) if self.has_link(link) else None
            values.append("none" if dbm is None else str(dbm))
        return f"up={values[0]} down={values[1]}"

    def _ping(self, args: Sequence[str]) -> str:
        if len(args) != 1 or args[0] not in ("up", "down"):
            raise usage_error("ping <up|down>")
        link = args[0]
        if not self.has_link(link):
            raise CommandError("state", f"stage {self.stage} has no {link} link")
        if self.settings.mode != "reliable":
            raise CommandError("state", "ping needs reliable mode")
        self._need_links()
        if not self.running:
            raise CommandError("state", "stopped")
        self.ping_token += 1
        token = self.ping_token
        self.after_reply(lambda: self.host.ping(self, link, token))
        return f"link={link} token={token}"

    def _marks(self, args: Sequence[str]) -> str:
        if len(args) != 1 or args[0] not in ("on", "off"):
            raise usage_error("marks <on|off>")
        self.marks = args[0] == "on"
        return f"marks={args[0]}"
