"""The emulated pipeline: boards, scribe and the simulated timeline they replay.

Each input injected into stage 1 releases the next simulated inference of the :class:`Timeline`:
its steps (scribe marks, board marks and counters, the last stage's output, failures) are queued
in simulated-time order and emitted when due. With ``time_scale`` 0 a step is due at once; with
``s > 0`` a step at simulated time ``t`` is due ``t * s`` wall seconds after the run's first
input (or at once if the host injected late), so one simulated second lasts ``s`` wall seconds.
Released steps come out in simulated order: a step waits for every earlier one, and the output
step waits for its real output (computed on a worker thread by :mod:`.reference`). At
``time_scale`` 0 an inference's steps come out as soon as it is released, so the next inference,
released later, can carry earlier times than steps already printed (hosts sort marks by
``t_ns``, as the scribe's README says). Power samples are held back until they are final: up to
the injection time of the next simulated input (once every simulated input is in, up to the end
of the run; the scribe's ``stop`` flushes them up to the end of the released work).

Runs. The simulation's time zero is the scribe's ``start``; a new run (simulated time and
inference numbering back to zero, pending steps dropped) also starts when stage 1 goes from idle
to running and when a board reboots. The timeline is simulated for the board settings in force
(stage 1's ``mode`` and ``window``); more inputs than the configuration's ``inferences`` extend it
by simulating twice as many (same seed).

Boards that are not running when a tensor reaches them ignore it (``rx_ignored``) and the sender
fails the tensor, as real boards would; ``stop`` drops the board's tensors in flight. Links are up
when every board runs the stage the inventory gives it in a pipeline as long as the plan, after
the link models' connection time (times ``time_scale``) since the board booted.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from tinysplit.errors import TinysplitError
from tinysplit.links import LinkConditions, Mode
from tinysplit.model.quantize import QuantizedModel
from tinysplit.partition import Plan
from tinysplit.protocol.frames import CTRL_TOKEN_BYTES, HEADER_BYTES
from tinysplit.sim.pipeline import PipelineConfig
from tinysplit.testbed.hw.emulator import reference
from tinysplit.testbed.hw.emulator.boards import EmulatedBoard
from tinysplit.testbed.hw.emulator.lineproto import CommandError
from tinysplit.testbed.hw.emulator.scribe import POWER_PERIOD_MS, EmulatedScribe
from tinysplit.testbed.hw.emulator.timeline import PowerTrack, Step, StepKind, Timeline

#: Real outputs kept per process, by input (a host that cycles through a few inputs reuses them).
OUTPUT_CACHE = 64


@dataclass(slots=True)
class _Pending:
    inference: int
    due: float
    step: Step


class EmulatedPipeline:
    """Coordinates the boards and scribe of one emulator process (the boards' :class:`BoardHost`).

    Args:
        plan: the pipeline's stages.
        config: the run configuration (transport, link conditions, seed, inferences).
        qmodel: the quantized model the last stage runs.
        time_scale: wall seconds per simulated second (0: as fast as possible).
        seed: seed of the emulator's own draws (ping round trips).
        wake: called from the worker thread when an output is ready (wakes the I/O loop).
        supply_v: the boards' supply voltage for power samples.
        clock: the wall clock (seconds, monotonic).
    """

    def __init__(
        self,
        plan: Plan,
        config: PipelineConfig,
        qmodel: QuantizedModel,
        *,
        time_scale: float,
        seed: int,
        wake: Callable[[], None],
        supply_v: float = 3.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan, self.config, self.qmodel = plan, config, qmodel
        self.time_scale, self.seed, self.supply_v = time_scale, seed, supply_v
        self.clock, self._wake = clock, wake
        self.boards: list[EmulatedBoard] = []  # in inventory stage order
        self.scribe: EmulatedScribe | None = None
        self.scribe_lines: dict[int, int] = {}
        self.timeline = Timeline(plan, config)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-output")
        self._outputs: OrderedDict[tuple[int, bytes], reference.Output] = OrderedDict()
        self._up_at: dict[str, float] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.new_run()

    def close(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- runs ------------------------------------------------------------------------------

    def new_run(self) -> None:
        """Simulated time and inference numbering restart at zero; pending steps are dropped."""
        self._cursor = 0
        self._wall_zero: float | None = None
        self._pending: list[tuple[tuple[float, int, int, int], int, _Pending]] = []
        self._futures: dict[int, Future[reference.Output]] = {}
        self._keys: dict[int, tuple[int, bytes]] = {}
        self._host_numbers: dict[int, int] = {}
        self.input_busy = False
        self.sim_now_s = 0.0
        self._released_end_s = 0.0
        self._next_sample = 1
        self._power = PowerTrack(self.timeline.power, self.timeline.stages)
        for board in self.boards:
            board.inflight = 0
            board.new_run()

    def _run_config(self) -> PipelineConfig:
        """The configuration with stage 1's running protocol mode and window."""
        first = self.boards[0].settings if self.boards else None
        if first is None:
            return self.config
        return replace(self.config, mode=Mode(first.mode), window=first.window)

    def _current_timeline(self) -> Timeline:
        config = self._run_config()
        t = self.timeline
        if (t.config.mode, t.config.window) != (config.mode, config.window):
            self.timeline = Timeline(self.plan, replace(config, inferences=t.inferences), t.link)
        return self.timeline

    # ---- BoardHost -------------------------------------------------------------------------

    def booted(self, board: EmulatedBoard) -> None:
        """Note the boot time of ``board``: its links come up after the connection time."""
        stage = self.boards.index(board) + 1
        setup = [
            s for k, s in enumerate(self.timeline.result.setup_s, 1) if k in (stage - 1, stage)
        ]
        self._up_at[board.info.name] = self.clock() + max(setup, default=0.0) * self.time_scale

    def links_up(self, board: EmulatedBoard) -> bool:
        """Every board runs its inventory stage of this plan, and the connection time passed."""
        n = len(self.plan.stages)
        consistent = all(
            b.settings.stage == k and b.settings.stages == n for k, b in enumerate(self.boards, 1)
        )
        return consistent and self.clock() >= self._up_at.get(board.info.name, 0.0)

    def inject(self, board: EmulatedBoard, inference: int, exponent: int, data: bytes) -> None:
        """Release the next simulated inference for an input handed to stage 1."""
        if self.input_busy:
            raise CommandError("state", "previous input not consumed yet; inject again")
        try:
            timeline = self._current_timeline()
            if self._cursor >= timeline.inferences:
                self.timeline = timeline = timeline.extended(2 * timeline.inferences)
        except TinysplitError as exc:
            raise CommandError("io", f"simulation failed: {exc}") from None
        i, self._cursor = self._cursor, self._cursor + 1
        now = self.clock()
        if self._wall_zero is None:
            self._wall_zero = now - timeline.injected_s(i) * self.time_scale
        self._host_numbers[i] = inference
        self.input_busy = True
        requantized = int(exponent != board.info.in_exp)
        board.add_counters({"tensors_in": 1, "requantized": requantized})
        board.inflight += 1
        t_in = timeline.injected_s(i)
        board.mark("rx_start", inference, t_in)
        board.mark("rx_end", inference, t_in)
        self._keys[i] = (exponent, data)
        self._futures[i] = self._compute(exponent, data)
        steps = timeline.steps(i)
        self._released_end_s = max(self._released_end_s, *(step.t_s for step in steps))
        for step in steps:
            due = max(now, self._wall_zero + step.t_s * self.time_scale)
            heapq.heappush(self._pending, (step.order(), next(self._seq), _Pending(i, due, step)))
        self._power.add(timeline.activities(i))

    def rssi_dbm(self, board: EmulatedBoard, link: str) -> int | None:
        """The simulated RSSI of the link, once the links are up."""
        if not self.links_up(board):
            return None
        k = board.stage - 1 if link == "up" else board.stage
        return round(self._current_timeline().result.rssi_dbm[k - 1])

    def ping(self, board: EmulatedBoard, link: str, token: int) -> None:
        """PING on a link: the PONG comes after twice the link model's one-frame transfer time."""
        timeline = self._current_timeline()
        k = board.stage - 1 if link == "up" else board.stage
        conditions = LinkConditions(rssi_dbm=timeline.result.rssi_dbm[k - 1], window=1)
        rng = np.random.default_rng([self.seed, board.stage, token])
        rtt_s = 2.0 * timeline.link.transfer(CTRL_TOKEN_BYTES, conditions, rng).duration_s
        peer = self.boards[k - 1] if link == "up" else self.boards[k]
        ctrl = {"rx_frames": 1, "rx_bytes": HEADER_BYTES + CTRL_TOKEN_BYTES}
        peer.add_counters(ctrl)

        def pong() -> None:
            board.add_counters(ctrl)
            board.pong(link, max(1, round(rtt_s * 1e6)))

        self._timer(self.clock() + rtt_s * self.time_scale, pong)

    def started(self, board: EmulatedBoard) -> None:
        """Stage 1 going from idle to running starts a new run."""
        if board.stage == 1:
            self.new_run()

    def stopped(self, board: EmulatedBoard) -> None:
        """Drop the tensors ``board`` holds and everything they would have caused downstream."""
        k = board.stage
        held = {p.inference for _, _, p in self._pending if p.step.stage == k}
        self._drop(lambda p: p.inference in held and p.step.stage >= k)
        board.inflight = 0
        if k == 1:
            self.input_busy = False

    def rebooted(self, board: EmulatedBoard) -> None:
        """A board restarted: its links reconnect and the run starts over."""
        self.booted(board)
        self.new_run()

    # ---- scribe ----------------------------------------------------------------------------

    def scribe_now_ns(self) -> int:
        """The scribe's ``t_ns``: simulated time of the latest emitted step or sample."""
        return round(self.sim_now_s * 1e9)

    def flush_power(self) -> None:
        """The run is over (scribe ``stop``): sample up to the end of the released work."""
        end = max(self._released_end_s, self.sim_now_s)
        if self._pending:
            end = min(end, self._pending[0][2].step.t_s)
        self._sample_until(end)

    # ---- the I/O loop's side ---------------------------------------------------------------

    def _timer(self, due: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), action))

    def _remember(self, key: tuple[int, bytes], output: reference.Output) -> None:
        self._outputs[key] = output
        self._outputs.move_to_end(key)
        while len(self._outputs) > OUTPUT_CACHE:
            self._outputs.popitem(last=False)

    def _compute(self, exponent: int, data: bytes) -> Future[reference.Output]:
        key = (exponent, data)
        cached = self._outputs.get(key)
        if cached is not None:
            self._outputs.move_to_end(key)
            done: Future[reference.Output] = Future()
            done.set_result(cached)
            return done

        def work() -> reference.Output:
            return reference.pipeline_output(self.qmodel, data, exponent)

        def keep(f: Future[reference.Output]) -> None:
            self._wake()

        future = self._pool.submit(work)
        future.add_done_callback(keep)
        return future

    def _drop(self, condition: Callable[[_Pending], bool]) -> None:
        kept = [e for e in self._pending if not condition(e[2])]
        if len(kept) != len(self._pending):
            heapq.heapify(kept)
            self._pending = kept

    def next_deadline(self) -> float:
        """Wall time the loop must wake at (``math.inf``: only input or a finished output)."""
        due = self._timers[0][0] if self._timers else math.inf
        sample_s = self._next_sample * POWER_PERIOD_MS / 1000.0
        if self._wall_zero is not None and self.time_scale > 0 and sample_s <= self._frontier_s():
            due = min(due, self._wall_zero + sample_s * self.time_scale)
        if self._pending:
            head = self._pending[0][2]
            future = self._futures.get(head.inference)
            if head.step.kind is not StepKind.OUTPUT or future is None or future.done():
                due = min(due, head.due)
        return due

    def pump(self) -> None:
        """Emit every step, timer and power sample that is due now."""
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()
        while self._pending:
            head = self._pending[0][2]
            if head.due > now:
                break
            future = self._futures.get(head.inference)
            if head.step.kind is StepKind.OUTPUT and future is not None and not future.done():
                break
            heapq.heappop(self._pending)
            self._sample_until(min(head.step.t_s, self._settled_s(now)))
            self._emit(head)
        self._sample_until(self._settled_s(now))

    def _settled_s(self, now: float) -> float:
        """Simulated time up to which power samples are final and due at wall time ``now``."""
        frontier = self._frontier_s()
        if self._wall_zero is not None and self.time_scale > 0:
            frontier = min(frontier, (now - self._wall_zero) / self.time_scale)
        return frontier

    def _frontier_s(self) -> float:
        """Simulated time up to which no inference still to come can change the currents: the
        next input's injection time (the end of the run once every simulated input is in), and
        no later than the next step still to be emitted."""
        if self._wall_zero is None:
            return 0.0
        t = self.timeline
        frontier = (
            t.injected_s(self._cursor) if self._cursor < t.inferences else t.result.duration_s
        )
        if self._pending:
            frontier = min(frontier, self._pending[0][2].step.t_s)
        return frontier

    def _sample_until(self, t_s: float) -> None:
        period = POWER_PERIOD_MS / 1000.0
        while self._next_sample * period <= t_s:
            t = self._next_sample * period
            self._next_sample += 1
            self.sim_now_s = max(self.sim_now_s, t)
            if self.scribe is None:
                continue
            for stage in range(1, len(self.boards) + 1):
                current = self._power.current_ma(stage, t)
                self.scribe.sample(stage, t, current, self.supply_v)

    def _emit(self, item: _Pending) -> None:
        step, i = item.step, item.inference
        number = self._host_numbers[i]
        board = self.boards[step.stage - 1]
        self.sim_now_s = max(self.sim_now_s, step.t_s)
        if step.begins and not (board.running and self.links_up(board)):
            self._ignored(i, step)
            return
        if step.begins:
            board.inflight += 1
        if step.kind is StepKind.MARK:
            if self.scribe is not None and step.stage in self.scribe_lines:
                self.scribe.mark(self.scribe_lines[step.stage], step.mark, step.t_s)
            if step.board_mark:
                board.mark(step.mark, number, step.t_s)
            if step.stage == 1 and step.mark == "infer_start":
                self.input_busy = False
        board.add_counters(dict(step.counters))
        if step.kind is StepKind.OUTPUT:
            output = self._futures.pop(i).result()
            self._remember(self._keys.pop(i), output)
            board.produce(number, output.exponent, output.data)
        if step.ends:
            board.inflight = max(0, board.inflight - 1)

    def _ignored(self, i: int, step: Step) -> None:
        """A tensor reached a board that is idle: it is ignored and the sender fails it."""
        k = step.stage
        self.boards[k - 1].rx_ignored += 1
        self._drop(
            lambda p: (
                p.inference == i
                and (p.step.stage >= k or (p.step.stage == k - 1 and p.step.mark == "tx_end"))
            )
        )
        self._futures.pop(i, None)
        self._keys.pop(i, None)
        sender = self.boards[k - 2]
        sender.add_counters({"send_failures": 1, "timeouts": 1})
        sender.inflight = max(0, sender.inflight - 1)
