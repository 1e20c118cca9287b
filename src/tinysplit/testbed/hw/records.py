"""From scribe marks to the simulator's records: which mark belongs to which inference.

The scribe's ``evt mark line=<n> mark=<name> t_ns=<ns>`` lines carry no inference number (the
GPIO pulse only names the mark), so the host pairs them. A pipeline keeps the order of its
inferences, so on each stage the k-th ``infer_start`` is the k-th inference that reached it; what
has to be worked out is which transfers reached the next stage:

* Stage 1 runs every injected inference, in order.
* Each ``tx_start`` on stage s starts the transfer of the next inference stage s computed. A
  transfer is **delivered** when stage s+1 marks ``rx_end`` for it: the next ``rx_end`` of stage
  s+1 at or after the transfer's start. A board starts sending a tensor only once it is done with
  the previous one, and the receiver completes a tensor before it answers the answer that ends the
  send, so that ``rx_end`` falls before the next ``tx_start``; when it falls after it and the
  sender reported a failure (``send_failures``) still unaccounted for, the transfer is the failed
  one instead. (Over a TCP stream the sender may be done before the receiver: without reported
  failures every ``rx_end`` is taken in order.)
* A transfer's ``tx_end`` is the first one between its ``tx_start`` and the next; a failed
  transfer may have none (the firmware marks none; the emulator, like the simulator, does).
  ``rx_start`` of a delivered transfer is the last one from its start to before its ``rx_end``
  (a paper-mode tensor abandoned after a gap leaves an ``rx_start`` of its own, and the next
  tensor's ``rx_start`` can coincide with this one's ``rx_end``).

Stage 1's ``rx_start`` / ``rx_end`` (the input handed over the console) are not radio receptions:
as in the simulator they stay NaN in the stage records, and ``rx_end`` gives the injection time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tinysplit.sim.pipeline import StageEvent

#: Scribe mark names in code order (``firmware/scribe/README.md``).
MARKS = ("rx_start", "rx_end", "infer_start", "infer_end", "tx_start", "tx_end")
NAN = math.nan

#: Mark times by stage, then by mark name, in seconds since the scribe's start, sorted.
Marks = dict[int, dict[str, list[float]]]


@dataclass(frozen=True, slots=True)
class Transfer:
    """One tensor sent from ``stage`` to ``stage + 1``, as the marks show it (seconds)."""

    inference: int
    stage: int
    start_s: float
    end_s: float
    delivered: bool
    receive_start_s: float = NAN
    receive_end_s: float = NAN

    @property
    def duration_s(self) -> float:
        """Send start to the receiver's ``rx_end`` (delivered) or to the sender's ``tx_end``."""
        end = self.receive_end_s if self.delivered else self.end_s
        return end - self.start_s


@dataclass(frozen=True, slots=True)
class Paired:
    """The records paired from one run's marks."""

    stage_events: list[StageEvent]
    transfers: list[Transfer]
    injected_s: list[float]
    duration_s: float


def collect_marks(
    events: Iterable[Mapping[str, str]], lines: Mapping[int, int], stages: int
) -> tuple[Marks, int]:
    """Sort scribe ``mark`` events (their fields) into :data:`Marks` by stage.

    Args:
        events: the ``fields`` of ``evt mark`` lines.
        lines: stage -> scribe line.
        stages: number of stages.

    Returns:
        The marks and the number of events skipped (unknown line or mark, bad time).
    """
    stage_of = {line: stage for stage, line in lines.items()}
    marks: Marks = {s: {m: [] for m in MARKS} for s in range(1, stages + 1)}
    skipped = 0
    for fields in events:
        try:
            stage = stage_of[int(fields["line"])]
            marks[stage][fields["mark"]].append(int(fields["t_ns"]) / 1e9)
        except (KeyError, ValueError):
            skipped += 1
    for per_stage in marks.values():
        for times in per_stage.values():
            times.sort()
    return marks, skipped


def pair_marks(marks: Marks, *, stages: int, injected: int, failures: Mapping[int, int]) -> Paired:
    """Pair the marks of a run with its inferences (see the module docstring).

    Args:
        marks: mark times by stage and name.
        stages: number of stages.
        injected: inferences injected into stage 1 (numbered 0..injected-1).
        failures: per sending stage, the transfers its board reported as failed.

    Returns:
        One :class:`StageEvent` per inference and stage (NaN where nothing happened), the
        transfers in the order they ended, the injection times and the time of the last mark.
    """
    fields: dict[tuple[int, int], dict[str, float]] = {
        (i, s): {} for i in range(injected) for s in range(1, stages + 1)
    }
    transfers: list[Transfer] = []
    first = marks.get(1, {})
    injected_s = [_at(first.get("rx_end", []), j) for j in range(injected)]
    starts = first.get("infer_start", [])
    injected_s = [t if not math.isnan(t) else _at(starts, j) for j, t in enumerate(injected_s)]
    sequence = list(range(injected))
    for s in range(1, stages + 1):
        m = marks.get(s, {})
        for j, i in enumerate(sequence):
            fields[i, s]["inference_start_s"] = _at(m.get("infer_start", []), j)
            fields[i, s]["inference_end_s"] = _at(m.get("infer_end", []), j)
        if s == stages:
            break
        sent, sequence = _link(s, sequence, m, marks.get(s + 1, {}), failures.get(s, 0))
        for t in sent:
            fields[t.inference, s].update(send_start_s=t.start_s, send_end_s=t.end_s)
            if t.delivered:
                fields[t.inference, s + 1].update(
                    receive_start_s=t.receive_start_s, receive_end_s=t.receive_end_s
                )
        transfers += sent
    transfers.sort(key=lambda t: (_finished(t), t.stage))
    every = [t for per_stage in marks.values() for times in per_stage.values() for t in times]
    return Paired(
        stage_events=[StageEvent(i, s, board=s, **f) for (i, s), f in sorted(fields.items())],
        transfers=transfers,
        injected_s=injected_s,
        duration_s=max(every, default=0.0),
    )


def _link(
    stage: int,
    sequence: Sequence[int],
    sender: Mapping[str, list[float]],
    receiver: Mapping[str, list[float]],
    failures: int,
) -> tuple[list[Transfer], list[int]]:
    """The transfers on link ``stage`` -> ``stage + 1`` and the inferences that reached it."""
    starts, ends = sender.get("tx_start", []), sender.get("tx_end", [])
    rx_starts, rx_ends = receiver.get("rx_start", []), receiver.get("rx_end", [])
    sent: list[Transfer] = []
    reached: list[int] = []
    e = r = 0
    for j, inference in enumerate(sequence[: len(starts)]):
        start = starts[j]
        following = starts[j + 1] if j + 1 < len(starts) else math.inf
        while e < len(ends) and ends[e] < start:
            e += 1
        end = NAN
        if e < len(ends) and ends[e] <= following:
            end = ends[e]
            e += 1
        while r < len(rx_ends) and rx_ends[r] < start:
            r += 1  # an rx_end before the send began belongs to nothing: skip it
        receive_end = rx_ends[r] if r < len(rx_ends) else None
        late = receive_end is not None and receive_end > following
        if receive_end is None or (late and failures > 0):
            failures = max(0, failures - 1)
            sent.append(Transfer(inference, stage, start, end, delivered=False))
            continue
        r += 1
        k = bisect.bisect_left(rx_starts, receive_end) - 1  # the next tensor may start then
        receive_start = rx_starts[k] if k >= 0 and rx_starts[k] >= start else NAN
        sent.append(Transfer(inference, stage, start, end, True, receive_start, receive_end))
        reached.append(inference)
    return sent, reached


def state_intervals(paired: Paired, stages: int) -> list[dict[str, list[tuple[float, float]]]]:
    """Per stage (index 0 = stage 1), when the board computed, sent and received (seconds).

    ``inference``: ``infer_start..infer_end``; ``radio_tx``: the sender's ``tx_start..tx_end``
    (to the receiver's ``rx_end`` when ``tx_end`` is missing); ``radio_rx``: the receiver's
    ``rx_start..rx_end``. Intervals with a missing end are left out.
    """
    out: list[dict[str, list[tuple[float, float]]]] = [
        {"inference": [], "radio_tx": [], "radio_rx": []} for _ in range(stages)
    ]
    for e in paired.stage_events:
        if not math.isnan(e.inference_start_s) and not math.isnan(e.inference_end_s):
            out[e.stage - 1]["inference"].append((e.inference_start_s, e.inference_end_s))
    for t in paired.transfers:
        tx_end = t.end_s if not math.isnan(t.end_s) else t.receive_end_s
        if not math.isnan(tx_end):
            out[t.stage - 1]["radio_tx"].append((t.start_s, tx_end))
        if t.delivered and not math.isnan(t.receive_start_s):
            out[t.stage]["radio_rx"].append((t.receive_start_s, t.receive_end_s))
    return out


def _at(times: Sequence[float], index: int) -> float:
    return times[index] if index < len(times) else NAN


def _finished(transfer: Transfer) -> float:
    """When the sender was done with a transfer (its ``tx_end``, else the ``rx_end``)."""
    for value in (transfer.end_s, transfer.receive_end_s):
        if not math.isnan(value):
            return value
    return math.inf
