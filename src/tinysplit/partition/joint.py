"""Joint optimisation: cuts, placement, per-link windows and replicas for one board set.

``tinysplit partition --optimize placement,window,replication`` lands here. The pieces are exact
on their own (the cut dynamic program, the replica dynamic program, the placement search), but
they price links differently: the cut and replica programs charge every tensor at one link rate,
while placement sees each pair of boards at its own RSSI. :func:`optimize` therefore searches in
three steps and keeps the deployment with the smallest modelled period
(:mod:`tinysplit.partition.period`):

1. **Candidates for the cuts** (and, with ``replication``, the replica counts): the cut / replica
   program run at a few link rates: the link profile's sourced goodput and the goodput the RSSI
   matrix's best, median and worst links give a tensor of the model (:func:`candidate_rates`).
   Fixed cuts (``cuts=`` or the ``paper`` / ``greedy`` strategies) give one candidate.
2. **Placement** of every candidate on the boards (``placement``), or stage k on board k and its
   replicas on the next boards (:func:`~tinysplit.partition.placement.identity_placement`).
3. **Windows** (``window``): for each stage boundary of the placed candidate, the window among
   :data:`WINDOW_CHOICES` with the smallest expected transfer time over its pairs of boards; the
   candidate is then placed again with those windows, until the windows stop changing.

The result is a :class:`~tinysplit.partition.plan.Plan` whose ``deployment`` records the boards,
windows, RSSI matrix and modelled period.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Collection, Sequence

import numpy as np

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.links.base import Mode
from tinysplit.model.graph import Graph
from tinysplit.partition.deployment import OPTIMIZATIONS, Deployment
from tinysplit.partition.partitioners import partition, plan_from_cuts
from tinysplit.partition.period import (
    SHARED_CHANNEL,
    boundary_times_s,
    breakdown_from_times,
    compute_times_s,
    pair_weights,
)
from tinysplit.partition.placement import identity_placement, solve
from tinysplit.partition.plan import Plan
from tinysplit.partition.replication import replicate_plan, stage_energy_j
from tinysplit.partition.rssi import RssiMatrix
from tinysplit.protocol.frames import MAX_RELIABLE_WINDOW

log = logging.getLogger(__name__)

#: Windows the ``window`` optimisation tries per stage boundary (the firmware's range, halving).
WINDOW_CHOICES = (1, 2, 4, 8, MAX_RELIABLE_WINDOW)
#: Rounds of (windows given placement, placement given windows) at most.
MAX_ROUNDS = 3
#: Tensor size used to turn link times into candidate link rates, bytes (the paper model's
#: middle-sized cut tensor: 50,176 B).
RATE_PROBE_BYTES = 50_176
#: With ``replication``: stage counts tried beyond the fewest that fit.
EXTRA_STAGES = 2
#: Most replica vectors priced one by one per cut candidate (beyond: the replica program's).
MAX_REPLICA_VECTORS = 300


def parse_optimizations(text: str) -> tuple[str, ...]:
    """``"placement,window"`` -> ``("placement", "window")``, in :data:`OPTIMIZATIONS` order.

    Raises:
        ConfigError: an empty list or an unknown name.
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in OPTIMIZATIONS]
    if unknown or not names:
        raise ConfigError(
            f"--optimize takes a comma-separated list of {', '.join(OPTIMIZATIONS)}"
            + (f", got {unknown[0]!r}" if unknown else "")
        )
    return tuple(o for o in OPTIMIZATIONS if o in names)


def candidate_rates(
    rssi: RssiMatrix,
    *,
    transport: str,
    profile: str | None,
    window: int,
    mode: Mode | str,
) -> list[float]:
    """Link rates (bit/s) to price cuts at: the sourced goodput and the matrix's links' goodput.

    The links' goodput is that of a :data:`RATE_PROBE_BYTES` tensor over the best, median and
    worst usable link of the matrix (what a placement can hope for, typically get, and may be
    forced to use).
    """
    from tinysplit.links.calibration import sourced_goodput_bps
    from tinysplit.links.estimate import link_times_s

    rates = {round(sourced_goodput_bps(transport, profile))}
    links = rssi.array[np.triu_indices(rssi.boards, k=1)]
    links = links[~np.isnan(links)]
    if links.size:
        picks = np.percentile(links, [100.0, 50.0, 0.0], method="nearest")
        times = link_times_s(
            transport, RATE_PROBE_BYTES, picks, profile=profile, window=window, mode=mode
        )
        found = RATE_PROBE_BYTES * 8.0 / times[np.isfinite(times) & (times > 0)]
        rates |= {round(r) for r in found if r >= 1.0}
    return sorted(float(r) for r in rates)


def optimize(
    graph: Graph,
    rssi: RssiMatrix,
    *,
    optimizations: Collection[str],
    transport: str = "ble",
    device_profile: str = "paper",
    link_profile: str | None = None,
    mode: Mode | str = "reliable",
    window: int = 6,
    strategy: str = "optimal",
    devices: int | None = None,
    cuts: Sequence[int] | None = None,
    replicate_for: str = "throughput",
    ap_board: int = 0,
    dual_core: bool = False,
) -> Plan:
    """Choose cuts, placement, windows and replicas together for the boards of ``rssi``.

    Args:
        graph: the model.
        rssi: the boards and their pairwise RSSI (its size is the number of boards).
        optimizations: any of :data:`OPTIMIZATIONS`; the others are kept as given (stage k on
            board k, ``window`` on every link, one board per stage).
        transport: ``ble``, ``wifi`` or ``espnow``.
        device_profile: the boards' memory profile.
        link_profile: link calibration profile (the transport's default when None).
        mode: protocol mode the links run.
        window: the window of every link when ``window`` is not optimised (and the start).
        strategy: how the cuts are chosen: ``optimal`` searches them (with ``replication``,
            together with the replicas); ``paper`` and ``greedy`` fix them.
        devices: stages without ``replication`` (None: the fewest that fit); with it, the
            replica program chooses the number of stages itself.
        cuts: fixed cuts (1-based last layer of each stage but the final one), instead of
            ``strategy``.
        replicate_for: ``throughput`` or ``energy`` (see :mod:`tinysplit.partition.replication`).
        ap_board: Wi-Fi only: the 0-based board running the SoftAP.
        dual_core: ESP-DL runs on both cores.

    Raises:
        ConfigError: unknown optimisation, objective, transport, profile or bad window.
        PartitionError: more stages than boards, replication without a spare board, or no
            deployment whose links can all carry their tensors.
    """
    chosen = tuple(o for o in OPTIMIZATIONS if o in set(optimizations))
    if len(chosen) != len(set(optimizations)):
        unknown = sorted(set(optimizations) - set(OPTIMIZATIONS))
        raise ConfigError(
            f"unknown optimization {unknown[0]!r} (valid: {', '.join(OPTIMIZATIONS)})"
        )
    mode = Mode(mode)
    if mode is Mode.PAPER and "window" in chosen:
        raise ConfigError(
            "the window optimisation needs reliable mode: paper mode loses tensors at any window"
        )
    rates = candidate_rates(
        rssi, transport=transport, profile=link_profile, window=window, mode=mode
    )
    plans = _cut_candidates(
        graph,
        rssi.boards,
        rates,
        replicated="replication" in chosen,
        transport=transport,
        device_profile=device_profile,
        strategy=strategy,
        devices=devices,
        cuts=cuts,
    )
    if "replication" in chosen and min(p.devices for p in plans) >= rssi.boards:
        stages = min(p.devices for p in plans)
        raise PartitionError(
            f"replication needs a spare board: {stages} stages on {rssi.boards} boards "
            "(add boards to the RSSI matrix, or fewer --devices)"
        )
    best: tuple[tuple[float, float], Plan, Deployment] | None = None
    for plan in plans:
        for replicas in replica_candidates(
            plan, rssi.boards, replicated="replication" in chosen, replicate_for=replicate_for
        ):
            deployment = _deploy(
                plan,
                replicas,
                rssi,
                chosen,
                transport=transport,
                profile=link_profile,
                mode=mode,
                window=window,
                ap_board=ap_board,
                dual_core=dual_core,
            )
            if deployment is None:
                continue
            log.debug(
                "cuts %s boards %s: %.4g s", plan.cuts, deployment.boards, deployment.period_s
            )
            rank = _rank(plan, deployment, replicate_for)
            if best is None or rank < best[0]:
                best = (rank, plan, deployment)
    if best is None:
        relay = (
            f"; Wi-Fi stations talk through the SoftAP ({rssi.names[ap_board]}), so its links "
            "to the others must be in the matrix"
            if transport == "wifi"
            else ""
        )
        raise PartitionError(
            f"no deployment on these {rssi.boards} boards has a usable link at every stage "
            f"boundary (missing or too weak links){relay}"
        )
    return dataclasses.replace(best[1], deployment=best[2])


def _rank(plan: Plan, deployment: Deployment, replicate_for: str) -> tuple[float, float]:
    """Sort key of a deployment: its period; with ``energy``, first the energy per inference
    of its hungriest board (``e_s / r_s``, :func:`~tinysplit.partition.replication.stage_energy_j`),
    so that the board that would die first lasts as long as it can. Rounded to 1e-9 so that
    ties fall to the next key."""
    period = round(deployment.period_s, 9)
    if replicate_for != "energy":
        return (period, 0.0)
    per_board = [e / r for e, r in zip(stage_energy_j(plan), deployment.replicas, strict=True)]
    return (round(max(per_board), 9), period)


def _cut_candidates(
    graph: Graph,
    boards: int,
    rates: Sequence[float],
    *,
    replicated: bool,
    transport: str,
    device_profile: str,
    strategy: str,
    devices: int | None,
    cuts: Sequence[int] | None,
) -> list[Plan]:
    """Distinct cuts to place: one plan per candidate link rate and stage count.

    With ``replication`` and no fixed stage count, every stage count from the fewest that fit
    to :data:`EXTRA_STAGES` more (at most ``boards``) is a candidate: fewer stages leave boards
    for replicas.
    """
    if cuts is not None:
        return [plan_from_cuts(graph, cuts, profile=device_profile, transport=transport)]
    counts: list[int | None] = [devices]
    if replicated and devices is None:
        fewest = partition(graph, profile=device_profile, transport=transport).devices
        counts = list(range(fewest, min(boards, fewest + EXTRA_STAGES) + 1))
    out: dict[tuple[int, ...], Plan] = {}
    for rate in rates if strategy == "optimal" else rates[:1]:
        for count in counts:
            try:
                plan = partition(
                    graph,
                    strategy=strategy,
                    devices=count,
                    profile=device_profile,
                    transport=transport,
                    link_rate_bps=rate,
                )
            except PartitionError:
                if count is None or count == devices:
                    raise
                continue
            out.setdefault(plan.cuts, plan)
    plans = list(out.values())
    if min(p.devices for p in plans) > boards:
        raise PartitionError(
            f"{plans[0].devices} stages need at least {plans[0].devices} boards, the RSSI "
            f"matrix has {boards}"
        )
    return [p for p in plans if p.devices <= boards]


def replica_candidates(
    plan: Plan, boards: int, *, replicated: bool, replicate_for: str
) -> list[tuple[int, ...]]:
    """Replica counts to place for ``plan`` on at most ``boards`` boards.

    Without ``replication``: one board per stage. For ``throughput``: every vector of counts
    >= 1 using at most ``boards`` boards when there are at most :data:`MAX_REPLICA_VECTORS`
    of them (the placement search then prices each exactly), else the replica program's choice.
    For ``energy``: the replica program's energy-balanced counts.

    """
    stages = plan.devices
    spare = boards - stages
    if not replicated or spare == 0:
        return [(1,) * stages]
    # BLE boards receive and send on one radio: price stages as the simulator runs them.
    stage_time = "radio" if plan.transport == "ble" else "send"
    suggested = replicate_plan(
        plan, boards, objective=replicate_for, stage_time=stage_time
    ).replicas
    if replicate_for != "throughput" or math.comb(spare + stages, stages) > MAX_REPLICA_VECTORS:
        return [suggested]
    # Vectors r >= 1 with sum(r) <= boards: extra replicas e >= 0 with sum(e) <= spare, as
    # stars and bars over stages + 1 bins (the last bin: boards left unused).
    vectors = []
    for bars in itertools.combinations(range(spare + stages), stages):
        extra = np.diff(np.array([-1, *bars])) - 1
        vectors.append(tuple(int(e) + 1 for e in extra))
    return vectors


def _deploy(
    plan: Plan,
    replicas: tuple[int, ...],
    rssi: RssiMatrix,
    chosen: tuple[str, ...],
    *,
    transport: str,
    profile: str | None,
    mode: Mode,
    window: int,
    ap_board: int,
    dual_core: bool,
) -> Deployment | None:
    """Place ``plan`` with ``replicas`` and choose its windows; None when no placement works."""
    sizes = [s.outgoing.size_bytes for s in plan.stages[:-1]]
    compute = compute_times_s(plan, dual_core=dual_core)
    shared = transport in SHARED_CHANNEL

    def times(windows: tuple[int, ...]) -> np.ndarray:
        return boundary_times_s(
            sizes,
            rssi,
            transport=transport,
            profile=profile,
            windows=windows,
            mode=mode,
            ap_board=ap_board,
        )

    windows = (window,) * len(sizes)
    chain = identity_placement(len(replicas), replicas)
    boards = chain
    if sum(replicas) > rssi.boards:
        return None
    for _ in range(MAX_ROUNDS):
        cost = times(windows)
        if "placement" in chosen:
            try:
                found = solve(compute, cost, replicas, shared_channel=shared)
            except PartitionError:
                return None
            # Boards move only for a modelled gain: ties keep stage k on board k.
            stay = breakdown_from_times(compute, cost, chain, transport=transport).period_s
            boards = found.boards if found.period_s < stay * (1.0 - 1e-9) else chain
        if "window" not in chosen:
            break
        better = _best_windows(windows, boards, sizes, rssi, transport, profile, mode, ap_board)
        if better == windows:
            break
        windows = better
    period = breakdown_from_times(compute, times(windows), boards, transport=transport).period_s
    if not math.isfinite(period):
        return None
    return Deployment(
        boards=boards,
        board_names=rssi.names,
        rssi_dbm=rssi.dbm,
        windows=windows,
        period_s=period,
        optimized=chosen,
    )


def _best_windows(
    current: tuple[int, ...],
    boards: tuple[tuple[int, ...], ...],
    sizes: Sequence[int],
    rssi: RssiMatrix,
    transport: str,
    profile: str | None,
    mode: Mode,
    ap_board: int,
) -> tuple[int, ...]:
    """Per boundary, the window of :data:`WINDOW_CHOICES` with the least pair-weighted time
    (the ``current`` one on ties: a larger window only costs receive buffers)."""
    out = []
    for s, size in enumerate(sizes):
        weights = pair_weights(len(boards[s]), len(boards[s + 1]))
        senders, receivers = np.array(boards[s]), np.array(boards[s + 1])
        best_w, best_t = current[s], math.inf
        for w in (current[s], *WINDOW_CHOICES):
            t = boundary_times_s(
                [size], rssi, transport=transport, profile=profile, windows=w, mode=mode,
                ap_board=ap_board,
            )[0][senders[:, None], receivers[None, :]]  # fmt: skip
            with np.errstate(invalid="ignore"):
                total = float(np.where(weights > 0, t * weights, 0.0).sum())
            if total < best_t - 1e-12:
                best_w, best_t = w, total
        out.append(best_w)
    return tuple(out)
