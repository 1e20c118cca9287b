"""Pipeline simulator: N boards run the stages of a plan and pass tensors over one transport.

Each board has a receive buffer (one tensor), computes, and hands its output to a send buffer
(one tensor) that a sender drains over the radio while the board computes the next inference,
as the memory model assumes. A transfer starts only when the next board's receive buffer is free
and the radios it needs are idle: with BLE each board's radio serves one transfer at a time (its
two connections share it); Wi-Fi and ESP-NOW boards share one channel, so one transfer is on the
air at a time. The source injects inputs into board 1 back to back or at a fixed interval. The
scribe records the paper's events per inference and stage. The same configuration and seed
always give identical records.

Stages may run on any physical boards, several boards each (replicas, see
:mod:`tinysplit.sim.deployment`): inference ``i`` runs on replica ``i mod r`` of every stage. Each
physical board has its own receive buffer, radio and energy account. Order is kept: a board
accepts a tensor only once every earlier inference assigned to it has been accepted (or lost on
the way), and the host collects the results in inference order (``SimResult.output_s``).
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
from tinysplit.links.adaptive import AdaptiveWindow, PerAckLink, adaptive_transfer
from tinysplit.links.calibration import active_calibration
from tinysplit.links.hybrid import check_wake, hybrid_link
from tinysplit.partition import Plan
from tinysplit.partition.cost import load_compute_model
from tinysplit.partition.deployment import check_boards
from tinysplit.sim import engine as heapq_engine
from tinysplit.sim.deployment import (
    ResolvedDeployment,
    check_placement_fields,
    normalize_matrix,
    pair_mean,
    resolve,
)
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
        ap_board: Wi-Fi only: 1-based physical board running the SoftAP.
        placement: per stage, the physical boards (0-based) running it: one board, or several
            replicas served round-robin. None: stage k on board k.
        rssi_matrix_dbm: RSSI of every board pair (B x B, dBm, NaN: no usable link), instead of
            ``rssi_dbm`` or ``positions_m``.
        windows: one application window per stage boundary (overrides ``window``).
        adaptive_window: reliable mode: every link's sender adapts its in-flight window to ACK
            timing and losses (:mod:`tinysplit.links.adaptive`); the window above stays the
            receiver's acknowledgment cadence. Only BLE links adapt per ACK; on ESP-NOW (each
            frame waits for its answer) and TCP (its own window) it changes nothing.
        wake: ``"ble"``: hybrid transport: boards sleep on BLE between tensors and wake the data
            radio (``transport``: wifi or espnow) for each one (:mod:`tinysplit.links.hybrid`).
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
    placement: tuple[tuple[int, ...], ...] | None = None
    rssi_matrix_dbm: tuple[tuple[float, ...], ...] | None = None
    windows: tuple[int, ...] | None = None
    adaptive_window: bool = False
    wake: str | None = None

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ConfigError(f"window must be >= 1, got {self.window}")
        if self.inferences < 1:
            raise ConfigError(f"inferences must be >= 1, got {self.inferences}")
        if self.interval_s is not None and not self.interval_s > 0:
            raise ConfigError(f"interval_s must be > 0, got {self.interval_s}")
        object.__setattr__(self, "mode", Mode(self.mode))
        if self.placement is not None:
            object.__setattr__(self, "placement", check_boards(self.placement))
        if self.rssi_matrix_dbm is not None:
            object.__setattr__(self, "rssi_matrix_dbm", normalize_matrix(self.rssi_matrix_dbm))
        if self.windows is not None:
            object.__setattr__(self, "windows", tuple(self.windows))
        check_placement_fields(self)
        check_wake(self.transport, self.wake)
        if self.adaptive_window and self.mode is not Mode.RELIABLE:
            raise ConfigError("adaptive_window needs reliable mode (paper mode keeps its window)")


@dataclass(frozen=True, slots=True)
class StageEvent:
    """Scribe events of one inference on one board, seconds since the start (NaN: none).

    Board 1 receives its input from the host and the last board sends nothing, so those
    fields are NaN. ``failed`` marks an inference lost on the way (paper mode). ``board`` is the
    physical board (1-based) that ran (or would have run) the stage: ``stage`` when 0 is given.
    """

    inference: int
    stage: int
    receive_start_s: float = NAN
    receive_end_s: float = NAN
    inference_start_s: float = NAN
    inference_end_s: float = NAN
    send_start_s: float = NAN
    send_end_s: float = NAN
    board: int = 0

    def __post_init__(self) -> None:
        if self.board == 0:
            object.__setattr__(self, "board", self.stage)


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """One tensor transfer from stage ``stage`` to the next.

    ``sender`` and ``receiver`` are the physical boards (1-based): ``stage`` and ``stage + 1``
    when 0 is given.
    """

    inference: int
    stage: int
    bytes: int
    rssi_dbm: float
    window: int
    result: TransferResult
    sender: int = 0
    receiver: int = 0

    def __post_init__(self) -> None:
        if self.sender == 0:
            object.__setattr__(self, "sender", self.stage)
        if self.receiver == 0:
            object.__setattr__(self, "receiver", self.stage + 1)


@dataclass(slots=True)
class SimResult:
    """Everything a run recorded; summaries are computed from the records.

    ``rssi_dbm`` and ``setup_s`` are per stage boundary (link ``k -> k+1``); with replicas, the
    mean RSSI and the longest setup of the boundary's board pairs (each transfer's own RSSI is in
    its :class:`LinkEvent`). ``energy_j`` is per physical board (index 0 = board 1); a board that
    runs no stage is switched off: 0 J in every state. ``output_s``: per inference, when its
    result left the pipeline in order (NaN: lost); empty means the last stage's inference ends.
    ``placement``: per stage, its physical boards (0-based); empty means stage k on board k.
    """

    config: PipelineConfig
    plan: Plan
    stage_events: list[StageEvent]
    link_events: list[LinkEvent]
    injected_s: list[float]
    duration_s: float
    setup_s: list[float]
    rssi_dbm: list[float]
    energy_j: list[dict[str, float]] = field(default_factory=list)
    output_s: list[float] = field(default_factory=list)
    placement: tuple[tuple[int, ...], ...] = ()

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
    """State of one simulation: physical boards, buffers, radios, order keeping, records."""

    def __init__(
        self,
        plan: Plan,
        config: PipelineConfig,
        backend: ModuleType,
        link: LinkModel | None,
        deployment: ResolvedDeployment,
    ) -> None:
        self.plan, self.config, self.backend = plan, config, backend
        self.dep = deployment
        self.env = backend.Environment()
        n, boards, count = len(plan.stages), deployment.boards, config.inferences
        speedup = load_compute_model().dual_core_speedup if config.dual_core else 1.0
        calibration = active_calibration()  # a user calibration file's fitted corrections
        scale = calibration.compute_scale
        self.compute_s = [s.estimated_compute_s / speedup * scale for s in plan.stages]
        data_link = link or make_link(config.transport, config.link_profile)
        self.link = hybrid_link(data_link, config.wake)
        self.link_fit = calibration.link(config.transport)
        self.rngs = [np.random.default_rng([config.seed, b]) for b in range(boards)]
        self.controllers: dict[tuple[int, int], AdaptiveWindow] = {}
        env = self.env
        self.inbox = [backend.Store(env, capacity=1_000_000) for _ in range(boards)]
        self.rx_slot = [backend.Resource(env, capacity=1) for _ in range(boards)]
        self.outbox = [backend.Store(env, capacity=1_000_000) for _ in range(boards)]
        self.tx_slot = [backend.Resource(env, capacity=1) for _ in range(boards)]
        shared = config.transport in SHARED_CHANNEL
        self.radios = [backend.Resource(env, capacity=1) for _ in range(1 if shared else boards)]
        self.together = any(len(replicas) > 1 for replicas in deployment.placement)
        self.radio_busy = [False] * len(self.radios)
        self.radio_waiters: list[tuple[tuple[int, ...], Any]] = []
        self.events: dict[tuple[int, int], dict[str, float]] = {
            (i, k): {} for i in range(count) for k in range(n)
        }
        self.link_events: list[LinkEvent] = []
        self.injected: list[float] = []
        self.busy = [dict.fromkeys(STATES[1:], 0.0) for _ in range(boards)]
        # Order keeping: the inferences each board runs, in order, and how far it has admitted.
        self.assigned: list[list[int]] = [[] for _ in range(boards)]
        for replicas in deployment.placement:
            for j, b in enumerate(replicas):
                self.assigned[b] = list(range(j, count, len(replicas)))
        self.admitted = [0] * boards
        self.resolved: list[set[int]] = [set() for _ in range(boards)]
        self.waiting: list[dict[int, Any]] = [{} for _ in range(boards)]
        self.done: dict[int, bool] = {}  # inference -> delivered, until its output leaves
        self.output_s = [NAN] * count
        self.next_out = 0

    def source(self) -> Generator[Any, Any, None]:
        for i in range(self.config.inferences):
            if self.config.interval_s is not None:
                yield self.env.timeout(max(0.0, i * self.config.interval_s - self.env.now))
            b = self.dep.board_of(0, i)
            req = self.rx_slot[b].request()
            yield req
            self.injected.append(self.env.now)
            yield self.inbox[b].put((i, req))

    def board(self, b: int, k: int) -> Generator[Any, Any, None]:
        last = k == len(self.plan.stages) - 1
        while True:
            i, rx_req = yield self.inbox[b].get()
            self.events[i, k]["inference_start_s"] = self.env.now
            self.rx_slot[b].release(rx_req)
            yield self.env.timeout(self.compute_s[k])
            self.events[i, k]["inference_end_s"] = self.env.now
            self.busy[b]["inference"] += self.compute_s[k]
            if last:
                self._finish(i, delivered=True)
            else:
                tx_req = self.tx_slot[b].request()
                yield tx_req
                yield self.outbox[b].put((i, tx_req))

    def sender(self, a: int, k: int) -> Generator[Any, Any, None]:
        size = self.plan.stages[k].outgoing.size_bytes
        window = self.dep.windows[k]
        conditions = {
            pair: LinkConditions(
                rssi_dbm=hop.rssi_dbm,
                window=window,
                mode=self.config.mode,
                relay_rssi_dbm=hop.relay_rssi_dbm,
            )
            for pair, hop in self.dep.hops[k].items()
            if pair[0] == a
        }
        while True:
            i, tx_req = yield self.outbox[a].get()
            b = self.dep.board_of(k + 1, i)
            gate = self._turn(b, i)
            if gate is not None:
                yield gate  # an earlier inference of board b has not been admitted yet
            rx_req = self.rx_slot[b].request()
            self._resolve(b, i)
            yield rx_req
            radios = (0,) if len(self.radios) == 1 else (min(a, b), max(a, b))
            grants = yield from self._take_radios(radios)
            cond = conditions[a, b]
            result = self.link_fit.apply(self._transfer(a, b, size, cond))
            start = self.env.now
            yield self.env.timeout(result.duration_s)
            self._free_radios(radios, grants)
            self.events[i, k].update(send_start_s=start, send_end_s=self.env.now)
            # Only per-ACK links (BLE) send with the controller's window; the others keep theirs.
            adapts = (a, b) in self.controllers and isinstance(self.link, PerAckLink)
            used = self.controllers[a, b].window if adapts else window
            self.link_events.append(
                LinkEvent(i, k + 1, size, cond.rssi_dbm, used, result, a + 1, b + 1)
            )
            self._account_radio(a, b, result)
            self.tx_slot[a].release(tx_req)
            if result.delivered:
                self.events[i, k + 1].update(receive_start_s=start, receive_end_s=self.env.now)
                yield self.inbox[b].put((i, rx_req))
            else:
                self.rx_slot[b].release(rx_req)
                for later in range(k + 2, len(self.plan.stages)):
                    self._resolve(self.dep.board_of(later, i), i)
                self._finish(i, delivered=False)

    def _transfer(self, a: int, b: int, size: int, cond: LinkConditions) -> TransferResult:
        """One tensor from board ``a`` to ``b``, through the link's adaptive controller when on."""
        if not self.config.adaptive_window:
            return self.link.transfer(size, cond, self.rngs[a])
        controller = self.controllers.setdefault((a, b), AdaptiveWindow.for_cadence(cond.window))
        return adaptive_transfer(self.link, size, cond, self.rngs[a], controller)

    def _take_radios(self, radios: tuple[int, ...]) -> Generator[Any, Any, list[Any]]:
        """Get the radios a transfer needs.

        A chain (no replicas) takes them one by one in board order (so two senders never
        deadlock), as the simulator always has. With replicas a receiver serves several senders,
        and holding its radio while one of them is still busy would idle it: the transfer waits
        until all its radios are free and takes them at once (first come, first served among the
        transfers that can start).
        """
        if not self.together:
            grants = []
            for r in radios:
                grants.append(self.radios[r].request())
                yield grants[-1]
            return grants
        if any(self.radio_busy[r] for r in radios):
            ready = self.env.event()
            self.radio_waiters.append((radios, ready))
            yield ready
        else:
            for r in radios:
                self.radio_busy[r] = True
        return []

    def _free_radios(self, radios: tuple[int, ...], grants: list[Any]) -> None:
        if not self.together:
            for r, grant in zip(radios, grants, strict=True):
                self.radios[r].release(grant)
            return
        for r in radios:
            self.radio_busy[r] = False
        for entry in list(self.radio_waiters):
            wanted, ready = entry
            if not any(self.radio_busy[r] for r in wanted):
                for r in wanted:
                    self.radio_busy[r] = True
                self.radio_waiters.remove(entry)
                ready.succeed()

    def _turn(self, b: int, i: int) -> Any:
        """None when inference ``i`` is next on board ``b``, else an event fired when it is."""
        if self._next(b) == i:
            return None
        gate = self.env.event()
        self.waiting[b][i] = gate
        return gate

    def _next(self, b: int) -> int | None:
        """The earliest inference assigned to board ``b`` not yet admitted (or lost before)."""
        order, done = self.assigned[b], self.resolved[b]
        while self.admitted[b] < len(order) and order[self.admitted[b]] in done:
            done.discard(order[self.admitted[b]])
            self.admitted[b] += 1
        return order[self.admitted[b]] if self.admitted[b] < len(order) else None

    def _resolve(self, b: int, i: int) -> None:
        """Inference ``i`` is admitted to (or will never reach) board ``b``: open the next gate."""
        self.resolved[b].add(i)
        following = self._next(b)
        if following in self.waiting[b]:
            self.waiting[b].pop(following).succeed()

    def _finish(self, i: int, *, delivered: bool) -> None:
        """Inference ``i`` is done (or lost): release the results that are next in order."""
        self.done[i] = delivered
        while self.next_out in self.done:
            if self.done.pop(self.next_out):
                self.output_s[self.next_out] = self.env.now
            self.next_out += 1

    def _account_radio(self, a: int, b: int, r: TransferResult) -> None:
        self.busy[a]["radio_tx"] += r.sender_tx_s
        self.busy[a]["radio_rx"] += r.sender_rx_s
        self.busy[b]["radio_tx"] += r.receiver_tx_s
        self.busy[b]["radio_rx"] += r.receiver_rx_s
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
        plan: the stages with compute estimates and outgoing tensor sizes.
        config: transport, protocol, windows, inputs, seed, placement and link conditions.
        backend: the event engine module (:mod:`tinysplit.sim.engine` by default; ``simpy``
            works too).
        link: a link model to use instead of the calibrated one of ``config.transport``.

    Raises:
        ConfigError: unknown transport or profile, bad window, a placement, windows, RSSI or
            positions that do not match the plan's stages and boards, a needed link missing.
    """
    n = len(plan.stages)
    dep = resolve(config, n)
    run = _Run(plan, config, backend or heapq_engine, link, dep)
    run.env.process(run.source())
    for k, replicas in enumerate(dep.placement):
        for b in replicas:
            run.env.process(run.board(b, k))
        if k < n - 1:
            for b in replicas:
                run.env.process(run.sender(b, k))
    run.env.run()
    duration = run.env.now
    power = PowerModel.for_transport(config.transport, dual_core=config.dual_core, wake=config.wake)
    # The SoftAP relays Wi-Fi links between stations; hybrid pairs talk directly (no relay).
    relay = config.transport == "wifi" and config.wake is None
    powered = set(dep.stage_of()) | ({config.ap_board - 1} if relay else set())
    return SimResult(
        config=config,
        plan=plan,
        stage_events=[
            StageEvent(i, k + 1, **fields, board=dep.board_of(k, i) + 1)
            for (i, k), fields in sorted(run.events.items())
        ],
        link_events=run.link_events,
        injected_s=run.injected,
        duration_s=duration,
        setup_s=[
            max(run.link.setup_s(LinkConditions(rssi_dbm=h.rssi_dbm)) for h in hops.values())
            for hops in dep.hops
        ],
        rssi_dbm=[pair_mean([h.rssi_dbm for h in hops.values()]) for hops in dep.hops],
        energy_j=[
            power.energy_j(duration_s=duration, busy_s=busy)
            if b in powered
            else dict.fromkeys(STATES, 0.0)
            for b, busy in enumerate(run.busy)
        ],
        output_s=run.output_s,
        placement=dep.placement,
    )


def link_hops(config: PipelineConfig, boards: int) -> tuple[list[float], list[float | None]]:
    """RSSI of each stage link k -> k+1 as the simulator sees it, and of its relay hop.

    ``boards`` is the plan's number of stages. The second list is the RSSI of the hop through the
    Wi-Fi SoftAP when neither end of the link is the AP (None otherwise, and always None on other
    transports). With replicas, the link between the first replicas of the two stages.

    Raises:
        ConfigError: RSSI values, positions or a placement that do not match ``boards``.
    """
    dep = resolve(config, boards)
    first = [hops[dep.placement[k][0], dep.placement[k + 1][0]] for k, hops in enumerate(dep.hops)]
    return [h.rssi_dbm for h in first], [h.relay_rssi_dbm for h in first]
