"""The simulated run the emulated boards replay: per-inference steps, counters and currents.

:class:`Timeline` runs :func:`tinysplit.sim.simulate` once for the whole configuration (so the
emulation is deterministic for a config and seed) and turns its records into what boards would
show:

* **Steps** of one inference (:meth:`Timeline.steps`), in simulated time: the six scribe marks per
  stage (``rx_start`` .. ``tx_end``) at the times of the simulator's :class:`StageEvent`; stage 1
  has no receive in the simulator, so its ``rx_start`` / ``rx_end`` are the injection time
  (``SimResult.injected_s``), when the firmware marks an injected input. The last stage's output
  follows its ``infer_end``. A tensor lost on a link (paper mode) has no ``tx_end`` and no receive
  marks: the sender counts a send failure (and a timeout, as the paper-mode sender does) and the
  receiver a dropped partial tensor, both at the simulated end of the transfer.
* **Counters** (the ``stats`` command), carried by the steps and derived from each
  :class:`LinkEvent`: ``tx_frames`` = the link's application frames (retransmissions included),
  ``retransmissions``, ``send_failures`` exactly; ``tx_bytes`` = those frames' sizes (header or
  timer id included, retransmitted frames counted as full frames); the receiver's ``rx_frames`` /
  ``rx_bytes`` = the frames that were not dropped; the sender's ``rx_frames`` / ``rx_bytes`` = the
  answers, one per ``window`` received frames (20 B ACKs in reliable mode, 8 B responses in paper
  mode, none over the Wi-Fi TCP stream). The link models count no CRC errors or duplicates that
  reach the application, so those counters stay 0.
* **Currents** (:class:`PowerTrack`) for the scribe's power samples: the board's idle current
  plus the extra current of inference while it computes and, during a transfer, the extra current
  of its radio weighted by the share of the transfer the radio spends transmitting or receiving
  (the link record's ``sender_tx_s`` ...). That is :class:`tinysplit.sim.energy.PowerModel`'s
  accounting, so the samples integrate to the simulator's energy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum

from tinysplit.links import LinkModel, make_link
from tinysplit.partition import Plan
from tinysplit.protocol.frames import (
    ACK_BITMAP_BYTES,
    HEADER_BYTES,
    PAPER_TIMER_ID_BYTES,
    TENSOR_CRC_BYTES,
    data_payload_bytes,
    frames_for_tensor,
)
from tinysplit.sim.energy import PowerModel
from tinysplit.sim.pipeline import LinkEvent, PipelineConfig, SimResult, StageEvent, simulate

#: Scribe marks in code order (pulse widths 1..6 units).
MARKS = ("rx_start", "rx_end", "infer_start", "infer_end", "tx_start", "tx_end")
#: Transports whose link is an ordered byte stream: no application answers.
STREAM_TRANSPORTS = frozenset({"wifi"})


class StepKind(IntEnum):
    """What a step does (its value orders steps of one stage at the same instant)."""

    MARK = 0
    RX_DROPPED = 1
    SEND_FAILED = 2
    OUTPUT = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One thing that happens on one board during one inference.

    Attributes:
        t_s: simulated time in seconds since the run's zero.
        stage: 1-based stage of the board.
        kind: a scribe mark, the last stage's output, or a failure.
        mark: the mark's name (``MARKS``) for ``kind == MARK``.
        counters: ``stats`` counters of the board that grow by these amounts.
        board_mark: whether the board itself prints the mark (``marks on``); stage 1 prints its
            receive marks when the inject ends, before this step is due.
        begins: the board starts holding this inference (``status busy``).
        ends: the board is done with this inference.
    """

    t_s: float
    stage: int
    kind: StepKind
    mark: str = ""
    counters: Mapping[str, int] = field(default_factory=dict)
    board_mark: bool = True
    begins: bool = False
    ends: bool = False

    def order(self) -> tuple[float, int, int, int]:
        """Sort key: time, then stage, then mark code (failures after the marks they follow)."""
        code = MARKS.index(self.mark) if self.kind is StepKind.MARK else 6 + int(self.kind)
        return (self.t_s, self.stage, code, int(self.kind))


@dataclass(frozen=True, slots=True)
class Activity:
    """Extra current ``extra_ma`` drawn by board ``stage`` from ``start_s`` to ``end_s``."""

    stage: int
    start_s: float
    end_s: float
    extra_ma: float


class Timeline:
    """One simulated run of ``plan`` under ``config``, ready to replay inference by inference.

    Args:
        plan: the pipeline's stages.
        config: the run (transport, mode, window, inferences, seed, link conditions).
        link: the link model (``make_link(config.transport, config.link_profile)`` when None).

    Raises:
        ConfigError: what :func:`tinysplit.sim.simulate` raises for a bad configuration.
    """

    def __init__(self, plan: Plan, config: PipelineConfig, link: LinkModel | None = None) -> None:
        self.plan = plan
        self.config = config
        self.link = link or make_link(config.transport, config.link_profile)
        self.result: SimResult = simulate(plan, config, link=self.link)
        self.power = PowerModel.for_transport(config.transport, dual_core=config.dual_core)
        self._events = {(e.inference, e.stage): e for e in self.result.stage_events}
        self._links = {(e.inference, e.stage): e for e in self.result.link_events}

    @property
    def inferences(self) -> int:
        """Number of simulated inferences."""
        return self.config.inferences

    @property
    def stages(self) -> int:
        """Number of boards."""
        return len(self.plan.stages)

    def extended(self, inferences: int) -> Timeline:
        """The same run simulated with ``inferences`` inputs (same seed and link model)."""
        return Timeline(self.plan, replace(self.config, inferences=inferences), self.link)

    def injected_s(self, inference: int) -> float:
        """Simulated time the input of ``inference`` entered board 1."""
        return self.result.injected_s[inference]

    def stage_event(self, inference: int, stage: int) -> StageEvent:
        """The simulator's record of ``inference`` on board ``stage``."""
        return self._events[inference, stage]

    def steps(self, inference: int) -> list[Step]:
        """Everything that happens during ``inference``, sorted by :meth:`Step.order`."""
        steps: list[Step] = []
        last = self.stages
        for stage in range(1, last + 1):
            e = self._events[inference, stage]
            if stage == 1:
                t_in = self.injected_s(inference)
                steps += [
                    Step(t_s=t_in, stage=1, kind=StepKind.MARK, mark=m, board_mark=False)
                    for m in MARKS[:2]
                ]
            elif not math.isnan(e.receive_start_s):
                rx = self._receiver_counters(self._links[inference, stage - 1])
                steps.append(self._mark(e.receive_start_s, stage, "rx_start", begins=True))
                steps.append(self._mark(e.receive_end_s, stage, "rx_end", counters=rx))
            if math.isnan(e.inference_start_s):
                continue
            steps.append(self._mark(e.inference_start_s, stage, "infer_start"))
            steps.append(self._mark(e.inference_end_s, stage, "infer_end"))
            if stage == last:
                steps.append(
                    Step(
                        t_s=e.inference_end_s,
                        stage=stage,
                        kind=StepKind.OUTPUT,
                        counters={"tensors_out": 1},
                        ends=True,
                    )
                )
                continue
            if math.isnan(e.send_start_s):
                continue
            link = self._links[inference, stage]
            steps.append(self._mark(e.send_start_s, stage, "tx_start"))
            sender = self._sender_counters(link)
            if link.result.delivered:
                steps.append(self._mark(e.send_end_s, stage, "tx_end", counters=sender, ends=True))
            else:
                steps.append(
                    Step(
                        t_s=e.send_end_s,
                        stage=stage,
                        kind=StepKind.SEND_FAILED,
                        counters=sender,
                        ends=True,
                    )
                )
                steps.append(
                    Step(
                        t_s=e.send_end_s,
                        stage=stage + 1,
                        kind=StepKind.RX_DROPPED,
                        counters=self._receiver_counters(link),
                    )
                )
        return sorted(steps, key=Step.order)

    @staticmethod
    def _mark(
        t_s: float,
        stage: int,
        mark: str,
        *,
        counters: Mapping[str, int] | None = None,
        begins: bool = False,
        ends: bool = False,
    ) -> Step:
        return Step(t_s=t_s, stage=stage, kind=StepKind.MARK, mark=mark,
                    counters=counters or {}, begins=begins, ends=ends)  # fmt: skip

    # ---- counters --------------------------------------------------------------------------

    def _frame_overhead(self) -> int:
        return HEADER_BYTES if self.config.mode.value == "reliable" else PAPER_TIMER_ID_BYTES

    def data_bytes(self, tensor_bytes: int, frames: int) -> int:
        """Bytes of the first ``frames`` DATA frames of a tensor (frames past the tensor's own
        count are retransmissions and count as full frames)."""
        mode = self.config.mode.value
        per = data_payload_bytes(self.link.frame_bytes, mode)
        clean = frames_for_tensor(tensor_bytes, self.link.frame_bytes, mode)
        stream = tensor_bytes + (TENSOR_CRC_BYTES if mode == "reliable" else 0)
        full = per + self._frame_overhead()
        whole = stream + clean * self._frame_overhead()
        if frames < clean:
            return frames * full
        return whole + (frames - clean) * full

    def answers(self, link: LinkEvent) -> tuple[int, int]:
        """Answer frames the sender received for one transfer, and their bytes."""
        if self.config.transport in STREAM_TRANSPORTS:
            return 0, 0
        received = link.result.app_frames - link.result.drops
        window = self.config.window
        count = -(-received // window) if link.result.delivered else received // window
        size = HEADER_BYTES + ACK_BITMAP_BYTES if self._frame_overhead() == HEADER_BYTES else 8
        return count, count * size

    def _sender_counters(self, link: LinkEvent) -> dict[str, int]:
        r = link.result
        answers, answer_bytes = self.answers(link)
        counters = {
            "tx_frames": r.app_frames,
            "tx_bytes": self.data_bytes(link.bytes, r.app_frames),
            "retransmissions": r.retransmissions,
            "rx_frames": answers,
            "rx_bytes": answer_bytes,
        }
        if r.delivered:
            counters["tensors_out"] = 1
        else:
            counters["send_failures"] = 1
            counters["timeouts"] = 1
        return counters

    def _receiver_counters(self, link: LinkEvent) -> dict[str, int]:
        r = link.result
        received = r.app_frames - r.drops
        full = data_payload_bytes(self.link.frame_bytes, self.config.mode.value)
        counters = {
            "rx_frames": received,
            "rx_bytes": max(
                0,
                self.data_bytes(link.bytes, r.app_frames)
                - r.drops * (full + self._frame_overhead()),
            ),
        }
        counters["tensors_in" if r.delivered else "rx_dropped_tensors"] = 1
        return counters

    # ---- currents --------------------------------------------------------------------------

    def activities(self, inference: int) -> list[Activity]:
        """Extra currents of every board during ``inference`` (see the module docstring)."""
        p = self.power
        compute_ma = p.inference_ma - p.cpu_idle_ma
        tx_ma, rx_ma = max(p.tx_ma - p.idle_ma, 0.0), max(p.rx_ma - p.idle_ma, 0.0)
        out: list[Activity] = []
        for stage in range(1, self.stages + 1):
            e = self._events[inference, stage]
            if not math.isnan(e.inference_start_s):
                out.append(Activity(stage, e.inference_start_s, e.inference_end_s, compute_ma))
            link = self._links.get((inference, stage))
            if link is None or math.isnan(e.send_start_s):
                continue
            r, start, end = link.result, e.send_start_s, e.send_end_s
            span = max(end - start, 1e-12)
            ends = [
                (stage, r.sender_tx_s, r.sender_rx_s),
                (stage + 1, r.receiver_tx_s, r.receiver_rx_s),
                (self.config.ap_board, r.relay_tx_s, r.relay_rx_s),
            ]
            for board, tx_s, rx_s in ends:
                extra = (tx_ma * tx_s + rx_ma * rx_s) / span
                if extra > 0:
                    out.append(Activity(board, start, end, extra))
        return out


@dataclass(slots=True)
class PowerTrack:
    """Current of every board at increasing sample times, from the activities released so far.

    Args:
        power: the boards' currents.
        stages: number of boards.
    """

    power: PowerModel
    stages: int
    _active: dict[int, list[Activity]] = field(default_factory=dict)

    def add(self, activities: list[Activity]) -> None:
        """Take the activities of a newly released inference."""
        for a in activities:
            self._active.setdefault(a.stage, []).append(a)

    def current_ma(self, stage: int, t_s: float) -> float:
        """Current of board ``stage`` at ``t_s`` (call with non-decreasing times)."""
        kept = [a for a in self._active.get(stage, []) if a.end_s >= t_s]
        self._active[stage] = kept
        return self.power.idle_ma + sum(a.extra_ma for a in kept if a.start_s <= t_s)
