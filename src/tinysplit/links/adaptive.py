"""Adaptive window per link (reliable mode): AIMD on acknowledgment timing and losses.

The receiver keeps answering every ``window`` DATA frames (its configured *ACK cadence*, which
the wire format cannot change mid-tensor); what adapts is the sender's *in-flight window* ``w``:
it keeps at most ``min(2 w, 32)`` chunks unacknowledged, the same rule (and ACK bitmap) as a
fixed window. ``w`` never drops below ``cadence // 2 + 1`` so that more frames than one ACK
needs are always allowed out (no stall until the timeout), and never exceeds 16.

The controller (:class:`AdaptiveWindow`), identical to the C core's ``ts_window.c`` (integer
arithmetic only, checked by a differential test), reacts to three events:

* ``on_ack(frames, interval_us)``: an ACK acknowledged ``frames`` new chunks ``interval_us`` after
  the previous progress. The per-frame delivery time ``interval / frames`` (µs, 4 fractional
  bits) is smoothed with gain 1/8; ``best`` follows its minimum and creeps up by 1/32 of the gap
  per ACK, so it forgets a better past. Growth: slow start (``w += frames`` up to ``ssthresh``),
  then +1 per ``w`` acknowledged frames, but only while the smoothed per-frame time is within
  25 % of ``best`` (frames in flight beyond what the link carries only queue; the per-frame
  time grows when the link gets slower).
* ``on_loss()``: selective repeat found a lost chunk. Multiplicative decrease: ``ssthresh = w =
  max(w // 2, min)``, once per window of acknowledged frames.
* ``on_timeout()``: no progress for the acknowledgment timeout. ``ssthresh = max(w // 2, min)``,
  ``w = min`` and the delay reference is forgotten.

:func:`adaptive_transfer` runs one tensor with the controller: per ACK inside the transfer when
the link model has ACK events (BLE), otherwise between transfers with :meth:`AdaptiveWindow.
observe` (ESP-NOW's model serialises each answer, so frames in flight beyond the cadence change
nothing there; TCP has its own window).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links.base import LinkConditions, LinkModel, Mode, TransferResult
from tinysplit.protocol.frames import MAX_RELIABLE_WINDOW

__all__ = [
    "AdaptiveWindow",
    "PerAckLink",
    "adaptive_transfer",
    "min_window_for_cadence",
]

#: Fractional bits of the per-frame times (µs << 4).
_FRAC_BITS = 4
#: Smoothing gain of the per-frame time, 1 / 2**_GAIN_SHIFT.
_GAIN_SHIFT = 3
#: ``best`` moves up by 1 / 2**_FORGET_SHIFT of the gap per ACK.
_FORGET_SHIFT = 5
#: Growth holds while smoothed * _SLOW_DEN <= best * _SLOW_NUM (25 % slower at most).
_SLOW_NUM, _SLOW_DEN = 5, 4
_U32 = (1 << 32) - 1


def min_window_for_cadence(ack_every: int) -> int:
    """Smallest in-flight window for a receiver answering every ``ack_every`` frames.

    ``2 w >= ack_every + 1``: one more frame than an ACK needs may always be in flight.

    Raises:
        ConfigError: ``ack_every`` outside 1..16.
    """
    if not 1 <= ack_every <= MAX_RELIABLE_WINDOW:
        raise ConfigError(f"ack cadence must be within 1..{MAX_RELIABLE_WINDOW}, got {ack_every}")
    return min(ack_every // 2 + 1, ack_every)


class AdaptiveWindow:
    """The in-flight window controller of one link (see the module docstring).

    The same instance is kept for every transfer of its link, so what it learned carries over.

    Attributes:
        acks, losses, timeouts: events seen so far.
    """

    __slots__ = (
        "_best",
        "_credit",
        "_max",
        "_min",
        "_recover",
        "_smooth",
        "_ssthresh",
        "_window",
        "acks",
        "losses",
        "timeouts",
    )

    def __init__(
        self, *, initial: int = 6, max_window: int = MAX_RELIABLE_WINDOW, min_window: int = 1
    ) -> None:
        """Start at ``initial`` frames, in slow start up to ``max_window``.

        Raises:
            ConfigError: not ``1 <= min_window <= initial <= max_window <= 16``.
        """
        if not 1 <= min_window <= initial <= max_window <= MAX_RELIABLE_WINDOW:
            raise ConfigError(
                f"adaptive window needs 1 <= min ({min_window}) <= initial ({initial}) <= max "
                f"({max_window}) <= {MAX_RELIABLE_WINDOW}"
            )
        self._min, self._max = min_window, max_window
        self._window = initial
        self._ssthresh = max_window
        self._credit = 0
        self._recover = 0
        self._smooth = 0
        self._best = 0
        self.acks = self.losses = self.timeouts = 0

    @classmethod
    def for_cadence(
        cls, ack_every: int, *, max_window: int = MAX_RELIABLE_WINDOW
    ) -> AdaptiveWindow:
        """The controller of a link whose receiver answers every ``ack_every`` frames: it starts
        at that window and never goes below :func:`min_window_for_cadence`."""
        return cls(
            initial=ack_every,
            max_window=max(max_window, ack_every),
            min_window=min_window_for_cadence(ack_every),
        )

    @property
    def window(self) -> int:
        """Current in-flight window, frames (the sender keeps ``min(2 w, 32)`` unacknowledged)."""
        return self._window

    @property
    def in_flight(self) -> int:
        """Chunks the sender may keep unacknowledged now: ``min(2 * window, 32)``."""
        return min(2 * self._window, 2 * MAX_RELIABLE_WINDOW)

    def state(self) -> tuple[int, int, int, int, int, int]:
        """(window, ssthresh, credit, recover, smoothed, best): the whole state, for tests."""
        return (self._window, self._ssthresh, self._credit, self._recover, self._smooth, self._best)

    def on_ack(self, frames: int, interval_us: int) -> None:
        """An ACK acknowledged ``frames`` new chunks ``interval_us`` µs after the last progress.

        Raises:
            ConfigError: a negative count or an interval outside 0..2**32-1 µs.
        """
        if frames < 0 or not 0 <= interval_us <= _U32:
            raise ConfigError(f"bad ACK sample: {frames} frames in {interval_us} us")
        if frames == 0:
            return
        self.acks += 1
        sample = (interval_us << _FRAC_BITS) // frames
        if self._smooth == 0:
            self._smooth = sample
        else:
            self._smooth = (self._smooth * ((1 << _GAIN_SHIFT) - 1) + sample) >> _GAIN_SHIFT
        if self._best == 0 or self._smooth < self._best:
            self._best = self._smooth
        else:
            self._best += (self._smooth - self._best) >> _FORGET_SHIFT
        self._recover = max(0, self._recover - frames)
        if self._smooth * _SLOW_DEN > self._best * _SLOW_NUM:
            return  # the link delivers each frame more slowly: do not push more into it
        if self._window < self._ssthresh:
            self._window = min(self._window + frames, self._ssthresh, self._max)
            return
        self._credit += frames
        if self._credit >= self._window:
            self._credit -= self._window
            self._window = min(self._window + 1, self._max)

    def on_loss(self) -> None:
        """Selective repeat found a lost chunk: halve the window (once per window of ACKs)."""
        self.losses += 1
        if self._recover > 0:
            return
        self._ssthresh = max(self._window // 2, self._min)
        self._window = self._ssthresh
        self._credit = 0
        self._recover = self._window

    def on_timeout(self) -> None:
        """No progress for the acknowledgment timeout: back to the smallest window."""
        self.timeouts += 1
        self._ssthresh = max(self._window // 2, self._min)
        self._window = self._min
        self._credit = 0
        self._recover = 0
        self._smooth = 0
        self._best = 0

    def observe(self, result: TransferResult, payload_bytes: int) -> None:
        """Learn from one whole transfer of ``payload_bytes`` bytes (links without ACK events).

        The transfer counts as one ACK of its first-time frames over its duration, preceded by
        a loss when anything was retransmitted or dropped. A lost tensor counts as a timeout.
        """
        if payload_bytes < 0:
            raise ConfigError(f"payload_bytes must be >= 0, got {payload_bytes}")
        if not result.delivered:
            self.on_timeout()
            return
        if result.retransmissions > 0 or result.drops > 0:
            self.on_loss()
        frames = max(1, result.app_frames - result.retransmissions)
        self.on_ack(frames, min(_U32, round(result.duration_s * 1e6)))


@runtime_checkable
class PerAckLink(Protocol):
    """A link model that can run the controller on every ACK inside one transfer."""

    def transfer_adaptive(
        self,
        payload_bytes: int,
        conditions: LinkConditions,
        rng: np.random.Generator,
        controller: AdaptiveWindow,
    ) -> TransferResult:
        """Like :meth:`LinkModel.transfer`; ``conditions.window`` is the receiver's cadence."""
        ...


def adaptive_transfer(
    link: LinkModel,
    payload_bytes: int,
    conditions: LinkConditions,
    rng: np.random.Generator,
    controller: AdaptiveWindow,
) -> TransferResult:
    """Send one tensor with the link's controller (reliable mode; paper mode is unchanged).

    ``conditions.window`` stays the receiver's ACK cadence. Per ACK when ``link`` is a
    :class:`PerAckLink` (BLE), else one plain transfer followed by
    :meth:`AdaptiveWindow.observe`.
    """
    if conditions.mode is not Mode.RELIABLE:
        return link.transfer(payload_bytes, conditions, rng)
    if isinstance(link, PerAckLink):
        return link.transfer_adaptive(payload_bytes, conditions, rng, controller)
    result = link.transfer(payload_bytes, conditions, rng)
    controller.observe(result, payload_bytes)
    return result


def sequence_goodput_kbps(
    link: LinkModel,
    payload_bytes: int,
    rssi_dbm: float,
    window: int,
    controller: AdaptiveWindow | None = None,
    *,
    tensors: int = 10,
    seed: int = 0,
) -> tuple[float, int]:
    """Goodput (kbit/s) of ``tensors`` reliable transfers after a first one, and the tensors lost.

    The first transfer lets a ``controller`` learn the link (its time is not counted); with no
    controller every transfer uses the fixed ``window``. This is how the adaptive window is
    measured against the best fixed window (``docs/protocol.md``).
    """
    rng = np.random.default_rng(seed)
    conditions = LinkConditions(rssi_dbm=rssi_dbm, window=window, mode=Mode.RELIABLE)
    total_s, lost = 0.0, 0
    for k in range(tensors + 1):
        if controller is None:
            result = link.transfer(payload_bytes, conditions, rng)
        else:
            result = adaptive_transfer(link, payload_bytes, conditions, rng, controller)
        lost += not result.delivered
        total_s += result.duration_s if k else 0.0
    return payload_bytes * tensors * 8 / total_s / 1e3, lost
