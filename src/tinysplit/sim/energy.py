"""Current draw and energy per board, from datasheet currents at 3.3 V (``links/data``).

Energy is additive over overlapping activities: a board always draws the transport's idle
current (``idle``: the CPU in WAITI with BLE sleeping between connection events, or a Wi-Fi radio
listening with power save off), plus the extra current of inference over an idle CPU while it
computes, plus the extra current of transmitting or receiving over idle while its radio does.
A board that computes while it sends (pipelining) pays both increments.

Single-transport boards never sleep. Hybrid boards (``wake="ble"``, :mod:`tinysplit.links.hybrid`)
light-sleep holding BLE connections: their idle current is that sleep current, and the CPU and
data-radio increments count from it (a hybrid link reports every second its radio is up as radio
time). :func:`energy_from_records` recomputes a run's energy under any power model from its
records, so a run can be scored as hybrid before the pipeline picks the model itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinysplit.errors import ConfigError
from tinysplit.links.calibration import section
from tinysplit.links.hybrid import HybridProfile, check_wake, load_hybrid_profile

if TYPE_CHECKING:  # the pipeline imports this module
    from tinysplit.sim.pipeline import SimResult

#: Energy components, in the order reports show them.
STATES = ("idle", "inference", "radio_tx", "radio_rx")


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerModel:
    """Currents of one board for one transport, in mA, and the supply voltage in V."""

    supply_v: float
    idle_ma: float
    inference_ma: float
    cpu_idle_ma: float
    tx_ma: float
    rx_ma: float

    def __post_init__(self) -> None:
        if self.supply_v <= 0 or min(self.idle_ma, self.tx_ma, self.rx_ma) < 0:
            raise ConfigError("power model: supply and currents must be positive")

    @classmethod
    def for_transport(
        cls,
        transport: str,
        *,
        dual_core: bool = False,
        wake: str | None = None,
        hybrid_profile: str | HybridProfile | None = None,
    ) -> PowerModel:
        """The datasheet model of a board running ``transport`` (see ``esp32s3.toml [power]``).

        Args:
            transport: ``ble``, ``wifi`` or ``espnow`` (the data transport when hybrid).
            dual_core: ESP-DL on both cores.
            wake: ``"ble"`` for hybrid boards (light sleep + BLE wake-up, ``[hybrid]``): idle is
                the sleep current and the CPU and radio increments count from it. None: the
                board never sleeps (single transport).
            hybrid_profile: the ``[hybrid]`` profile (or its name; the default for None).

        Raises:
            ConfigError: unknown transport, wake transport or hybrid profile.
        """
        check_wake(transport, wake)
        p = section("power")
        radio = {
            "ble": (p["ble_tx_ma"], p["ble_rx_ma"], p["ble_idle_ma"]),
            "wifi": (p["wifi_tx_11n_ma"], p["wifi_rx_ma"], p["wifi_idle_ma"]),
            "espnow": (p["wifi_tx_11b_ma"], p["wifi_rx_ma"], p["wifi_idle_ma"]),
        }
        if transport not in radio:
            raise ConfigError(f"unknown transport {transport!r} (valid: ble, wifi, espnow)")
        tx, rx, idle = radio[transport]
        key = "cpu_inference_dual_core_ma" if dual_core else "cpu_inference_single_core_ma"
        if wake is not None:
            hybrid = (
                hybrid_profile
                if isinstance(hybrid_profile, HybridProfile)
                else load_hybrid_profile(hybrid_profile)
            )
            # Asleep between activities: inference wakes the CPU from light sleep, and a hybrid
            # link reports the data radio's whole up time, so both increments start at sleep.
            return cls(
                supply_v=float(p["supply_v"]),
                idle_ma=hybrid.sleep_ma,
                inference_ma=float(p[key]),
                cpu_idle_ma=hybrid.sleep_ma,
                tx_ma=float(tx),
                rx_ma=float(rx),
            )
        return cls(
            supply_v=float(p["supply_v"]),
            idle_ma=float(idle),
            inference_ma=float(p[key]),
            cpu_idle_ma=float(p["cpu_idle_ma"]),
            tx_ma=float(tx),
            rx_ma=float(rx),
        )

    def energy_j(self, *, duration_s: float, busy_s: Mapping[str, float]) -> dict[str, float]:
        """Energy in joules by component for a board observed for ``duration_s`` seconds.

        Args:
            duration_s: the whole observed time.
            busy_s: seconds spent in ``inference``, ``radio_tx`` and ``radio_rx``.
        """
        extra_ma = {
            "inference": self.inference_ma - self.cpu_idle_ma,
            "radio_tx": max(self.tx_ma - self.idle_ma, 0.0),
            "radio_rx": max(self.rx_ma - self.idle_ma, 0.0),
        }
        volts_per_ma = self.supply_v / 1000.0
        energy = {"idle": self.idle_ma * volts_per_ma * duration_s}
        for state, ma in extra_ma.items():
            energy[state] = ma * volts_per_ma * busy_s.get(state, 0.0)
        return energy


def busy_from_records(result: SimResult) -> list[dict[str, float]]:
    """Seconds each physical board spent computing and with its radio transmitting / receiving.

    Rebuilt from the run's records (stage events and transfer results) as the simulator counts
    them, except the Wi-Fi SoftAP's relay time (not in the records; a hybrid link has none). One
    entry per physical board (index 0 = board 1), as ``result.energy_j``.
    """
    boards = max(len(result.energy_j), len(result.plan.stages))
    busy = [dict.fromkeys(STATES[1:], 0.0) for _ in range(boards)]
    for e in result.stage_events:
        if not math.isnan(e.inference_end_s):
            busy[e.board - 1]["inference"] += e.inference_end_s - e.inference_start_s
    for link in result.link_events:
        r = link.result
        sender, receiver = link.sender - 1, link.receiver - 1  # physical boards, 1-based
        busy[sender]["radio_tx"] += r.sender_tx_s
        busy[sender]["radio_rx"] += r.sender_rx_s
        busy[receiver]["radio_tx"] += r.receiver_tx_s
        busy[receiver]["radio_rx"] += r.receiver_rx_s
    return busy


def energy_from_records(result: SimResult, power: PowerModel) -> list[dict[str, float]]:
    """Energy per physical board by state (J) of a run, under ``power`` instead of the run's own
    model. Boards that ran no stage are switched off (0 J), as in the simulator."""
    used = {e.board - 1 for e in result.stage_events}
    off = dict.fromkeys(STATES, 0.0)
    return [
        power.energy_j(duration_s=result.duration_s, busy_s=b) if k in used else dict(off)
        for k, b in enumerate(busy_from_records(result))
    ]


def marginal_energy_per_inference_j(
    short: SimResult, long: SimResult, power: PowerModel | None = None
) -> float:
    """Steady-state energy per inference of all boards (J): the energy the ``long`` run spent
    beyond the ``short`` one, per extra completed inference.

    Both runs must share everything but the number of inferences; the difference cancels the
    pipeline's fill and drain, so at a fixed input interval this is idle power x interval plus
    the work of one inference. ``power`` None uses the energy the runs recorded.

    Raises:
        ConfigError: the long run completed no more inferences than the short one.
    """
    done = len(long.completed) - len(short.completed)
    if done < 1:
        raise ConfigError("the long run must complete more inferences than the short one")
    return (_total_j(long, power) - _total_j(short, power)) / done


def _total_j(result: SimResult, power: PowerModel | None) -> float:
    boards: Sequence[Mapping[str, float]] = (
        result.energy_j if power is None else energy_from_records(result, power)
    )
    return sum(sum(board.values()) for board in boards)
