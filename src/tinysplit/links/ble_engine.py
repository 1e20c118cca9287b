"""The BLE transfer simulation: ATT values through a buffer pool into connection events.

Time runs in microseconds from the moment the sender writes its first frame (value). Per value:

1. **Write.** The application writes value ``i`` at ``s_i``, ``app_write`` after the previous
   one. ``paper`` mode writes a window of ``n`` values back to back once the previous window's
   response is in (plus a wake-up), and if ``pool`` values are still unsent the stack drops the
   write silently (the tensor is then lost; the sender gives up ``paper_timeout`` after its last
   write). ``reliable`` mode waits instead for a free buffer (value ``i - pool`` sent) and for
   the ACK that leaves at most ``2 n`` values unacknowledged.
2. **Connection events.** Events start at anchors ``phase + k * interval`` (phase drawn per
   transfer) and may use ``budget`` of air time. If value ``i`` was queued before the previous
   one finished and the event has budget left, it follows at once; otherwise the event closed
   (the central had nothing more to send) and the value waits for the next anchor.
3. **Exchanges.** The value's PDUs go one exchange at a time (data PDU, T_IFS, the peer's PDU,
   T_IFS), failed attempts included. An exchange that does not fit the remaining budget waits
   for the next event; two consecutive failures close the event; a PDU that fails for a whole
   supervision timeout drops the connection (``paper``: the tensor is lost; ``reliable``: the
   link reconnects after ``reconnect`` and the values in flight count as retransmitted). The
   value leaves the pool, and the receiver holds it, when its last exchange succeeds.
4. **Window end.** After the ``n``-th value the receiver answers after ``response``: in
   ``paper`` mode nothing else is queued, so the response goes in the next event's first
   exchange; a ``reliable`` ACK rides in the running event when the central still has data
   there, else in the next event.

The loop visits each value once and each connection event once, with plain float arithmetic;
every random draw is made up front with numpy (one uniform per PDU for its failed exchanges, one
gamma per write, one uniform per wake-up, one phase), so a transfer of ~800 values costs a
millisecond or two and the same generator state always gives the same result.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tinysplit.links.base import TransferResult

if TYPE_CHECKING:
    from tinysplit.links.adaptive import AdaptiveWindow

#: Failed exchanges drawn beyond this many for one PDU are irrelevant (the supervision timeout
#: has long dropped the connection); the cap keeps the integers finite when PER is ~1.
_MAX_FAILURES = 1 << 40


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Everything :func:`simulate` needs for one transfer. Times in µs.

    ``full_*`` describe the PDUs of a full frame, ``last_*`` those of the tensor's last frame:
    ``*_cycles`` exchange times, ``*_fail`` failure probability of each exchange, ``*_tx`` data
    PDU air times, ``*_bytes`` bytes on air of each data PDU. ``answer_extra_*`` is what a
    response / ACK PDU costs over an empty one. The arrays repeat the same per PDU of the
    whole transfer (:func:`per_pdu`); ``value_first_pdu`` indexes each value's first PDU (and the
    end); the lines are the error-free time lines of a full and of the last value (air time
    before each exchange, then the total).
    """

    frames: int
    window: int
    paper: bool
    full_cycles: tuple[float, ...]
    full_fail: tuple[float, ...]
    full_tx: tuple[float, ...]
    full_bytes: tuple[int, ...]
    last_cycles: tuple[float, ...]
    last_fail: tuple[float, ...]
    last_tx: tuple[float, ...]
    last_bytes: tuple[int, ...]
    empty_us: float
    empty_bytes: int
    answer_extra_us: float
    answer_extra_bytes: int
    t_ifs_us: float
    interval_us: float
    budget_us: float
    pool_values: int
    write_us: float
    write_cv: float
    wake_us: float
    response_us: float
    paper_timeout_us: float
    supervision_us: float
    reconnect_us: float
    pdu_fail: np.ndarray
    cycles: np.ndarray
    pdu_tx: np.ndarray
    pdu_bytes: np.ndarray
    value_first_pdu: np.ndarray
    full_line: list[float]
    last_line: list[float]


@dataclass(slots=True)
class _Exchanges:
    """Every exchange of the transfer, failed attempts included, as per-value time lines.

    For value ``v`` the loop reads a list ``L`` and a range ``a..b``: ``L[k] - L[a]`` is the air
    time of the value's exchanges before exchange ``k`` (``L[b] - L[a]`` all of them). Error-free
    values share one static line; values with failures get their own, or, when failures are
    common, all values index one flat line built with numpy.

    Attributes:
        flat: the flat line (dense mode; empty otherwise).
        first: dense mode: index of each value's first exchange and the end (empty otherwise).
        lines: sparse mode: each value's line.
        stops: per value (None: none), sorted exchange indices where the link breaks off: after
            two consecutive failed exchanges the event closes before exchange ``stop``; a PDU
            that fails for a whole supervision timeout drops the connection before its first.
        drops: per value, connection drops at a stop (absent: the event closes).
        failures: failed exchanges per value.
        failed_tx_us: air time of the failed data PDUs per value, µs.
        failed_bytes: bytes on air of the failed data PDUs per value.
    """

    flat: Sequence[float]
    first: Sequence[int]
    lines: list[list[float]]
    stops: list[list[int] | None]
    drops: dict[int, dict[int, int]]
    failures: np.ndarray
    failed_tx_us: np.ndarray
    failed_bytes: np.ndarray


def _exchanges(plan: Plan, rng: np.random.Generator) -> _Exchanges:
    """Draw the failed exchanges of every PDU and lay the exchanges out per value.

    One uniform per PDU in transmission order; ``failures = floor(ln u / ln p)`` is geometric
    and grows with ``p`` for a fixed ``u``, so a weaker RSSI never gives fewer failures. A PDU
    failing ``r`` times closes ``r // 2`` events (two consecutive CRC errors); one failing for a
    whole supervision timeout (``r_sup`` exchanges, two per event) drops the connection
    ``r // r_sup`` times and keeps the rest.
    """
    frames, n_full = plan.frames, len(plan.full_cycles)
    lines = [plan.full_line] * (frames - 1) + [plan.last_line]
    stops: list[list[int] | None] = [None] * frames
    u = rng.random(plan.pdu_fail.size)
    hit = np.flatnonzero(u < plan.pdu_fail)
    zeros = np.zeros(frames)
    if hit.size == 0:
        return _Exchanges([], [], lines, stops, {}, zeros, zeros, zeros)
    count = np.floor(np.log(u[hit]) / np.log(np.minimum(plan.pdu_fail[hit], 1.0 - 1e-15)))
    count = np.minimum(count, _MAX_FAILURES).astype(np.int64)
    value = np.minimum(hit // n_full, frames - 1)
    failures = np.bincount(value, weights=count, minlength=frames)
    failed_tx = np.bincount(value, weights=count * plan.pdu_tx[hit], minlength=frames)
    failed_bytes = np.bincount(value, weights=count * plan.pdu_bytes[hit], minlength=frames)
    r_sup = 2 * max(1, math.ceil(plan.supervision_us / plan.interval_us))
    drops: dict[int, dict[int, int]] = {}
    many = count >= 2
    if 4 * (np.count_nonzero(value[1:] != value[:-1]) + 1) > frames:
        reps = np.ones(plan.cycles.size, np.int64)
        reps[hit] += count % r_sup
        pdu_first = np.zeros(reps.size + 1, np.int64)
        np.cumsum(reps, out=pdu_first[1:])
        flat = np.zeros(int(pdu_first[-1]) + 1)
        np.cumsum(np.repeat(plan.cycles, reps), out=flat[1:])
        for v, q, r in zip(
            value[many].tolist(), hit[many].tolist(), count[many].tolist(), strict=True
        ):
            _breaks(v, int(pdu_first[q]), r, r_sup, stops, drops)
        # array.array shares numpy's memory layout: no per-element conversion, and indexing
        # and bisect are as fast as on a list.
        first = array("q", pdu_first[plan.value_first_pdu].tobytes())
        flat_line = array("d", flat.tobytes())
        return _Exchanges(flat_line, first, lines, stops, drops, failures, failed_tx, failed_bytes)
    per_value: dict[int, dict[int, int]] = {}
    pdu = hit - value * n_full
    for v, q, c in zip(value.tolist(), pdu.tolist(), count.tolist(), strict=True):
        per_value.setdefault(v, {})[q] = c
    for v, per in per_value.items():
        cycles = plan.last_cycles if v == frames - 1 else plan.full_cycles
        line, k = [0.0], 0
        for q, c in enumerate(cycles):
            r = per.get(q, 0)
            if r >= 2:
                _breaks(v, k, r, r_sup, stops, drops)
                r %= r_sup
            for _ in range(r + 1):
                line.append(line[-1] + c)
            k += r + 1
        lines[v] = line
    return _Exchanges([], [], lines, stops, drops, failures, failed_tx, failed_bytes)


def _breaks(
    value: int,
    k0: int,
    r: int,
    r_sup: int,
    stops: list[list[int] | None],
    drops: dict[int, dict[int, int]],
) -> None:
    """Record the stops of a PDU whose first exchange is ``k0`` and which fails ``r`` times
    (PDUs are visited in transmission order, so each value's stops stay sorted)."""
    at = stops[value]
    if at is None:
        at = stops[value] = []
    if r >= r_sup:
        drops.setdefault(value, {})[k0] = r // r_sup
        at.append(k0)
    at.extend(range(k0 + 2, k0 + r % r_sup + 1, 2))


def per_pdu(frames: int, full: tuple[float, ...], last: tuple[float, ...]) -> np.ndarray:
    """A per-PDU quantity of the whole transfer from its values for one full and the last
    value (read-only)."""
    out = np.concatenate((np.tile(np.asarray(full, np.float64), frames - 1), last))
    out.setflags(write=False)
    return out


def _next_anchor(phase: float, interval: float, x: float, after: float) -> float:
    """First anchor at or after ``x`` and strictly after ``after``."""
    a = phase + math.ceil((x - phase) / interval) * interval
    if a <= after + 1e-6:
        a += interval * math.ceil((after + 1e-6 - a) / interval + 1e-12)
    return a


@dataclass(slots=True)
class _Tally:
    """Counters the result needs besides the time line."""

    events: int = 0
    responses: int = 0
    acks: int = 0
    drops: int = 0
    resent_values: int = 0
    resent_us: float = 0.0


def _feed(ctl: AdaptiveWindow, acks: list[float], fed: int, until: float, window: int) -> int:
    """Hand the controller the ACKs that arrived by ``until`` (µs); returns how many it has."""
    while fed < len(acks) and acks[fed] <= until:
        prev = acks[fed - 1] if fed > 0 else 0.0
        ctl.on_ack(window, max(0, round(acks[fed] - prev)))
        fed += 1
    return fed


def simulate(
    plan: Plan, rng: np.random.Generator, controller: AdaptiveWindow | None = None
) -> TransferResult:
    """Run one transfer of ``plan.frames`` ATT values (see the module docstring).

    With a ``controller`` (reliable mode), ``plan.window`` is the receiver's ACK cadence and the
    sender keeps at most ``controller.in_flight`` values unacknowledged, re-read before every
    write; the controller sees each ACK when it arrives and a timeout per connection drop.
    """
    frames, window, paper = plan.frames, plan.window, plan.paper
    ci, budget = plan.interval_us, plan.budget_us
    phase = float(rng.random()) * ci
    ex = _exchanges(plan, rng)
    if plan.write_cv > 0:
        shape = 1.0 / plan.write_cv**2
        writes = rng.gamma(shape, plan.write_us / shape, frames).tolist()
    else:
        rng.random(frames)  # same number of draws whatever the jitter
        writes = [plan.write_us] * frames
    wakes = (rng.random(frames) * plan.wake_us).tolist()

    flat, first, lines, stops, drops_at = ex.flat, ex.first, ex.lines, ex.stops, ex.drops
    dense = bool(first)
    never = 1 << 62
    pool, unacked = plan.pool_values, 2 * window
    fed = 0
    poll_us = 2 * plan.empty_us + plan.answer_extra_us + plan.t_ifs_us  # empty PDU, T_IFS, answer
    tally = _Tally()
    free = [0.0] * frames
    acks: list[float] = []
    t, anchor, end = 0.0, phase - ci, 0.0
    win_start = s = 0.0
    lost = dead = False
    i = 0
    while i < frames:
        # --- when the application writes value i
        if paper:
            k = i % window
            if i == 0:
                s = 0.0
            elif k == 0:
                s = win_start + wakes[i] + writes[i]
            else:
                s += writes[i]
            if k >= pool and free[i - pool] > s:
                # Pool full: the stack drops the write and the application does not notice.
                tally.drops += 1
                lost = True
                free[i] = s
                i += 1
                if k == window - 1:
                    break
                continue
        elif i > 0:
            s += writes[i]
            if i >= pool and free[i - pool] + wakes[i] > s:
                s = free[i - pool] + wakes[i]
            if controller is not None:
                fed = _feed(controller, acks, fed, s, window)
                unacked = max(controller.in_flight, window + 1)  # an ACK's worth, plus one
            if i >= unacked and acks[(i - unacked) // window] + wakes[i] > s:
                s = acks[(i - unacked) // window] + wakes[i]
        # --- the controller takes it in the running event, or at the next anchor
        if not (s <= t < end):
            anchor = _next_anchor(phase, ci, s if s > t else t, anchor)
            t, end = anchor, anchor + budget
            tally.events += 1
        line: Sequence[float]
        if dense:
            line, pos, stop = flat, first[i], first[i + 1]
        else:
            line = lines[i]
            pos, stop = 0, len(line) - 1
        at = stops[i]
        si, ns = 0, (at[0] if at else never)
        while pos < stop:
            if ns == pos:
                # A PDU failed for a whole supervision timeout: the connection is gone.
                d = drops_at[i][pos]
                if paper:
                    t += plan.supervision_us
                    dead = True
                    break
                resend = line[pos] - line[first[i] if dense else 0]
                t += d * (plan.supervision_us + plan.reconnect_us) + resend
                phase, anchor, end = t, t, t + budget
                tally.events += d
                tally.resent_values += d * min(pool, frames - i)
                tally.resent_us += d * resend
                if controller is not None:
                    for _ in range(d):
                        controller.on_timeout()
                si += 1
                ns = at[si] if at and si < len(at) else never
                continue
            lim = ns if ns < stop else stop
            room = end - t
            if line[lim] - line[pos] <= room:
                t += line[lim] - line[pos]
                pos = lim
                if pos == ns and pos not in drops_at.get(i, ()):
                    # Two consecutive CRC errors: the event closes, the PDU goes next event.
                    si += 1
                    ns = at[si] if at and si < len(at) else never
                    anchor += ci
                    t, end = anchor, anchor + budget
                    tally.events += 1
                continue
            k = bisect_right(line, line[pos] + room, pos, lim) - 1
            t += line[k] - line[pos]
            pos = k
            anchor += ci
            t, end = anchor, anchor + budget
            tally.events += 1
        if dead:
            tally.drops += min((i // window + 1) * window, frames) - i
            i = min((i // window + 1) * window, frames)
            break
        free[i] = t
        i += 1
        # --- window boundary: the receiver's response (paper) or ACK (reliable)
        if i % window == 0 and i < frames:
            ready = t + plan.response_us
            if paper:
                if lost:
                    break
                # Nothing else is queued, so the event has closed: the response waits for the
                # next anchor and arrives in its first exchange.
                anchor = _next_anchor(phase, ci, ready, anchor)
                t = end = anchor + poll_us
                tally.responses += 1
                win_start = t
            else:
                nxt = s + writes[i]
                if i >= pool:
                    nxt = max(nxt, free[i - pool] + wakes[i])
                if i >= unacked:
                    nxt = max(nxt, acks[(i - unacked) // window] + wakes[i])
                if nxt <= t and ready < end:
                    acks.append(ready + plan.full_cycles[0])  # on the next answer PDU
                else:
                    acks.append(_next_anchor(phase, ci, ready, anchor) + poll_us)
    tally.acks = len(acks)
    if controller is not None:
        _feed(controller, acks, fed, math.inf, window)
    if dead:
        duration, delivered = t, False
    elif lost:
        duration, delivered = max(s + plan.paper_timeout_us, t), False
    else:
        duration, delivered = free[frames - 1], True
    return _result(plan, ex, tally, phase, duration, delivered, i)


def _result(
    plan: Plan,
    ex: _Exchanges,
    tally: _Tally,
    phase: float,
    duration_us: float,
    delivered: bool,
    sent: int,
) -> TransferResult:
    """Radio time and bytes of the exchanges the transfer used (µs -> s).

    The sender is the central: it transmits the data PDUs and one empty PDU per otherwise idle
    connection event (a poll); the receiver answers every PDU (empty, a response or an ACK).
    """
    sent = min(sent, plan.frames)
    on_air = sent - (tally.drops if plan.paper else 0)
    full_values = min(on_air, plan.frames - 1)
    last_sent = on_air >= plan.frames
    pdus = full_values * len(plan.full_cycles) + (len(plan.last_cycles) if last_sent else 0)
    n_fail = int(ex.failures[:sent].sum())
    data_tx = full_values * sum(plan.full_tx) + (sum(plan.last_tx) if last_sent else 0.0)
    data_tx += float(ex.failed_tx_us[:sent].sum())
    # Resent PDUs after a reconnect: the data PDU's share of their exchange time.
    data_tx += tally.resent_us * sum(plan.full_tx) / sum(plan.full_cycles)
    data_bytes = full_values * sum(plan.full_bytes) + (sum(plan.last_bytes) if last_sent else 0)
    data_bytes += int(ex.failed_bytes[:sent].sum())
    exchanges = pdus + n_fail
    anchors = max(0, math.floor((duration_us - phase) / plan.interval_us) + 1)
    responses, acks = tally.responses, tally.acks
    polls = max(0, anchors - tally.events - responses) + responses
    answers = exchanges * plan.empty_us + (responses + acks) * plan.answer_extra_us
    central_tx = data_tx + polls * plan.empty_us
    central_rx = answers + polls * plan.empty_us
    resent = tally.resent_values
    return TransferResult(
        duration_s=duration_us / 1e6,
        delivered=delivered,
        app_frames=sent + resent,
        retransmissions=resent,
        drops=tally.drops + resent,
        link_retries=n_fail,
        bytes_on_air=data_bytes
        + (exchanges + 2 * polls) * plan.empty_bytes
        + (responses + acks) * plan.answer_extra_bytes,
        sender_tx_s=central_tx / 1e6,
        sender_rx_s=central_rx / 1e6,
        receiver_tx_s=central_rx / 1e6,
        receiver_rx_s=central_tx / 1e6,
    )
