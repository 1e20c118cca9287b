"""Steady-state period (seconds per inference) of a deployment: the cost placement minimises.

A deployment runs stage ``s`` of a plan on the boards ``placement[s]`` (``r_s`` replicas;
inference ``i`` runs on replica ``i mod r_s``) and sends each boundary's tensor with its window.
``T(a->b)`` is the expected duration of one tensor transfer from board ``a`` to board ``b``
(:func:`tinysplit.links.estimate.link_times_s` at the link's RSSI). Round-robin dispatch sends
inference ``i`` from replica ``i mod r_{s}`` to replica ``i mod r_{s+1}``, so the fraction of
inferences crossing the pair (replica ``j`` of stage s, replica ``k`` of stage s+1) is
``w_s[j, k]`` = (number of ``i`` in one cycle of ``lcm(r_s, r_{s+1})`` with ``i = j mod r_s``
and ``i = k mod r_{s+1}``) / ``lcm``. With coprime replica counts every pair gets
``1 / (r_s r_{s+1})``; with equal counts replica ``j`` only ever talks to replica ``j``.

Per inference, a board of stage ``s``:

* computes ``compute_s[s] / r_s`` (its share of the inferences);
* keeps its radio busy ``sum_j w_{s-1}[j, k] T(a_j -> b_k) + sum_l w_s[k, l] T(b_k -> c_l)``
  (receiving its share from stage ``s-1``, sending its share to stage ``s+1``).

**BLE** (each board's radio serves one transfer at a time, computing overlaps the radio):
``period = max over boards of max(compute share, radio share)``.

**Wi-Fi / ESP-NOW** (one shared channel, one transfer on the air at a time):
``period = max(max compute share, sum over boundaries of sum_pairs w T)``.

Wi-Fi links where neither end is the SoftAP board (``ap_board``, 0-based physical board) are
relayed: the hops are ``a -> AP`` and ``AP -> b``, as the simulator does. Compute times are the
plan's estimates with the simulator's corrections (dual core, a user calibration in force).
:func:`period_breakdown` gives the per-board shares for reports and the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError, PartitionError
from tinysplit.partition.deployment import PlacementT, check_boards

if TYPE_CHECKING:
    from tinysplit.links.base import Mode
    from tinysplit.partition.plan import Plan
    from tinysplit.partition.rssi import RssiMatrix

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Transports whose boards share one radio channel.
SHARED_CHANNEL = frozenset({"wifi", "espnow"})


@lru_cache(maxsize=256)
def pair_weights(r_from: int, r_to: int) -> FloatArray:
    """Fraction of inferences sent from replica ``j`` (of ``r_from``) to replica ``k`` (of
    ``r_to``) under round-robin dispatch; a read-only ``r_from x r_to`` array summing to 1."""
    if r_from < 1 or r_to < 1:
        raise ConfigError("replica counts must be >= 1")
    cycle = math.lcm(r_from, r_to)
    i = np.arange(cycle)
    w = np.zeros((r_from, r_to))
    np.add.at(w, (i % r_from, i % r_to), 1.0 / cycle)
    w.setflags(write=False)
    return w


def compute_times_s(plan: Plan, *, dual_core: bool = False) -> FloatArray:
    """Each stage's compute time per inference on one board (s), as the simulator runs it."""
    from tinysplit.links.calibration import active_calibration
    from tinysplit.partition.cost import load_compute_model

    speedup = load_compute_model().dual_core_speedup if dual_core else 1.0
    scale = active_calibration().compute_scale
    return np.array([s.estimated_compute_s / speedup * scale for s in plan.stages])


def boundary_windows(windows: int | Sequence[int], boundaries: int) -> tuple[int, ...]:
    """One window per stage boundary from a single window or a per-boundary sequence.

    Raises:
        ConfigError: a sequence of the wrong length or a window that is not an integer >= 1.
    """
    if isinstance(windows, int) and not isinstance(windows, bool):
        out = (windows,) * boundaries
    else:
        out = tuple(windows)  # type: ignore[arg-type]
        if len(out) != boundaries:
            raise ConfigError(f"{len(out)} windows for {boundaries} stage boundaries")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in out):
        raise ConfigError(f"windows must be integers >= 1, got {list(out)}")
    return out


def boundary_times_s(
    payload_bytes: Sequence[int],
    rssi: RssiMatrix | npt.ArrayLike,
    *,
    transport: str,
    profile: str | None = None,
    windows: int | Sequence[int] = 6,
    mode: Mode | str = "reliable",
    ap_board: int = 0,
) -> FloatArray:
    """``T[s, a, b]``: seconds to send boundary ``s``'s tensor from board ``a`` to board ``b``.

    Args:
        payload_bytes: the tensor of each stage boundary, bytes.
        rssi: the boards' RSSI (an :class:`RssiMatrix` or a ``B x B`` array, NaN = no link).
        transport: ``ble``, ``wifi`` or ``espnow``.
        profile: link calibration profile (the transport's default when None).
        windows: one window for every boundary, or one per boundary.
        mode: ``reliable`` or ``paper``.
        ap_board: Wi-Fi only: the 0-based board running the SoftAP.

    Returns:
        A ``(boundaries, B, B)`` array; ``inf`` where a link is missing or cannot carry the
        tensor, and on the diagonal.

    Raises:
        ConfigError: bad transport, profile, windows, mode, sizes or AP board.
    """
    from tinysplit.links.estimate import link_times_s

    matrix = _matrix(rssi)
    boards = matrix.shape[0]
    wins = boundary_windows(windows, len(payload_bytes))
    relay: FloatArray | None = None
    first = matrix
    if transport == "wifi":
        if not 0 <= ap_board < boards:
            raise ConfigError(f"ap_board must be within 0..{boards - 1}, got {ap_board}")
        # Neither end the AP: the first hop is a -> AP, the second AP -> b.
        via = np.ones((boards, boards), dtype=bool)
        via[ap_board, :] = via[:, ap_board] = False
        first = np.where(via, matrix[:, [ap_board]], matrix)
        relay = np.where(via, matrix[[ap_board], :], math.nan)
    out = np.empty((len(payload_bytes), boards, boards))
    for s, (size, window) in enumerate(zip(payload_bytes, wins, strict=True)):
        out[s] = link_times_s(
            transport,
            int(size),
            first,
            profile=profile,
            window=window,
            mode=mode,
            relay_rssi_dbm=relay,
        )
        np.fill_diagonal(out[s], math.inf)
    return out


def _matrix(rssi: RssiMatrix | npt.ArrayLike) -> FloatArray:
    from tinysplit.partition.rssi import RssiMatrix

    matrix = rssi.array if isinstance(rssi, RssiMatrix) else np.asarray(rssi, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise ConfigError(f"the RSSI matrix must be square (B x B), got shape {matrix.shape}")
    return matrix


def check_placement(placement: Sequence[Sequence[int]], stages: int, boards: int) -> PlacementT:
    """A placement as tuples, checked against ``stages`` stages on ``boards`` boards.

    Raises:
        PartitionError: wrong number of stages, or what
            :func:`~tinysplit.partition.deployment.check_boards` refuses.
    """
    out = check_boards(placement, boards, error=PartitionError)
    if len(out) != stages:
        raise PartitionError(f"the placement has {len(out)} stages, the plan has {stages}")
    return out


def slot_loads(
    compute_s: FloatArray,
    times_s: FloatArray,
    replicas: Sequence[int],
    assign: IntArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-board shares of a batch of assignments (vectorised over the batch).

    A *slot* is one replica of one stage, in stage order (stage 0's replicas, then stage 1's,
    ...); ``assign[n, slot]`` is the board of that slot in assignment ``n``.

    Args:
        compute_s: per stage, compute seconds per inference on one board.
        times_s: ``(stages - 1, B, B)`` transfer seconds (:func:`boundary_times_s`).
        replicas: boards per stage.
        assign: ``(N, slots)`` boards.

    Returns:
        ``compute`` (slots,) compute share, ``receive`` and ``send`` (N, slots) radio shares
        per inference, and ``channel`` (N, boundaries): each boundary's expected airtime.
    """
    starts = np.concatenate([[0], np.cumsum(replicas)])
    n = assign.shape[0]
    slots = int(starts[-1])
    compute = np.concatenate([np.full(r, compute_s[s] / r) for s, r in enumerate(replicas)])
    receive = np.zeros((n, slots))
    send = np.zeros((n, slots))
    channel = np.zeros((n, len(replicas) - 1))
    for s in range(len(replicas) - 1):
        a = assign[:, starts[s] : starts[s + 1]]
        b = assign[:, starts[s + 1] : starts[s + 2]]
        w = pair_weights(replicas[s], replicas[s + 1])
        t = times_s[s][a[:, :, None], b[:, None, :]]  # (N, r_s, r_s+1)
        with np.errstate(invalid="ignore"):
            cost = np.where(w > 0, t * w, 0.0)
        send[:, starts[s] : starts[s + 1]] = cost.sum(axis=2)
        receive[:, starts[s + 1] : starts[s + 2]] = cost.sum(axis=1)
        channel[:, s] = cost.sum(axis=(1, 2))
    return compute, receive, send, channel


def batch_period_s(
    compute_s: FloatArray,
    times_s: FloatArray,
    replicas: Sequence[int],
    assign: IntArray,
    *,
    shared_channel: bool,
) -> FloatArray:
    """Period of each assignment of a batch (see :func:`slot_loads` for the arguments)."""
    compute, receive, send, channel = slot_loads(compute_s, times_s, replicas, assign)
    busy = channel.sum(axis=1) if shared_channel else (receive + send).max(axis=1)
    return np.asarray(np.maximum(compute.max(), busy), dtype=np.float64)


def placement_slots(placement: PlacementT) -> IntArray:
    """The placement as one row of slot boards (stage order)."""
    return np.array([[b for group in placement for b in group]], dtype=np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardShare:
    """One board's share of the work per inference.

    Attributes:
        board: 0-based physical board.
        name: its name.
        stage: 1-based stage it runs.
        replica: 0-based replica index within the stage.
        compute_s: compute seconds per inference (its share).
        receive_s: radio seconds per inference receiving its inputs.
        send_s: radio seconds per inference sending its outputs.
    """

    board: int
    name: str
    stage: int
    replica: int
    compute_s: float
    receive_s: float
    send_s: float

    @property
    def radio_s(self) -> float:
        """Radio seconds per inference, both directions."""
        return self.receive_s + self.send_s

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "board": self.board,
            "name": self.name,
            "stage": self.stage,
            "replica": self.replica,
            "compute_s": self.compute_s,
            "receive_s": self.receive_s,
            "send_s": self.send_s,
            "radio_s": self.radio_s,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodBreakdown:
    """Why a deployment has its period.

    Attributes:
        period_s: steady-state seconds per inference.
        transport: the transport.
        shared_channel: the boards share one channel (Wi-Fi, ESP-NOW).
        boards: every placed board's share, in stage order.
        boundary_s: per stage boundary, its expected airtime per inference.
        bottleneck: what sets the period, in words.
    """

    period_s: float
    transport: str
    shared_channel: bool
    boards: tuple[BoardShare, ...]
    boundary_s: tuple[float, ...]
    bottleneck: str

    @property
    def throughput_per_s(self) -> float:
        """Inferences per second (``1 / period_s``; 0 when the period is infinite)."""
        return 0.0 if math.isinf(self.period_s) else 1.0 / self.period_s

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (an infinite time is ``null``)."""
        return {
            "period_s": _finite(self.period_s),
            "throughput_per_s": self.throughput_per_s,
            "transport": self.transport,
            "shared_channel": self.shared_channel,
            "boards": [{k: _finite(v) for k, v in b.to_dict().items()} for b in self.boards],
            "boundary_s": [_finite(v) for v in self.boundary_s],
            "bottleneck": self.bottleneck,
        }


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and math.isinf(value) else value


def breakdown_from_times(
    compute_s: FloatArray,
    times_s: FloatArray,
    placement: PlacementT,
    *,
    transport: str,
    names: Sequence[str] | None = None,
) -> PeriodBreakdown:
    """:class:`PeriodBreakdown` of one placement from precomputed times."""
    replicas = [len(g) for g in placement]
    compute, receive, send, channel = slot_loads(
        compute_s, times_s, replicas, placement_slots(placement)
    )
    shared = transport in SHARED_CHANNEL
    shares = []
    slot = 0
    for s, group in enumerate(placement):
        for k, board in enumerate(group):
            shares.append(
                BoardShare(
                    board=board,
                    name=names[board] if names is not None else f"b{board}",
                    stage=s + 1,
                    replica=k,
                    compute_s=float(compute[slot]),
                    receive_s=float(receive[0, slot]),
                    send_s=float(send[0, slot]),
                )
            )
            slot += 1
    top_compute = max(shares, key=lambda b: b.compute_s)
    if shared:
        airtime = float(channel[0].sum())
        period = max(top_compute.compute_s, airtime)
        why = (
            f"the shared channel ({airtime:.4g} s of airtime per inference)"
            if airtime >= top_compute.compute_s
            else f"compute on {top_compute.name} (stage {top_compute.stage})"
        )
    else:
        top_radio = max(shares, key=lambda b: b.radio_s)
        period = max(top_compute.compute_s, top_radio.radio_s)
        why = (
            f"the radio of {top_radio.name} (stage {top_radio.stage})"
            if top_radio.radio_s >= top_compute.compute_s
            else f"compute on {top_compute.name} (stage {top_compute.stage})"
        )
    if math.isinf(period):
        why = "a link that cannot carry its tensor"
    return PeriodBreakdown(
        period_s=float(period),
        transport=transport,
        shared_channel=shared,
        boards=tuple(shares),
        boundary_s=tuple(float(v) for v in channel[0]),
        bottleneck=why,
    )


def period_breakdown(
    plan: Plan,
    placement: Sequence[Sequence[int]],
    rssi: RssiMatrix | npt.ArrayLike,
    *,
    transport: str,
    profile: str | None = None,
    windows: int | Sequence[int] = 6,
    mode: Mode | str = "reliable",
    ap_board: int = 0,
    dual_core: bool = False,
) -> PeriodBreakdown:
    """Per-board shares and the period of ``plan`` deployed as ``placement``.

    Args:
        plan: the stages (compute estimates, outgoing tensor sizes).
        placement: per stage, the 0-based boards running it (replicas, round-robin).
        rssi: the boards' RSSI (an :class:`RssiMatrix` or a ``B x B`` array in dBm).
        transport: ``ble``, ``wifi`` or ``espnow``.
        profile: link calibration profile (the transport's default when None).
        windows: one window, or one per stage boundary.
        mode: ``reliable`` or ``paper``.
        ap_board: Wi-Fi only: the 0-based board running the SoftAP.
        dual_core: ESP-DL runs on both cores (as ``PipelineConfig.dual_core``).

    Raises:
        ConfigError: bad transport, profile, windows or RSSI matrix.
        PartitionError: a placement that does not fit the plan or the boards.
    """
    from tinysplit.partition.rssi import RssiMatrix

    matrix = _matrix(rssi)
    groups = check_placement(placement, len(plan.stages), matrix.shape[0])
    sizes = [s.outgoing.size_bytes for s in plan.stages[:-1]]
    times = boundary_times_s(
        sizes,
        matrix,
        transport=transport,
        profile=profile,
        windows=windows,
        mode=mode,
        ap_board=ap_board,
    )
    names = rssi.names if isinstance(rssi, RssiMatrix) else None
    return breakdown_from_times(
        compute_times_s(plan, dual_core=dual_core), times, groups, transport=transport, names=names
    )


def period_s(
    plan: Plan,
    placement: Sequence[Sequence[int]],
    rssi: RssiMatrix | npt.ArrayLike,
    *,
    transport: str,
    profile: str | None = None,
    windows: int | Sequence[int] = 6,
    mode: Mode | str = "reliable",
    ap_board: int = 0,
    dual_core: bool = False,
) -> float:
    """Steady-state seconds per inference of ``plan`` deployed as ``placement``
    (``math.inf`` when a needed link cannot carry its tensor); arguments as
    :func:`period_breakdown`."""
    return period_breakdown(
        plan,
        placement,
        rssi,
        transport=transport,
        profile=profile,
        windows=windows,
        mode=mode,
        ap_board=ap_board,
        dual_core=dual_core,
    ).period_s
