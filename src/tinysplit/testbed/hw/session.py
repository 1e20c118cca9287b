"""One run on the boards: open the consoles, bring the pipeline up, stream inputs, collect records.

Used by :class:`~tinysplit.testbed.hw.testbed.HardwareTestbed`; its module docstring says what the
records hold. The steps:

1. **Open** every board's console and the scribe's (ports from the inventory or the emulator).
2. **Check** each board's ``hello``: protocol 1, the inventory's transport, stage and stage
   count, and the plan's slice (input and output values; stage 1's input exponent must be the
   host reference's). Boards whose running ``mode`` / ``window`` differ from the run's get
   ``config mode=.. window=..`` and ``reset``; then every board must report ``links=up``.
3. **Start**: every board ``stop`` (drops partial tensors of an earlier run), ``stats reset``,
   ``marks off``; ``start`` from the last stage to the first; the scribe ``start`` (time zero),
   then the power meter.
4. **Stream**: inputs go to stage 1 back to back (the next one once the scribe has seen stage 1
   start the previous inference, as the simulator frees the input buffer; after the first
   refusal, ``err state``, once it has ended it, as the firmware does; or a second after the
   last attempt) or every ``interval_s`` (scaled by an emulator's ``time_scale``). Each ``evt
   output`` of the last stage is checked; ``evt error what=send_failures`` /
   ``inference_errors`` counts a lost inference. After each finished inference every board's
   ``stats`` is read. The run is done when every input has an
   output or a failure; a ``status`` round trip to the scribe then makes sure every mark it sent
   has arrived.
5. **Finish**: the scribe ``stop``, the meter's traces, every board's ``rssi``; what the run
   observed (:class:`~tinysplit.testbed.hw.observed.RunLog`) becomes the records
   (:func:`~tinysplit.testbed.hw.observed.build_result`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tinysplit.errors import BoardError, ConfigError
from tinysplit.testbed.base import PartialRunError
from tinysplit.testbed.hw.console import Console, ConsoleCommandError, Event, Reply
from tinysplit.testbed.hw.observed import HardwareResult, RunLog, build_result, counters, to_int
from tinysplit.testbed.hw.power import make_power_meter
from tinysplit.testbed.hw.reference import compare

if TYPE_CHECKING:
    from tinysplit.partition import Plan
    from tinysplit.sim.pipeline import PipelineConfig
    from tinysplit.testbed.hw.inventory import Inventory
    from tinysplit.testbed.hw.reference import Reference

log = logging.getLogger(__name__)

#: Console reply timeout of commands, seconds.
COMMAND_TIMEOUT_S = 5.0
#: How long boards may take to bring their links up, seconds.
LINKS_UP_TIMEOUT_S = 60.0
#: Host poll period while waiting for the boards, seconds.
POLL_S = 0.001
#: Inject anyway when stage 1 has not marked the previous inference's end for this long, s.
INJECT_RETRY_S = 1.0
_UNPLUGGED = "unplugged or closed"


class Session:
    """The open consoles of one run; :meth:`execute` runs it, :meth:`close` releases the ports.

    Args:
        inventory: the boards.
        plan: the pipeline's stages.
        config: the run (transport, mode, window, inferences, seed, interval).
        reference: the host's int16 reference of the plan's model.
        ports: board name -> port (None: look up the inventory's serial number).
        scribe_port: the scribe's port (None: its serial number).
        timeout_s: time without a finished inference after which the pipeline counts as stalled.

    Raises:
        ConfigError: no scribe in the inventory.
        BoardError: a port that cannot be opened (naming the board and port).
    """

    def __init__(
        self,
        inventory: Inventory,
        plan: Plan,
        config: PipelineConfig,
        reference: Reference,
        *,
        ports: dict[str, str | None],
        scribe_port: str | None,
        timeout_s: float,
    ) -> None:
        from tinysplit.testbed.hw.serial_port import find_serial_number, open_serial

        if inventory.scribe is None:
            raise ConfigError(
                f"{inventory.path}: the hardware testbed times the stages with the scribe: "
                "add a [scribe] table"
            )
        self.inventory, self.plan, self.config = inventory, plan, config
        self.reference, self.timeout_s = reference, timeout_s
        self.boards: list[Console] = []
        self.scribe: Console | None = None
        try:
            for board in inventory.boards:
                label = f"{board.name} (stage {board.stage})"
                port = ports.get(board.name, board.port)
                if port is None and board.serial_number is not None:
                    port = find_serial_number(board.serial_number, label=label)
                stream = open_serial(port=port, serial_number=None, label=label)
                self.boards.append(
                    Console(stream, label=label, port=str(port), timeout_s=COMMAND_TIMEOUT_S)
                )
            spec = inventory.scribe
            if scribe_port is None and spec.serial_number is not None:
                scribe_port = find_serial_number(spec.serial_number, label="scribe")
            stream = open_serial(port=scribe_port, serial_number=None, label="scribe")
            self.scribe = Console(
                stream, label="scribe", port=str(scribe_port), timeout_s=COMMAND_TIMEOUT_S
            )
        except BaseException:
            self.close()
            raise
        self.log = RunLog(stages=len(self.boards), lines=dict(spec.lines))
        self.outputs = 0
        self.pending: deque[int] = deque()  # injected inferences without output or failure yet
        self.stage_of = {str(line): stage for stage, line in spec.lines.items()}
        self.seen: dict[tuple[int, str], int] = {}  # scribe marks so far by (stage, mark)
        self.free_on = "infer_start"  # the stage-1 mark after which it takes the next input
        self._values: npt.NDArray[np.int16] = np.zeros((0, 0), dtype=np.int16)

    def close(self) -> None:
        """Close every console (idempotent)."""
        for console in [*self.boards, *([self.scribe] if self.scribe else [])]:
            console.close()

    # ------------------------------------------------------------------------------ run

    def execute(self) -> HardwareResult:
        """Bring up, stream and record the run (see the module docstring).

        Raises:
            PartialRunError: a board failed while streaming; carries the finished inferences.
        """
        assert self.scribe is not None
        self._values = self.reference.inputs(self.config.inferences, self.config.seed)
        self._bring_up()
        meter = make_power_meter(self.inventory.power, self.scribe)
        self.scribe.command("start").require()
        meter.start()
        error: BoardError | None = None
        try:
            self._stream()
            self._settle()
        except BoardError as exc:
            error = exc
        finally:
            # The scribe's reply to ``stop`` follows the last samples it streamed.
            with contextlib.suppress(BoardError):
                self.scribe.command("stop")
            traces = meter.stop()
        self.log.rssi_end = [self._try_rssi(c, self._quick_s) for c in self.boards]
        self.log.garbage_lines = sum(c.garbage_lines for c in [*self.boards, self.scribe])
        finished = self.config.inferences if error is None else self._finished()
        result = build_result(self.log, self.plan, self.config, finished=finished, traces=traces)
        if error is None:
            return result
        partial = result
        raise PartialRunError(
            f"{error}; run aborted after {self._finished()} of {self.config.inferences} inferences",
            partial,
        ) from error

    def _bring_up(self) -> None:
        config = self.config
        started = time.monotonic()
        reset_at: dict[int, float] = {}
        for k, console in enumerate(self.boards, start=1):
            hello = console.hello()
            self._check_hello(k, console, hello)
            if hello.get("mode") != config.mode.value or hello.get("window") != str(config.window):
                console.command(f"config mode={config.mode.value} window={config.window}").require()
                console.command("reset").require()
                reset_at[k] = time.monotonic()
        self.log.setup_s = self._links_up(reset_at, started)
        for k, console in enumerate(self.boards, start=1):
            if reset_at.get(k) is not None:
                hello = console.hello()
                if hello.get("mode") != config.mode.value or hello.get("window") != str(
                    config.window
                ):
                    raise BoardError(
                        f"board {console.label} on {console.port}: runs mode={hello.get('mode')} "
                        f"window={hello.get('window')} after config and reset"
                    )
            for line in ("stop", "stats reset", "marks off"):
                console.command(line).require()
        for console in reversed(self.boards):
            console.command("start").require()
        self.log.rssi_start = [self._try_rssi(c, self._quick_s) for c in self.boards]
        assert self.scribe is not None
        hello = self.scribe.hello()
        unit = self.inventory.scribe.pulse_unit_us if self.inventory.scribe else None
        if "unit_us" in hello and hello["unit_us"] != str(unit):
            raise ConfigError(
                f"{self.inventory.path}: the scribe decodes marks with a {hello['unit_us']} us "
                f"unit, the inventory says pulse_unit_us = {unit}"
            )

    def _check_hello(self, stage: int, console: Console, hello: dict[str, str]) -> None:
        who = f"board {console.label} on {console.port}"
        expected = {
            "transport": self.inventory.transport,
            "stage": str(stage),
            "stages": str(len(self.boards)),
        }
        for key, want in expected.items():
            if hello.get(key) != want:
                raise ConfigError(
                    f"{who} runs {key}={hello.get(key)}, the inventory needs {key}={want} "
                    "(flash it: tinysplit flash)"
                )
        in_values, out_values = self.reference.stage_values(self.plan.stages[stage - 1])
        if hello.get("in") != str(in_values) or hello.get("out") != str(out_values):
            raise ConfigError(
                f"{who} runs a slice of {hello.get('in')} -> {hello.get('out')} values, the "
                f"plan's stage {stage} is {in_values} -> {out_values}: flash this plan"
            )
        if stage == 1 and hello.get("in_exp") != str(self.reference.input_exponent):
            raise ConfigError(
                f"{who} expects inputs at exponent {hello.get('in_exp')}, the host reference "
                f"quantizes at {self.reference.input_exponent}: flash slices exported from "
                "this plan"
            )

    def _links_up(self, reset_at: dict[int, float], started: float) -> list[float]:
        """Poll ``status`` until every board has its links up; seconds to links up per link."""
        n = len(self.boards)
        since = [reset_at.get(k + 1, started) for k in range(n)]
        ready = [math.nan] * n
        deadline = time.monotonic() + LINKS_UP_TIMEOUT_S
        while True:
            for k, console in enumerate(self.boards):
                if not math.isnan(ready[k]):
                    continue
                try:
                    status = console.command("status").require()
                except BoardError as exc:
                    # A board rebooting after ``reset`` may miss a command; unplugged is final.
                    if k + 1 not in reset_at or _UNPLUGGED in str(exc):
                        raise
                    if time.monotonic() > deadline:
                        raise
                    continue
                if status.fields.get("links") == "up":
                    ready[k] = time.monotonic() - since[k]
            if not any(math.isnan(r) for r in ready):
                break
            if time.monotonic() > deadline:
                down = [c.label for c, r in zip(self.boards, ready, strict=True) if math.isnan(r)]
                raise BoardError(
                    f"links still down after {LINKS_UP_TIMEOUT_S:g} s on {', '.join(down)} "
                    "(are all boards powered and within range?)"
                )
            time.sleep(0.05)
        if not reset_at:
            ready = [0.0] * n  # the links were up already: nothing was set up in this run
        return [max(ready[k], ready[k + 1]) for k in range(n - 1)]

    # ------------------------------------------------------------------------------ stream

    def _stream(self) -> None:
        total = self.config.inferences
        emulator = self.inventory.emulator
        pace = 1.0 if emulator is None else emulator.time_scale
        first = self.boards[0]
        t0 = last_progress = time.monotonic()
        last_attempt = -math.inf
        while self._finished() < total:
            now = time.monotonic()
            if self._drain():
                last_progress = now
                continue
            if self.log.injected < total and self._may_inject(now, t0, pace, last_attempt):
                i = self.log.injected
                last_attempt = now
                try:
                    first.inject(i % 65536, self.reference.input_exponent, self._values[i])
                except ConsoleCommandError as exc:
                    if exc.code != "state":
                        raise
                    # Stage 1 still holds the previous input (the firmware frees it after the
                    # inference, the simulator when it starts): wait for infer_end from now on.
                    self.free_on = "infer_end"
                    continue
                except BoardError as exc:
                    raise self._named(1, first, exc) from exc
                self.pending.append(i)
                self.log.injected += 1
                last_progress = time.monotonic()
                continue
            if now - last_progress > self.timeout_s:
                self._stalled()
            time.sleep(POLL_S)

    def _may_inject(self, now: float, t0: float, pace: float, last_attempt: float) -> bool:
        i, interval = self.log.injected, self.config.interval_s
        if interval is not None and now < t0 + i * interval * pace:
            return False
        if i == 0:
            return True
        return self.seen.get((1, self.free_on), 0) >= i or now - last_attempt > INJECT_RETRY_S

    def _finished(self) -> int:
        return min(self.log.injected, self.outputs + sum(self.log.failures.values()))

    def _drain(self) -> bool:
        """Handle queued events; True when an inference finished."""
        self._take_marks()
        before = self._finished()
        last = len(self.boards)
        for k, console in enumerate(self.boards, start=1):
            for event in console.pop_events():
                if event.name == "error":
                    what = event.fields.get("what", "")
                    if what in ("send_failures", "inference_errors"):
                        total = to_int(event.fields.get("total"), 0)
                        grown = total - self.log.failures.get((k, what), 0)
                        if what == "send_failures" and grown > 0:
                            self.log.gave_up.setdefault(k, []).extend([event.host_time_s] * grown)
                        self.log.failures[k, what] = max(self.log.failures.get((k, what), 0), total)
                    log.info("board %s: evt error %s", console.label, event.fields)
                elif event.name == "output" and k == last:
                    self._output(console, event)
        finished = self._finished()
        if finished == before:
            return False
        stats = [counters(self._ask(k, c, "stats").fields) for k, c in enumerate(self.boards, 1)]
        # The transfers those counters include have marked their end by now: a scribe round trip
        # makes sure those marks are in.
        self._scribe_command("status")
        self._take_marks()
        sent = [
            self.seen.get((k, "tx_end"), 0) + self.log.failures.get((k, "send_failures"), 0)
            for k in range(1, len(self.boards))
        ]
        self.log.snapshots.append((stats, sent))
        return True

    def _take_marks(self) -> None:
        assert self.scribe is not None
        marks = self.scribe.pop_events("mark")
        for e in marks:
            key = (self.stage_of.get(e.fields.get("line", ""), 0), e.fields.get("mark", ""))
            self.seen[key] = self.seen.get(key, 0) + 1
        self.log.marks += marks

    def _output(self, console: Console, event: Event) -> None:
        number = to_int(event.fields.get("inference"), -1)
        while self.pending and self.pending[0] % 65536 != number:
            self.pending.popleft()  # lost on the way; its board reports the failure
        if not self.pending:
            log.warning("board %s: output of an unknown inference %s", console.label, number)
            return
        i = self.pending.popleft()
        self.outputs += 1
        expected = self.reference.output(self._values[i])
        crc = to_int(event.fields.get("crc32"), -1, base=16)
        exponent = to_int(event.fields.get("exp"), 0)
        same_exponent = exponent == self.reference.output_exponent
        if same_exponent and crc == zlib.crc32(expected.astype("<i2").tobytes()):
            self.log.outputs.exact += 1
            self.log.outputs.bad_values[i] = 0
            return
        try:
            data = console.read_output(number, to_int(event.fields.get("bytes"), 0), crc32=crc)
        except ConsoleCommandError as exc:
            if exc.code != "range":
                raise
            self.log.outputs.unverified += 1  # replaced by the next output before it could be read
            return
        board = np.frombuffer(data, dtype="<i2").astype(np.int16)
        bad = compare(board, expected) if same_exponent else max(board.size, expected.size)
        self.log.outputs.bad_values[i] = bad
        if bad:
            self.log.outputs.mismatched += 1
        else:
            self.log.outputs.within_tolerance += 1

    @property
    def _quick_s(self) -> float:
        """Reply timeout of diagnostic and best-effort commands (a stall is already late)."""
        return min(self.timeout_s, COMMAND_TIMEOUT_S)

    def _ask(
        self, stage: int, console: Console, line: str, *, timeout_s: float | None = None
    ) -> Reply:
        try:
            return console.command(line, timeout_s=timeout_s).require()
        except ConsoleCommandError:
            raise
        except BoardError as exc:
            raise self._named(stage, console, exc) from exc

    @staticmethod
    def _named(stage: int, console: Console, exc: BoardError) -> BoardError:
        """A board gone silent as a timeout naming its stage; other failures unchanged."""
        if _UNPLUGGED in str(exc):
            return exc
        return BoardError(f"timeout: stage {stage} stopped answering: {exc}")

    def _stalled(self) -> None:
        """No inference finished for ``timeout_s``: name the stage that stopped answering."""
        waiting = self.pending[0] if self.pending else self._finished()
        busy = 0
        for k, console in enumerate(self.boards, start=1):
            status = self._ask(k, console, "status", timeout_s=self._quick_s)
            if status.fields.get("busy") == "1":
                busy = k
        stage = busy or len(self.boards)
        console = self.boards[stage - 1]
        raise BoardError(
            f"timeout: stage {stage} (board {console.label} on {console.port}) gave nothing "
            f"for {self.timeout_s:g} s while inference {waiting} was in the pipeline"
        )

    def _settle(self) -> None:
        """Make sure every mark the scribe sent has arrived (its reply follows them)."""
        self.log.scribe_status = dict(self._scribe_command("status").fields)
        self._drain()

    @staticmethod
    def _try_rssi(console: Console, timeout_s: float) -> dict[str, str]:
        """A board's ``rssi`` reply fields; none from a board that does not answer."""
        try:
            return dict(console.command("rssi", timeout_s=timeout_s).require().fields)
        except BoardError:
            return {}

    def _scribe_command(self, line: str) -> Reply:
        assert self.scribe is not None
        try:
            return self.scribe.command(line).require()
        except ConsoleCommandError:
            raise
        except BoardError as exc:
            if _UNPLUGGED in str(exc):
                raise
            raise BoardError(f"timeout: the scribe stopped answering: {exc}") from exc
