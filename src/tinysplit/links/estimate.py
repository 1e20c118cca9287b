"""Expected tensor transfer time over one link, fast enough for placement searches.

The placement search prices every ordered pair of boards at every stage boundary, so it cannot run
the link models for each candidate. Instead, for one (transport, profile, window, mode, payload)
the real link model (:func:`tinysplit.links.make_link`) sends the tensor :data:`SEEDS` times with
fixed seeds at every RSSI of :data:`GRID_DBM`; the mean duration is stored once (``lru_cache``)
and looked up by interpolating ``log(duration)`` linearly in RSSI. The table is made monotone
(a weaker signal is never faster) before interpolation.

A link that cannot carry the tensor costs ``math.inf``: an RSSI at which the BLE model holds no
connection, a paper-mode link that lost the tensor in every seeded transfer, an RSSI below the
grid (:data:`GRID_DBM` starts where every model is already dead or minutes per tensor), or NaN
(the RSSI matrix's "no link"). In paper mode a transfer can fail; the time charged is the mean
duration divided by the fraction delivered (the cost of one *delivered* tensor), so lossy links
look as bad as they are. A user calibration in force (``TINYSPLIT_CALIBRATION``) corrects the
result exactly as the simulator corrects every transfer.

Wi-Fi: when neither end of a link is the SoftAP, frames cross the air twice (sender -> AP ->
receiver). ``relay_rssi_dbm`` gives the second hop; the time is the mean of the relayed tables at
each hop's RSSI (exact when both hops are equal, as the simulator assumes for measured per-link
RSSI; each hop's airtime adds up on the shared channel, which makes the mean a close estimate
otherwise: see ``tests/links/test_estimate.py``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError
from tinysplit.links.base import LinkConditions, LinkModel, Mode, Transport
from tinysplit.links.calibration import active_calibration, default_profile

FloatArray = npt.NDArray[np.float64]

#: RSSI grid of the precomputed tables, dBm: below -110 dBm no link model carries a tensor in
#: useful time; above -20 dBm every model is flat (values there are clamped to the top).
GRID_DBM: FloatArray = np.arange(-110.0, -18.0, 2.0)
#: Seeded transfers averaged per grid point.
SEEDS = 3
#: Shortest duration stored, seconds (keeps the logarithm finite).
_MIN_S = 1e-9


def link_time_s(
    transport: str,
    payload_bytes: int,
    rssi_dbm: float,
    *,
    profile: str | None = None,
    window: int = 6,
    mode: Mode | str = "reliable",
    relay_rssi_dbm: float | None = None,
) -> float:
    """Expected duration of one tensor transfer over one link, seconds.

    Args:
        transport: ``ble``, ``wifi`` or ``espnow``.
        payload_bytes: tensor size, bytes (>= 1).
        rssi_dbm: the link's RSSI, dBm (NaN: no link).
        profile: link calibration profile (the transport's default when None).
        window: application window (frames per acknowledgment).
        mode: ``reliable`` or ``paper``.
        relay_rssi_dbm: Wi-Fi only: RSSI of the second hop through the SoftAP (None when one end
            is the AP).

    Returns:
        Seconds per delivered tensor; ``math.inf`` when the link cannot carry it.

    Raises:
        ConfigError: unknown transport or profile, bad window, mode or payload, an RSSI outside
            -130..20 dBm, or a relay hop on another transport than Wi-Fi.
    """
    rssi = np.array([rssi_dbm], dtype=np.float64)
    relay = None if relay_rssi_dbm is None else np.array([relay_rssi_dbm], dtype=np.float64)
    out = link_times_s(
        transport,
        payload_bytes,
        rssi,
        profile=profile,
        window=window,
        mode=mode,
        relay_rssi_dbm=relay,
    )
    return float(out[0])


def link_times_s(
    transport: str,
    payload_bytes: int,
    rssi_dbm: npt.ArrayLike,
    *,
    profile: str | None = None,
    window: int = 6,
    mode: Mode | str = "reliable",
    relay_rssi_dbm: npt.ArrayLike | None = None,
) -> FloatArray:
    """Vectorised :func:`link_time_s` over an array of RSSI values (any shape; NaN -> inf).

    ``relay_rssi_dbm`` (Wi-Fi), when given, has the shape of ``rssi_dbm``; its NaN entries mean
    "no relay" (one end is the AP) for that link.

    Raises:
        ConfigError: as :func:`link_time_s`.
    """
    kind, prof, mode_ = _normalise(transport, profile, window, mode)
    if isinstance(payload_bytes, bool) or not isinstance(payload_bytes, int | np.integer):
        raise ConfigError(f"payload_bytes must be an integer, got {payload_bytes!r}")
    if payload_bytes < 1:
        raise ConfigError(f"payload_bytes must be >= 1, got {payload_bytes}")
    rssi = _checked_rssi(rssi_dbm, "rssi_dbm")
    direct = _table(kind.value, prof, window, mode_.value, int(payload_bytes), False)
    if relay_rssi_dbm is None:
        raw = _lookup(direct, rssi)
    else:
        if kind is not Transport.WIFI:
            raise ConfigError(f"relay_rssi_dbm applies to wifi only, not {kind.value}")
        relay = _checked_rssi(relay_rssi_dbm, "relay_rssi_dbm")
        if relay.shape != rssi.shape:
            raise ConfigError("relay_rssi_dbm must have the shape of rssi_dbm")
        relayed = _table(kind.value, prof, window, mode_.value, int(payload_bytes), True)
        hop = ~np.isnan(relay)
        # NaN RSSI on the first hop means no link; it must stay inf whatever the relay says.
        both = 0.5 * (_lookup(relayed, rssi) + _lookup(relayed, np.where(hop, relay, -200.0)))
        raw = np.where(hop, both, _lookup(direct, rssi))
    fit = active_calibration().link(kind.value)
    if fit.identity:
        return raw
    return np.where(np.isfinite(raw), np.maximum(0.0, fit.time_scale * raw + fit.overhead_s), raw)


def _normalise(
    transport: str, profile: str | None, window: int, mode: Mode | str
) -> tuple[Transport, str, Mode]:
    """Checked transport, profile name, window and mode (the cache keys)."""
    try:
        kind = Transport(transport)
    except ValueError:
        raise ConfigError(f"unknown transport {transport!r} (valid: ble, wifi, espnow)") from None
    try:
        mode_ = Mode(mode)
    except ValueError:
        raise ConfigError(f"unknown mode {mode!r} (valid: reliable, paper)") from None
    LinkConditions(rssi_dbm=-60.0, window=window, mode=mode_)  # validates the window
    prof = default_profile(kind.value) if profile is None else profile
    _link(kind.value, prof)  # validates the profile
    return kind, prof, mode_


def _checked_rssi(values: npt.ArrayLike, name: str) -> FloatArray:
    try:
        rssi = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be numbers (dBm): {exc}") from None
    finite = rssi[~np.isnan(rssi)]
    if finite.size and not ((finite >= -130.0) & (finite <= 20.0)).all():
        raise ConfigError(f"{name} must be within -130..20 dBm (NaN: no link)")
    return rssi


def _lookup(table: FloatArray, rssi: FloatArray) -> FloatArray:
    """Interpolate ``log(duration)`` of ``table`` at ``rssi`` (inf below the grid or for NaN)."""
    logs = np.log(table)  # inf stays inf
    clamped = np.clip(np.nan_to_num(rssi, nan=GRID_DBM[0]), GRID_DBM[0], GRID_DBM[-1])
    idx = np.clip(np.searchsorted(GRID_DBM, clamped, side="right") - 1, 0, len(GRID_DBM) - 2)
    lo, hi = logs[idx], logs[idx + 1]
    frac = (clamped - GRID_DBM[idx]) / (GRID_DBM[idx + 1] - GRID_DBM[idx])
    with np.errstate(invalid="ignore"):
        # An inf end of the interval makes the whole interval unusable (conservative).
        value = np.where(np.isinf(lo) | np.isinf(hi), np.inf, lo + frac * (hi - lo))
        value = np.where(clamped == GRID_DBM[idx], lo, value)
    dead = np.isnan(rssi) | (rssi < GRID_DBM[0])
    return np.where(dead, np.inf, np.exp(value))


@lru_cache(maxsize=16)
def _link(transport: str, profile: str) -> LinkModel:
    from tinysplit.links import make_link

    return make_link(transport, profile)


@lru_cache(maxsize=1024)
def _table(
    transport: str, profile: str, window: int, mode: str, payload_bytes: int, relayed: bool
) -> FloatArray:
    """Mean seconds per delivered tensor at every RSSI of :data:`GRID_DBM` (read-only)."""
    link = _link(transport, profile)
    out = np.empty(len(GRID_DBM))
    for i, rssi in enumerate(GRID_DBM):
        conditions = LinkConditions(
            rssi_dbm=float(rssi),
            window=window,
            mode=Mode(mode),
            relay_rssi_dbm=float(rssi) if relayed else None,
        )
        try:
            results = [
                link.transfer(payload_bytes, conditions, np.random.default_rng([seed, 8]))
                for seed in range(SEEDS)
            ]
        except ConfigError:  # the model holds no link at this RSSI
            out[i] = math.inf
            continue
        delivered = sum(r.delivered for r in results)
        mean = sum(r.duration_s for r in results) / len(results)
        out[i] = max(_MIN_S, mean * len(results) / delivered) if delivered else math.inf
    # Monotone: a weaker signal is never faster (removes the seeds' noise on flat stretches).
    out = np.maximum.accumulate(out[::-1])[::-1].copy()
    out.setflags(write=False)
    return out
