"""Pipeline simulator: N boards run the stages of a plan and pass tensors over one transport.

Each board has a receive buffer (one tensor), computes, and hands its output to a send buffer
(one tensor) that a sender drains over the radio while the board computes the next inference,
as the memory model assumes. A transfer starts only when the next board's receive buffer is free
and the radios it needs are idle: with BLE each board's radio serves one transfer at a time (its
two connections share it); Wi-Fi and ESP-NOW boards share one channel, so one transfer is on the
air at a time. The source injects inputs into board 1 back to back or at a fixed interval. The
scribe records the paper's events per inference and stage. The same configuration and seed
always give identical records.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links import LinkConditions, LinkModel, Mode, TransferResult, make_link
from tinysplit.links.calibration import active_calibration, section
from tinysplit.links.signal import PathLoss
from tinysplit.partition import Plan
from tinysplit.partition.cost import load_compute_model
from tinysplit.sim import engine as heapq_engine
from tinysplit.sim.energy import STATES, PowerModel

NAN = math.nan
#: Transports whose boards share one radio channel (one transfer on the air at a time).
SHARED_CHANNEL = frozenset({"wifi", "espnow"})


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """How to run a plan.

    Attributes:
        transport: ``ble``, ``wifi`` or ``espnow``.
        link_profile: calibration profile name (the transport's default when None).
        mode: protocol mode (``paper`` reproduces the paper's silent losses).
        window: application window (frames per acknowledgment) on every link.
        inferences: number of inputs to inject.
        seed: seed of every random draw.
        interval_s: time between inputs; None injects back to back (as soon as board 1 is free).
        dual_core: run ESP-DL on both cores (faster, more current).
        rssi_dbm: RSSI of each link board k -> k+1 (measured values), or None.
        positions_m: board positions (x, y[, z] in metres) used with the path-loss model when
            ``rssi_dbm`` is None.
        ap_board: Wi-Fi only: 1-based board running the SoftAP.
    """

    transport: str
    link_profile: str | None = None
    mode: Mode = Mode.RELIABLE
    window: int = 6
    inferences: int = 10
    seed: int = 0
    interval_s: float | None = None
    dual_core: bool = False
    rssi_dbm: tuple[float, ...] | None = None
    positions_m: tuple[tuple[float, ...], ...] | None = None
    ap_board: int = 1

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ConfigError(f"window must be >= 1, got {self.window}")
        if self.inferences < 1:
            raise ConfigError(f"inferences must be >= 1, got {self.inferences}")
        if self.interval_s is not None and not self.interval_s > 0:
            raise ConfigError(f"interval_s must be > 0, got {self.interval_s}")
        object.__setattr__(self, "mode", Mode(self.mode))


@dataclass(frozen=True, slots=True)
class StageEvent:
    """Scribe events of one inference on one board, seconds since the start (NaN: none).

    Board 1 receives its input from the host and the last board sends nothing, so those
    fields are NaN. ``failed`` marks an inference lost on the way (paper mode).
    """

    inference: int
    stage: int
    receive_start_s: float = NAN
    receive_end_s: float = NAN
    inference_start_s: float = NAN
    inference_end_s: float = NAN
    send_start_s: float = NAN
    send_end_s: float = NAN


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """One tensor transfer between board ``stage`` and the next."""

    inference: int
    stage: int
    bytes: int
    rssi_dbm: float
    window: int
    result: TransferResult


@dataclass(slots=True)
class SimResult:
    """Everything a run recorded; summaries are computed from the records."""

    config: PipelineConfig
    plan: Plan
    stage_events: list[StageEvent]
    link_events: list[LinkEvent]
    injected_s: list[float]
    duration_s: float
    setup_s: list[float]
    rssi_dbm: list[float]
    energy_j: list[dict[str, float]] = field(default_factory=list)

    @property
    def completed(self) -> list[int]:
        """Inferences whose result left the last board."""
        last = len(self.plan.stages)
        return sorted(
            e.inference
            for e in self.stage_events
            if e.stage == last and not math.isnan(e.inference_end_s)
        )

    @property
    def failed(self) -> list[int]:
        """Inferences lost on a link."""
        return sorted({e.inference for e in self.link_events if not e.result.delivered})


class _Run:
    """State of one simulation: boards, buffers, radios, records."""

    def __init__(
        self, plan: Plan, config: PipelineConfig, backend: ModuleType, link: LinkModel | None
    ) -> None:
        self.plan, self.config, self.backend = plan, config, backend
        self.env = backend.Environment()
        n = len(plan.stages)
        speedup = load_compute_model().dual_core_speedup if config.dual_core else 1.0
        calibration = active_calibration()  # a user calibration file's fitted corrections
        scale = calibration.compute_scale
        self.compute_s = [s.estimated_compute_s / speedup * scale for s in plan.stages]
        self.link = link or make_link(config.transport, config.link_profile)
        self.link_fit = calibration.link(config.transport)
        self.rssi, self.relay_rssi = link_hops(config, n)
        self.rngs = [np.random.default_rng([config.seed, k]) for k in range(n)]
        env = self.env
        self.inbox = [backend.Store(env, capacity=1_000_000) for _ in range(n)]
        self.rx_slot = [backend.Resource(env, capacity=1) for _ in range(n)]
        self.outbox = [backend.Store(env, capacity=1_000_000) for _ in range(n)]
        self.tx_slot = [backend.Resource(env, capacity=1) for _ in range(n)]
        shared = config.transport in SHARED_CHANNEL
        count = 1 if shared else n
        self.radios = [backend.Resource(env, capacity=1) for _ in range(count)]
        self.events: dict[tuple[int, int], dict[str, float]] = {
            (i, k): {} for i in range(config.inferences) for k in range(n)
        }
        self.link_events: list[LinkEvent] = []
        self.injected: list[float] = []
        self.busy = [dict.fromkeys(STATES[1:], 0.0) for _ in range(n)]

    def source(self) -> Generator[Any, Any, None]:
        for i in range(self.config.inferences):
            if self.config.interval_s is not None:
                yield self.env.timeout(max(0.0, i * self.config.interval_s - self.env.now))
            req = self.rx_slot[0].request()
            yield req
            self.injected.append(self.env.now)
            yield self.inbox[0].put((i, req))

    def board(self, k: int) -> Generator[Any, Any, None]:
        last = k == len(self.plan.stages) - 1
        while True:
            i, rx_req = yield self.inbox[k].get()
            self.events[i, k]["inference_start_s"] = self.env.now
            self.rx_slot[k].release(rx_req)
            yield self.env.timeout(self.compute_s[k])
            self.events[i, k]["inference_end_s"] = self.env.now
            self.busy[k]["inference"] += self.compute_s[k]
            if not last:
                tx_req = self.tx_slot[k].request()
                yield tx_req
                yield self.outbox[k].put((i, tx_req))

    def sender(self, k: int) -> Generator[Any, Any, None]:
        size = self.plan.stages[k].outgoing.size_bytes
        conditions = LinkConditions(
            rssi_dbm=self.rssi[k],
            window=self.config.window,
            mode=self.config.mode,
            relay_rssi_dbm=self.relay_rssi[k],
        )
        radios = self.radios if len(self.radios) == 1 else [self.radios[k], self.radios[k + 1]]
        while True:
            i, tx_req = yield self.outbox[k].get()
            rx_req = self.rx_slot[k + 1].request()
            yield rx_req
            grants = []
            for radio in radios:  # always in board order, so two senders never deadlock
                grants.append(radio.request())
                yield grants[-1]
            result = self.link_fit.apply(self.link.transfer(size, conditions, self.rngs[k]))
            start = self.env.now
            yield self.env.timeout(result.duration_s)
            for radio, grant in zip(radios, grants, strict=True):
                radio.release(grant)
            self.events[i, k].update(send_start_s=start, send_end_s=self.env.now)
            self.link_events.append(
                LinkEvent(i, k + 1, size, self.rssi[k], conditions.window, result)
            )
            self._account_radio(k, result)
            self.tx_slot[k].release(tx_req)
            if result.delivered:
                self.events[i, k + 1].update(receive_start_s=start, receive_end_s=self.env.now)
                yield self.inbox[k + 1].put((i, rx_req))
            else:
                self.rx_slot[k + 1].release(rx_req)

    def _account_radio(self, k: int, r: TransferResult) -> None:
        self.busy[k]["radio_tx"] += r.sender_tx_s
        self.busy[k]["radio_rx"] += r.sender_rx_s
        self.busy[k + 1]["radio_tx"] += r.receiver_tx_s
        self.busy[k + 1]["radio_rx"] += r.receiver_rx_s
        ap = self.config.ap_board - 1
        if self.config.transport == "wifi" and (r.relay_tx_s or r.relay_rx_s):
            self.busy[ap]["radio_tx"] += r.relay_tx_s
            self.busy[ap]["radio_rx"] += r.relay_rx_s


def simulate(
    plan: Plan,
    config: PipelineConfig,
    *,
    backend: ModuleType | None = None,
    link: LinkModel | None = None,
) -> SimResult:
    """Run ``config.inferences`` inferences of ``plan`` on the simulated testbed.

    A user calibration file in force (``TINYSPLIT_CALIBRATION``, see
    :func:`tinysplit.links.calibration.active_calibration`) scales every stage's compute time and
    corrects every transfer's duration, whichever link model is used.

    Args:
        plan: the stages (one board each) with compute estimates and outgoing tensor sizes.
        config: transport, protocol, window, inputs, seed and link conditions.
        backend: the event engine module (:mod:`tinysplit.sim.engine` by default; ``simpy``
            works too).
        link: a link model to use instead of the calibrated one of ``config.transport``.

    Raises:
        ConfigError: unknown transport or profile, bad window, RSSI or positions that do not
            match the plan's boards.
    """
    run = _Run(plan, config, backend or heapq_engine, link)
    n = len(plan.stages)
    run.env.process(run.source())
    for k in range(n):
        run.env.process(run.board(k))
        if k < n - 1:
            run.env.process(run.sender(k))
    run.env.run()
    duration = run.env.now
    power = PowerModel.for_transport(config.transport, dual_core=config.dual_core)
    return SimResult(
        config=config,
        plan=plan,
        stage_events=[
            StageEvent(i, k + 1, **fields) for (i, k), fields in sorted(run.events.items())
        ],
        link_events=run.link_events,
        injected_s=run.injected,
        duration_s=duration,
        setup_s=[run.link.setup_s(LinkConditions(rssi_dbm=r)) for r in run.rssi],
        rssi_dbm=run.rssi,
        energy_j=[power.energy_j(duration_s=duration, busy_s=b) for b in run.busy],
    )


def link_hops(config: PipelineConfig, boards: int) -> tuple[list[float], list[float | None]]:
    """RSSI of each link k -> k+1 as the simulator sees it, and of its relay hop.

    The second list is the RSSI of the hop through the Wi-Fi SoftAP when neither end of the link
    is the AP (None otherwise, and always None on other transports).

    Raises:
        ConfigError: RSSI values or positions that do not match ``boards``.
    """
    return _wifi_hops(config, boards, _link_rssi(config, boards))


def _link_rssi(config: PipelineConfig, boards: int) -> list[float]:
    """RSSI of each link k -> k+1, from measured values or board positions."""
    links = boards - 1
    if config.rssi_dbm is not None:
        if len(config.rssi_dbm) != links:
            raise ConfigError(
                f"rssi_dbm has {len(config.rssi_dbm)} values but the plan has {links} links"
            )
        return [float(r) for r in config.rssi_dbm]
    matrix = _rssi_matrix(config, boards)
    return [float(matrix[k, k + 1]) for k in range(links)]


def _wifi_hops(
    config: PipelineConfig, boards: int, rssi: list[float]
) -> tuple[list[float], list[float | None]]:
    """RSSI of the first hop of each link, and of the second hop through the SoftAP (Wi-Fi only).

    When neither end of a Wi-Fi link is the AP, frames go sender -> AP -> receiver: with board
    positions the hops are those two distances; measured per-link RSSI says nothing of the AP, so
    both hops get the link's value.
    """
    if config.transport != "wifi":
        return rssi, [None] * (boards - 1)
    ap = config.ap_board - 1
    if not 0 <= ap < boards:
        raise ConfigError(f"ap_board must be within 1..{boards}, got {config.ap_board}")
    matrix = _rssi_matrix(config, boards) if config.rssi_dbm is None else None
    first, second = list(rssi), list[float | None]()
    for k in range(boards - 1):
        if ap in (k, k + 1):
            second.append(None)
        elif matrix is not None:
            first[k] = float(matrix[k, ap])
            second.append(float(matrix[ap, k + 1]))
        else:
            second.append(rssi[k])
    return first, second


def _rssi_matrix(config: PipelineConfig, boards: int) -> np.ndarray:
    if config.positions_m is None:
        raise ConfigError("give either rssi_dbm (one value per link) or positions_m (per board)")
    if len(config.positions_m) != boards:
        raise ConfigError(
            f"positions_m has {len(config.positions_m)} boards but the plan has {boards}"
        )
    signal = section("signal")
    path = PathLoss(
        loss_at_1m_db=float(signal["loss_at_1m_db"]),
        exponent=float(signal["exponent"]),
        shadowing_sigma_db=float(signal["shadowing_sigma_db"]),
    )
    tx = float(signal["tx_power_dbm"][config.transport])
    return path.rssi_matrix(config.positions_m, tx, np.random.default_rng([config.seed, 999]))
