"""Power meters of the hardware testbed: current traces per board, and energy split by state.

Every meter implements :class:`PowerMeter`: :meth:`~PowerMeter.start` right after the scribe's
``start`` (time zero of the run), :meth:`~PowerMeter.stop` at the end, which returns one
:class:`PowerTrace` per measured board (1-based stage). :func:`energy_by_state` integrates a trace
over the run and splits it by what the board was doing according to the scribe's marks.

Meters (``[power] meter`` in the inventory):

* ``none`` (:class:`NoPowerMeter`): nothing is measured; runs carry no energy records.
* ``scribe-ina`` (:class:`ScribeInaMeter`): INA219 / INA226 monitors read by the scribe, streamed
  as ``evt power dev=<stage> t_ns=.. bus_mv=.. current_ua=..`` on the scribe's own clock (the
  marks' time base), so no alignment is needed.
* ``ppk2`` (:class:`Ppk2Meter`): a Nordic Power Profiler Kit II in source-meter mode supplying
  one board at ``supply_v`` (the optional ``ppk2`` extra, ``ppk2-api``). Samples come at 100 kHz
  on the PPK2's clock; sample *i* is placed at ``i / 100 kHz`` after :meth:`~Ppk2Meter.start`,
  which runs right after the scribe's ``start``: the trace is aligned to the marks within the
  host's command latency (milliseconds), and samples the PPK2 flags out of range are dropped
  (shifting later ones by 10 us each).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError, MissingExtraError
from tinysplit.sim.energy import STATES

if TYPE_CHECKING:
    from tinysplit.testbed.hw.console import Console

#: Meter ids accepted in ``[power] meter``.
METERS = ("none", "scribe-ina", "ppk2")
#: The PPK2's sampling rate (samples per second).
PPK2_RATE_HZ = 100_000.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PowerTrace:
    """Current samples of one board.

    Attributes:
        t_s: sample times in seconds since the scribe's ``start``, increasing.
        current_a: current in amperes at each sample.
        supply_v: the board's supply voltage: one value, or one per sample (measured bus voltage).
    """

    t_s: FloatArray
    current_a: FloatArray
    supply_v: float | FloatArray

    def __post_init__(self) -> None:
        if self.t_s.shape != self.current_a.shape or self.t_s.ndim != 1:
            raise ConfigError("power trace: times and currents must be 1-D arrays of one length")
        if isinstance(self.supply_v, np.ndarray) and self.supply_v.shape != self.t_s.shape:
            raise ConfigError("power trace: one supply voltage per sample, or a single value")

    @property
    def power_w(self) -> FloatArray:
        """Power in watts at each sample."""
        return np.asarray(self.current_a * self.supply_v, dtype=np.float64)


class PowerMeter(ABC):
    """Measures the boards' current during one run.

    Contract: :meth:`start` is called once, right after the scribe's ``start`` (so time zero is the
    marks' time zero); :meth:`stop` once at the end of the run (also after a failure), and returns
    ``{stage: PowerTrace}`` for every board it measured (none: an empty dict). Neither blocks for
    long; a meter that must read continuously does so in its own thread.
    """

    name: str

    @abstractmethod
    def start(self) -> None:
        """Begin measuring (time zero)."""

    @abstractmethod
    def stop(self) -> dict[int, PowerTrace]:
        """Stop measuring and return the traces by 1-based stage."""


class NoPowerMeter(PowerMeter):
    """No meter fitted: no traces, so runs carry no energy records."""

    name = "none"

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> dict[int, PowerTrace]:
        """No traces."""
        return {}


class ScribeInaMeter(PowerMeter):
    """INA219 / INA226 monitors read by the scribe (``evt power`` lines on the scribe console).

    The testbed keeps reading the scribe console during the run (for its marks); the console
    queues every ``power`` event, and :meth:`stop` takes them. Power is the measured bus voltage
    times the current of each sample (the load side of the shunt: what the board draws).
    """

    name = "scribe-ina"

    def __init__(self, scribe: Console) -> None:
        self._scribe = scribe

    def start(self) -> None:
        """Drop samples streamed before this run's ``start``."""
        self._scribe.pop_events("power")

    def stop(self) -> dict[int, PowerTrace]:
        """The samples the scribe streamed since :meth:`start`, by ``dev`` (= stage)."""
        rows: dict[int, list[tuple[float, float, float]]] = {}
        for event in self._scribe.pop_events("power"):
            try:
                dev = int(event.fields["dev"])
                sample = (
                    int(event.fields["t_ns"]) / 1e9,
                    int(event.fields["current_ua"]) * 1e-6,
                    int(event.fields["bus_mv"]) * 1e-3,
                )
            except (KeyError, ValueError):
                continue  # a malformed sample is skipped, like any serial garbage
            rows.setdefault(dev, []).append(sample)
        return {dev: _trace(samples) for dev, samples in sorted(rows.items())}


def _trace(samples: Sequence[tuple[float, float, float]]) -> PowerTrace:
    data = np.array(sorted(samples), dtype=np.float64).reshape(-1, 3)
    return PowerTrace(t_s=data[:, 0], current_a=data[:, 1], supply_v=data[:, 2])


class Ppk2Api(Protocol):
    """The part of ``ppk2_api.ppk2_api.PPK2_API`` the meter uses (a fake stands in in tests)."""

    def get_modifiers(self) -> Any: ...
    def use_source_meter(self) -> None: ...
    def set_source_voltage(self, mV: int) -> None: ...
    def toggle_DUT_power(self, state: str) -> None: ...
    def start_measuring(self) -> None: ...
    def stop_measuring(self) -> None: ...
    def get_data(self) -> bytes: ...
    def get_samples(self, buf: bytes) -> tuple[list[float], list[int]]: ...


class Ppk2Meter(PowerMeter):
    """A Nordic PPK2 supplying one board (source-meter mode) and sampling its current at 100 kHz.

    Args:
        port: the PPK2's serial port.
        supply_v: the voltage the PPK2 sources (0.8..5 V).
        board: the 1-based stage of the board it supplies.
        api: an already opened ``PPK2_API``-like object (tests pass a fake); by default the
            ``ppk2_api`` package opens ``port``.
        poll_s: how often the reader thread drains the PPK2's stream.

    Raises:
        MissingExtraError: ``ppk2-api`` is not installed.
        ConfigError: a supply voltage the PPK2 cannot source.
    """

    name = "ppk2"

    def __init__(
        self,
        port: str,
        *,
        supply_v: float = 3.3,
        board: int = 1,
        api: Ppk2Api | None = None,
        poll_s: float = 0.01,
    ) -> None:
        if not 0.8 <= supply_v <= 5.0:
            raise ConfigError(f"power: the PPK2 sources 0.8..5 V, got supply_v = {supply_v}")
        self.port, self.supply_v, self.board, self.poll_s = port, supply_v, board, poll_s
        self._api = api if api is not None else _open_ppk2(port)
        self._samples_ua: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Power the board at ``supply_v`` and start the reader thread."""
        api = self._api
        api.get_modifiers()
        api.use_source_meter()
        api.set_source_voltage(round(self.supply_v * 1000))
        api.toggle_DUT_power("ON")
        self._samples_ua.clear()
        self._stop.clear()
        api.start_measuring()
        self._thread = threading.Thread(target=self._read, name="ppk2-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._drain()

    def _drain(self) -> None:
        with self._lock:
            data = self._api.get_data()
            if data:
                samples, _digital = self._api.get_samples(data)
                self._samples_ua.extend(samples)

    def stop(self) -> dict[int, PowerTrace]:
        """Stop sampling (the board stays powered) and return its trace."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._drain()
        self._api.stop_measuring()
        return {self.board: ppk2_trace(self._samples_ua, supply_v=self.supply_v)}


def ppk2_trace(
    samples_ua: Iterable[float], *, supply_v: float, rate_hz: float = PPK2_RATE_HZ
) -> PowerTrace:
    """A trace from PPK2 samples (microamperes, one every ``1 / rate_hz`` s from time zero)."""
    current = np.fromiter(samples_ua, dtype=np.float64) * 1e-6
    return PowerTrace(t_s=np.arange(current.size) / rate_hz, current_a=current, supply_v=supply_v)


def _open_ppk2(port: str) -> Ppk2Api:
    try:
        from ppk2_api.ppk2_api import PPK2_API
    except ImportError as exc:
        raise MissingExtraError(
            "[power] meter = 'ppk2' needs ppk2-api: pip install 'tinysplit[ppk2]'"
        ) from exc
    api: Ppk2Api = PPK2_API(port, timeout=1, write_timeout=1, exclusive=True)
    return api


def make_power_meter(spec: Any, scribe_console: Console | None) -> PowerMeter:
    """The meter an inventory's ``[power]`` table names.

    Args:
        spec: the inventory's ``PowerSpec`` (``meter``, ``port``, ``supply_v``).
        scribe_console: the scribe's console (``scribe-ina`` reads it), or None without a scribe.

    Raises:
        ConfigError: unknown meter, ``scribe-ina`` without a scribe, ``ppk2`` without a port.
        MissingExtraError: ``ppk2`` without the ``ppk2`` extra installed.
    """
    match spec.meter:
        case "none":
            return NoPowerMeter()
        case "scribe-ina":
            if scribe_console is None:
                raise ConfigError("power: meter 'scribe-ina' is read by the scribe: add [scribe]")
            return ScribeInaMeter(scribe_console)
        case "ppk2":
            if not spec.port:
                raise ConfigError("power: meter 'ppk2' needs the PPK2's port")
            return Ppk2Meter(spec.port, supply_v=float(spec.supply_v))
    raise ConfigError(f"power: unknown meter {spec.meter!r} (valid: {', '.join(METERS)})")


def energy_by_state(
    trace: PowerTrace,
    *,
    duration_s: float,
    intervals: Mapping[str, Sequence[tuple[float, float]]],
) -> dict[str, float]:
    """Energy in joules a board used during ``0..duration_s``, split by state.

    Power is interpolated linearly between samples (held at the first / last sample outside
    them) and integrated exactly over each piece. ``intervals`` gives, per state (``inference``,
    ``radio_tx``, ``radio_rx``), the times the scribe's marks say the board was in it; where they
    overlap the first state in :data:`~tinysplit.sim.energy.STATES` order wins (computing while
    the radio sends counts as inference), and ``idle`` is the rest. Unlike the simulator's
    additive model (idle baseline + increments), each state here holds the whole current drawn
    during its time.

    Raises:
        ConfigError: an empty trace or a negative duration.
    """
    if trace.t_s.size == 0:
        raise ConfigError("power trace has no samples")
    if duration_s < 0:
        raise ConfigError(f"duration must be >= 0, got {duration_s}")
    busy = [s for s in STATES if s != "idle"]
    cuts = [0.0, duration_s, *trace.t_s[(trace.t_s > 0) & (trace.t_s < duration_s)]]
    for state in busy:
        for a, b in intervals.get(state, ()):
            cuts += [min(max(a, 0.0), duration_s), min(max(b, 0.0), duration_s)]
    edges = np.unique(np.asarray(cuts, dtype=np.float64))
    energy = dict.fromkeys(STATES, 0.0)
    if edges.size < 2:
        return energy
    power = np.interp(edges, trace.t_s, trace.power_w)
    pieces = (power[:-1] + power[1:]) / 2.0 * np.diff(edges)  # exact for linear pieces
    middle = (edges[:-1] + edges[1:]) / 2.0
    owner = np.full(middle.shape, "idle", dtype=object)
    for state in reversed(busy):  # the first state in STATES order is assigned last and wins
        inside = np.zeros(middle.shape, dtype=bool)
        for a, b in intervals.get(state, ()):
            inside |= (middle > a) & (middle < b)
        owner[inside] = state
    for state in STATES:
        energy[state] = float(pieces[owner == state].sum())
    return energy
