"""The console of the emulated scribe (``firmware/scribe/README.md``, "Console protocol").

The scribe answers ``hello``, ``start``, ``stop``, ``status`` and ``help`` as the firmware does
and, while running, prints the pipeline's marks and (with a power meter) current samples:

    TS1 evt mark line=<n> mark=<name> t_ns=<ns since start>
    TS1 evt power dev=<stage> t_ns=<ns> bus_mv=<mV> current_ua=<uA> power_uw=<uW>

Time zero (``start``) is the simulation's zero. ``t_ns`` of a mark is the simulated time rounded
to the nanosecond (not to the 12.5 ns capture tick ``hello`` announces), so marks equal the
simulator's records. Power samples come every :data:`POWER_PERIOD_MS` ms of simulated time (the
firmware's ``TINYSPLIT_SCRIBE_POWER_PERIOD_MS`` default) with INA226 resolution: current in steps
of 25 uA (2.5 uV over the 100 mOhm shunt), bus voltage in steps of 1.25 mV.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tinysplit.testbed.hw.emulator.lineproto import Command, LineConsole, Write, no_args
from tinysplit.testbed.hw.emulator.timeline import MARKS

#: Simulated milliseconds between two power samples of one board.
POWER_PERIOD_MS = 10
#: INA226 at the firmware's default 100 mOhm shunt: current and bus-voltage steps.
CURRENT_STEP_UA = 25
BUS_STEP_UV = 1250


class EmulatedScribe(LineConsole):
    """The scribe board's console.

    Args:
        lines: number of capture lines.
        power: ``ina226`` when a current monitor is fitted on every stage, else ``none``.
        unit_us: the mark pulse unit in microseconds.
        write: where its output lines go (its pty).
        started: called on ``start`` (the pipeline restarts its simulated time).
        now_ns: the simulated time now, in ns since ``start`` (for ``status``).
        stopping: called on ``stop`` before capture ends (the pipeline's last power samples).
        drops: lines its port dropped because the host did not read (``console_drops``).
    """

    def __init__(
        self,
        *,
        lines: int,
        power: str,
        unit_us: int,
        write: Write,
        started: Callable[[], None],
        now_ns: Callable[[], int],
        stopping: Callable[[], None],
        drops: Callable[[], int],
    ) -> None:
        super().__init__(write)
        self.line_count = lines
        self.power = power
        self.unit_us = unit_us
        self.running = False
        self._started = started
        self._now_ns = now_ns
        self._stopping = stopping
        self._drops = drops
        self._reset_counts()
        self.commands = {
            "hello": Command("hello", self._hello),
            "start": Command("start", self._start),
            "stop": Command("stop", self._stop),
            "status": Command("status", self._status),
        }

    def _reset_counts(self) -> None:
        self.marks = {line: [0] * len(MARKS) for line in range(1, self.line_count + 1)}
        self.power_samples = 0

    def boot_log(self) -> None:
        """The ESP-IDF boot line (no ``TS1`` prefix)."""
        self.raw_line(
            f"I (298) scribe: emulated scribe: {self.line_count} lines, power {self.power}"
        )

    def _hello(self, args: Sequence[str]) -> str:
        no_args(args, "hello")
        return (
            f"proto=1 role=scribe lines={self.line_count} resolution_ns=12.5 power={self.power} "
            f"unit_us={self.unit_us}"
        )

    def _start(self, args: Sequence[str]) -> str:
        no_args(args, "start")
        self._reset_counts()
        self.running = True
        self._started()
        return "running=1"

    def _stop(self, args: Sequence[str]) -> str:
        no_args(args, "stop")
        if self.running:
            self._stopping()
        self.running = False
        return "running=0"

    def _status(self, args: Sequence[str]) -> str:
        no_args(args, "status")
        t_ns = self._now_ns() if self.running else 0
        words = [
            f"running={int(self.running)} capture=mcpwm lines={self.line_count} t_ns={t_ns} "
            f"overflows=0 power_samples={self.power_samples} power_errors=0 "
            f"console_drops={self._drops()}"
        ]
        for line, counts in self.marks.items():
            words.append(
                f"line{line}_marks={','.join(map(str, counts))} line{line}_glitches=0 "
                f"line{line}_timeouts=0"
            )
        return " ".join(words)

    def mark(self, line: int, name: str, t_s: float) -> None:
        """A mark pulse on ``line`` at simulated ``t_s`` (printed only while running)."""
        if not self.running or line not in self.marks:
            return
        self.marks[line][MARKS.index(name)] += 1
        self.event("mark", f"line={line} mark={name} t_ns={round(t_s * 1e9)}")

    def sample(self, dev: int, t_s: float, current_ma: float, supply_v: float) -> None:
        """One INA226 reading of board ``dev`` at simulated ``t_s`` (printed only while running)."""
        if not self.running or self.power == "none":
            return
        self.power_samples += 1
        bus_uv = round(supply_v * 1e6 / BUS_STEP_UV) * BUS_STEP_UV
        current_ua = round(current_ma * 1000 / CURRENT_STEP_UA) * CURRENT_STEP_UA
        power_uw = round(bus_uv * current_ua / 1e6)
        self.event(
            "power",
            f"dev={dev} t_ns={round(t_s * 1e9)} bus_mv={(bus_uv + 500) // 1000} "
            f"current_ua={current_ua} power_uw={power_uw}",
        )
