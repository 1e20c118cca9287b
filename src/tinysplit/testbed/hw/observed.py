"""What one hardware run observed, and how it becomes the simulator's records.

:class:`~tinysplit.testbed.hw.session.Session` fills a :class:`RunLog` while it talks to the
boards (scribe marks, failure events, counter snapshots, RSSI readings, output checks);
:func:`build_result` turns it into a :class:`HardwareResult` as the hardware testbed's module
docstring describes (:mod:`tinysplit.testbed.hw.testbed`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tinysplit.links import TransferResult
from tinysplit.sim.energy import STATES
from tinysplit.sim.pipeline import LinkEvent, SimResult
from tinysplit.testbed.hw.power import PowerTrace, energy_by_state
from tinysplit.testbed.hw.records import (
    Paired,
    Transfer,
    collect_marks,
    pair_marks,
    state_intervals,
)
from tinysplit.testbed.hw.reference import TOLERANCE_LSB

if TYPE_CHECKING:
    from tinysplit.partition import Plan
    from tinysplit.sim.pipeline import PipelineConfig
    from tinysplit.testbed.hw.console import Event

#: Wi-Fi links are TCP streams: no application answers (``docs/protocol.md``, "Streams").
STREAM_TRANSPORTS = frozenset({"wifi"})

Counters = dict[str, int]
_Pair = tuple[Counters, Counters]


@dataclass(slots=True)
class HardwareResult(SimResult):
    """A run on boards: the simulator's records plus the output and checksum checks.

    Attributes:
        checks: output checks against the int16 reference, per-link tensor checksum failures and
            serial garbage (see :mod:`tinysplit.testbed.hw.testbed`); plain JSON values.
    """

    checks: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class OutputChecks:
    """Outputs checked against the reference so far (see the testbed module)."""

    exact: int = 0
    within_tolerance: int = 0
    mismatched: int = 0
    unverified: int = 0
    bad_values: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class RunLog:
    """What a run observed, as it came.

    Attributes:
        stages: number of boards.
        lines: stage -> scribe line.
        marks: the scribe's ``mark`` events (with their host arrival times).
        injected: inputs stage 1 accepted.
        failures: ``(stage, counter)`` -> the latest ``total`` of ``evt error`` of
            ``send_failures`` / ``inference_errors``.
        gave_up: per stage, the host arrival time of each ``send_failures`` increment.
        snapshots: every board's ``stats`` after each finished inference, with the transfers per
            link the scribe had seen end by then.
        setup_s: per link, seconds until its boards reported ``links=up``.
        rssi_start, rssi_end: every board's ``rssi`` reply at bring-up and after the run
            (empty for a board that did not answer).
        outputs: the output checks.
        scribe_status: the scribe's ``status`` after the run.
        garbage_lines: serial garbage skipped on every console.
    """

    stages: int
    lines: dict[int, int]
    marks: list[Event] = field(default_factory=list)
    injected: int = 0
    failures: dict[tuple[int, str], int] = field(default_factory=dict)
    gave_up: dict[int, list[float]] = field(default_factory=dict)
    snapshots: list[tuple[list[Counters], list[int]]] = field(default_factory=list)
    setup_s: list[float] = field(default_factory=list)
    rssi_start: list[dict[str, str]] = field(default_factory=list)
    rssi_end: list[dict[str, str]] = field(default_factory=list)
    outputs: OutputChecks = field(default_factory=OutputChecks)
    scribe_status: dict[str, str] = field(default_factory=dict)
    garbage_lines: int = 0


def build_result(
    log: RunLog,
    plan: Plan,
    config: PipelineConfig,
    *,
    finished: int,
    traces: dict[int, PowerTrace],
) -> HardwareResult:
    """The records of the first ``finished`` inferences of a run (all of them when complete).

    A run cut short keeps ``config`` with ``inferences`` = ``finished`` (at least 1).
    """
    n = log.stages
    marks, skipped = collect_marks((e.fields for e in log.marks), log.lines, n)
    sent = {k: log.failures.get((k, "send_failures"), 0) for k in range(1, n)}
    paired = pair_marks(marks, stages=n, injected=log.injected, failures=sent)
    paired = _kept(_lost_ends(log, paired), finished)
    if finished != config.inferences:
        config = replace(config, inferences=max(finished, 1))
    rssi = _rssi(log)
    counters = _link_counters(log, paired.transfers)
    links = [
        LinkEvent(
            t.inference,
            t.stage,
            plan.stages[t.stage - 1].outgoing.size_bytes,
            rssi[t.stage - 1],
            config.window,
            _transfer(t, counters, n, config),
        )
        for t in paired.transfers
    ]
    intervals = state_intervals(paired, n)
    energy = []
    if traces:
        unmeasured = dict.fromkeys(STATES, math.nan)
        energy = [
            energy_by_state(traces[k + 1], duration_s=paired.duration_s, intervals=intervals[k])
            if k + 1 in traces
            else dict(unmeasured)
            for k in range(n)
        ]
    return HardwareResult(
        config=config,
        plan=plan,
        stage_events=paired.stage_events,
        link_events=links,
        injected_s=paired.injected_s,
        duration_s=paired.duration_s,
        setup_s=list(log.setup_s) or [math.nan] * (n - 1),
        rssi_dbm=rssi,
        energy_j=energy,
        checks=_checks(log, finished, skipped),
    )


def _rssi(log: RunLog) -> list[float]:
    """Per link k -> k+1 in dBm: the sender's ``down`` RSSI, else the receiver's ``up``; read
    after the run, else (a board that failed) at bring-up; NaN without either."""
    out = []
    for k in range(log.stages - 1):
        values = [
            _dbm(source[k].get("down")) if k < len(source) else math.nan
            for source in (log.rssi_end, log.rssi_start)
        ] + [
            _dbm(source[k + 1].get("up")) if k + 1 < len(source) else math.nan
            for source in (log.rssi_end, log.rssi_start)
        ]
        out.append(next((v for v in values if not math.isnan(v)), math.nan))
    return out


def _lost_ends(log: RunLog, paired: Paired) -> Paired:
    """Paired records where each lost tensor ends when its sender gave up (an estimate).

    The firmware marks no ``tx_end`` for a tensor it gives up on; its ``evt error
    what=send_failures`` line says when. That line's host arrival time is placed on the scribe's
    clock by interpolating between the scribe marks that arrived around it (a mark and an event
    take about as long to reach the host), and kept between the transfer's ``tx_start`` and the
    sender's next ``tx_start`` (it sends the next tensor only after giving up). Emulated boards
    running as fast as possible send everything in bursts, so there the estimate only keeps
    those bounds.
    """
    anchors = sorted(
        (e.host_time_s, int(e.fields["t_ns"]) / 1e9)
        for e in log.marks
        if e.fields.get("t_ns", "").lstrip("-").isdigit()
    )
    if not anchors:
        return paired
    host = np.array([a for a, _ in anchors])
    device = np.maximum.accumulate(np.array([b for _, b in anchors]))
    ends: dict[tuple[int, int], float] = {}
    for stage, times in log.gave_up.items():
        sent = sorted((t for t in paired.transfers if t.stage == stage), key=_start)
        following = [t.start_s for t in sent[1:]] + [math.inf]
        lost = [(t, nxt) for t, nxt in zip(sent, following, strict=True) if not t.delivered]
        for (transfer, upper), when in zip(lost, times, strict=False):
            if math.isnan(transfer.end_s):
                estimate = float(np.interp(when, host, device))
                ends[transfer.inference, stage] = min(max(estimate, transfer.start_s), upper)
    if not ends:
        return paired
    transfers = [
        replace(t, end_s=ends.get((t.inference, t.stage), t.end_s)) for t in paired.transfers
    ]
    events = [
        replace(e, send_end_s=ends[e.inference, e.stage]) if (e.inference, e.stage) in ends else e
        for e in paired.stage_events
    ]
    return replace(paired, stage_events=events, transfers=transfers)


def _link_counters(log: RunLog, transfers: list[Transfer]) -> dict[tuple[int, int], _Pair]:
    """Sender and receiver counters of each transfer, by (inference, stage).

    Per link, the counter growth between two ``stats`` snapshots is shared evenly by the
    transfers whose end the scribe reported between them (a transfer's end: its ``tx_end`` or
    its sender's failure); growth while no transfer ended is carried to the next ones.
    """
    out: dict[tuple[int, int], _Pair] = {}
    for stage in range(1, log.stages):
        on_link = sorted((t for t in transfers if t.stage == stage), key=_start)
        base: _Pair = ({}, {})
        done = 0
        for j, (stats, sent) in enumerate(log.snapshots):
            last = j == len(log.snapshots) - 1
            upto = len(on_link) if last else min(sent[stage - 1], len(on_link))
            if upto <= done:
                continue
            pair = (stats[stage - 1], stats[stage])
            growth = [_minus(now, then) for now, then in zip(pair, base, strict=True)]
            for index in range(done, upto):
                share = [_share(g, upto - done, index - done) for g in growth]
                out[on_link[index].inference, stage] = (share[0], share[1])
            base, done = pair, upto
    return out


def _transfer(
    t: Transfer, counters: dict[tuple[int, int], _Pair], stages: int, config: PipelineConfig
) -> TransferResult:
    sender, receiver = counters.get((t.inference, t.stage), ({}, {}))
    frames = sender.get("tx_frames", 0)
    answers = 0  # answers the receiver got for its own sending, counted in its rx_frames
    if t.stage + 1 < stages and config.transport not in STREAM_TRANSPORTS:
        answers = -(-receiver.get("tx_frames", 0) // config.window)
    data_in = receiver.get("rx_frames", 0) - answers
    drops = max(0, frames - data_in) + receiver.get("rx_crc_errors", 0)
    drops += receiver.get("rx_malformed", 0)
    nan = math.nan
    return TransferResult(
        duration_s=t.duration_s,
        delivered=t.delivered,
        app_frames=frames,
        retransmissions=sender.get("retransmissions", 0),
        drops=drops,
        link_retries=0,
        bytes_on_air=sender.get("tx_bytes", 0),
        sender_tx_s=nan,
        sender_rx_s=nan,
        receiver_tx_s=nan,
        receiver_rx_s=nan,
        relay_tx_s=nan,
        relay_rx_s=nan,
    )


def _checks(log: RunLog, finished: int, skipped: int) -> dict[str, Any]:
    final = log.snapshots[-1][0] if log.snapshots else [{} for _ in range(log.stages)]
    outputs, scribe = log.outputs, log.scribe_status
    return {
        "outputs": {
            "exact": outputs.exact,
            "within_1_lsb": outputs.within_tolerance,
            "mismatched": outputs.mismatched,
            "unverified": outputs.unverified,
            "tolerance_lsb": TOLERANCE_LSB,
        },
        "bad_values": [outputs.bad_values.get(i) for i in range(finished)],
        "links": [  # the receiving board's counters of the run
            {
                "link": f"{k}->{k + 1}",
                "tensor_crc_errors": final[k].get("tensor_crc_errors", 0),
                "rx_crc_errors": final[k].get("rx_crc_errors", 0),
            }
            for k in range(1, log.stages)
        ],
        "serial_garbage_lines": log.garbage_lines,
        "scribe": {
            "marks_skipped": skipped,
            "overflows": to_int(scribe.get("overflows"), 0),
            "glitches": sum(to_int(v, 0) for key, v in scribe.items() if key.endswith("_glitches")),
        },
    }


def _kept(paired: Paired, finished: int) -> Paired:
    """``paired`` restricted to the first ``finished`` inferences (a run cut short)."""
    if finished >= len(paired.injected_s):
        return paired
    events = [e for e in paired.stage_events if e.inference < finished]
    transfers = [t for t in paired.transfers if t.inference < finished]
    times = [
        v
        for e in events
        for v in (
            e.receive_start_s,
            e.receive_end_s,
            e.inference_start_s,
            e.inference_end_s,
            e.send_start_s,
            e.send_end_s,
        )
        if not math.isnan(v)
    ]
    return Paired(events, transfers, paired.injected_s[:finished], max(times, default=0.0))


def _start(transfer: Transfer) -> float:
    return transfer.start_s


def _minus(now: Counters, then: Counters) -> Counters:
    return {key: value - then.get(key, 0) for key, value in now.items()}


def _share(growth: Counters, parts: int, index: int) -> Counters:
    """Part ``index`` of every counter split into ``parts`` integers (earlier parts get the
    remainder), so the parts add up to the growth."""
    out: Counters = {}
    for key, total in growth.items():
        base, rest = divmod(total, parts)
        out[key] = base + (1 if index < rest else 0)
    return out


def counters(fields: dict[str, str]) -> Counters:
    """The integer values of a ``stats`` reply."""
    out: Counters = {}
    for key, value in fields.items():
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def to_int(text: str | None, default: int, *, base: int = 10) -> int:
    """``text`` as an integer, ``default`` when missing or not a number."""
    try:
        return int(text, base) if text is not None else default
    except ValueError:
        return default


def _dbm(text: str | None) -> float:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan
