"""The hardware testbed: a plan's pipeline on real or emulated boards, recorded like the simulator.

One :meth:`HardwareTestbed.run` opens every board's console and the scribe's (an emulated
inventory starts the emulator first), brings the pipeline up, injects the inputs into stage 1,
collects the last stage's outputs and checks them against the host's int16 reference, then turns
the scribe's marks, the boards' counters and the power meter's traces into a
:class:`~tinysplit.sim.pipeline.SimResult` (a :class:`HardwareResult`, which adds the checks).

What the records hold, and what is approximated:

* **Stage events**: the scribe's marks, paired with inferences as :mod:`.records` explains, in
  seconds since the scribe's ``start``. ``injected_s``: stage 1's ``rx_end`` (the input handed
  over), else its ``infer_start``. ``duration_s``: the last mark.
* **Link events**: one per transfer. ``duration_s`` runs from the sender's ``tx_start`` to the
  receiver's ``rx_end``. The firmware marks no ``tx_end`` for a tensor it gave up on: a lost
  transfer ends (and its stage's ``send_end_s`` is) when its ``evt error what=send_failures``
  reached the host, placed on the scribe's clock (:mod:`.observed`), an estimate.
  ``app_frames``, ``retransmissions`` and ``bytes_on_air`` are the sender's ``tx_frames``,
  ``retransmissions`` and ``tx_bytes`` (application bytes, no link-layer headers). ``stats`` is
  read on every board each time an inference ends, and the growth of a link's counters since the
  previous reading is shared evenly by the transfers the scribe saw end on that link in between:
  pipelined transfers overlap, so one transfer's counts are approximate, while their sum over a
  run is exact. ``drops`` estimates the frames the sender handed over that the receiver never
  decoded: ``tx_frames`` minus the receiver's DATA frames from upstream (its ``rx_frames`` minus
  the answers its own downstream link brought, which the firmware does not count apart: one per
  ``window`` of its ``tx_frames``, none over TCP), plus the receiver's ``rx_crc_errors`` and
  ``rx_malformed``; never below 0. Link-layer retries and per-direction radio times are
  invisible to the console: 0 and NaN.
* **RSSI** per link: the sender's ``rssi`` ``down`` value after the run (else the receiver's
  ``up``; a board that failed: its reading at bring-up). **setup_s** per link: host seconds from
  the start of bring-up (or the ``reset`` that applied new settings) until both boards report
  ``links=up``; 0 when the links were up already.
* **Energy** per board and state: the power meter's trace integrated over the run and split by
  the marks (:func:`.power.energy_by_state`); empty without a meter.
* **Checks** (:attr:`HardwareResult.checks`, archived with the case's extra info): outputs exact
  (CRC-32 equal to the reference's), within +-1 LSB (ESP-DL's int16 tolerance), mismatched
  (values off by more, per inference), unverified (a different CRC-32 and the output already
  replaced by the next one); per link the receiver's ``tensor_crc_errors``; serial garbage.

A board that fails part way (unplugged, silent) ends the run with
:class:`~tinysplit.testbed.PartialRunError`, which names the board and its port and carries the
records of every inference finished before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tinysplit.errors import ConfigError
from tinysplit.partition import Plan
from tinysplit.sim.pipeline import PipelineConfig
from tinysplit.testbed.base import Testbed, TestbedKind
from tinysplit.testbed.hw.observed import HardwareResult
from tinysplit.testbed.hw.reference import reference_for

if TYPE_CHECKING:
    from tinysplit.testbed.hw.inventory import Inventory

__all__ = ["MIN_PROGRESS_TIMEOUT_S", "HardwareResult", "HardwareTestbed", "emulator_config"]

#: Least time without progress (no output, no failure) before the pipeline counts as stalled.
MIN_PROGRESS_TIMEOUT_S = 30.0


class HardwareTestbed(Testbed):
    """Boards listed in an inventory (``boards.toml``), real or emulated.

    The clock is the boards' device time as the scribe measures it: like the simulated testbed's,
    it moves only when a benchmark round accounts the device seconds it measured, so
    pytest-benchmark's statistics are device seconds.

    Args:
        inventory: the validated inventory.
        timeout_s: how long the pipeline may go without finishing an inference before it counts
            as stalled; default: 3x the plan's modelled latency (scaled by an emulator's
            ``time_scale``), at least :data:`MIN_PROGRESS_TIMEOUT_S`.
    """

    kind = TestbedKind.HW

    def __init__(self, inventory: Inventory, *, timeout_s: float | None = None) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ConfigError(f"timeout_s must be > 0, got {timeout_s}")
        self.inventory = inventory
        self.timeout_s = timeout_s
        self._now = 0.0

    def unsupported(self, config: PipelineConfig) -> str | None:
        """Why ``config`` cannot be imposed on boards, or None.

        Boards stand where they stand and run the link and core settings of their firmware: link
        RSSIs, positions, link profiles, dual-core inference and the Wi-Fi AP board are not set
        from the host, nor are deployments (placement, replicas, per-link windows), the adaptive
        window or the hybrid transport. Window and mode are (``config`` + ``reset``).
        """
        if config.rssi_dbm is not None or config.positions_m is not None:
            return (
                "boards stand where they are placed: link RSSIs and positions cannot be imposed "
                "on them (tinysplit survey measures them)"
            )
        if config.link_profile is not None:
            return f"link profile {config.link_profile!r} is a simulator calibration, not a board"
        if config.dual_core:
            return "dual-core inference is a firmware build option, not set from the host"
        if config.ap_board != 1:
            return "the Wi-Fi SoftAP board is a firmware setting (stage 1), not set from the host"
        if config.rssi_matrix_dbm is not None or config.placement is not None:
            return (
                "the inventory fixes which board runs which stage (one board per stage): "
                "placements, replicas and RSSI matrices are simulator deployments"
            )
        if config.windows is not None:
            return "one window per link is not set from the host (config window=N sets all)"
        if config.adaptive_window:
            return "the adaptive window is a firmware build option (TINYSPLIT_ADAPTIVE_WINDOW)"
        if config.wake is not None:
            return "the hybrid transport's ESP-IDF glue is not written yet (docs/hybrid.md)"
        return None

    def run(self, plan: Plan, config: PipelineConfig) -> HardwareResult:
        """Run ``config.inferences`` inferences of ``plan`` on the boards.

        Raises:
            ConfigError: the config asks for another transport than the boards run, something
                :meth:`unsupported` names, a plan of another number of stages, or boards that run
                other slices than the plan's.
            BoardError: a board cannot be opened, answers errors or misbehaves before the run.
            PartialRunError: a board failed during the run (unplugged, silent); carries every
                inference finished before.
        """
        inventory = self.inventory
        if config.transport != inventory.transport:
            raise ConfigError(
                f"the boards of {inventory.path} run the {inventory.transport} firmware, "
                f"not {config.transport}: pick --transport {inventory.transport} or reflash"
            )
        if (reason := self.unsupported(config)) is not None:
            raise ConfigError(reason)
        if len(plan.stages) != inventory.stages:
            raise ConfigError(
                f"the plan has {len(plan.stages)} stages but {inventory.path} lists "
                f"{inventory.stages} boards"
            )
        from tinysplit.testbed.hw.session import Session

        reference = reference_for(plan)
        with contextlib.ExitStack() as stack:
            ports, scribe = self._ports(stack, plan, config)
            session = Session(
                inventory,
                plan,
                config,
                reference,
                ports=ports,
                scribe_port=scribe,
                timeout_s=self._progress_timeout(plan),
            )
            stack.callback(session.close)
            return session.execute()

    def clock(self) -> float:
        """Device seconds accounted so far."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds`` of device time measured by the scribe (>= 0).

        Raises:
            ValueError: a negative or NaN duration (a round that measured nothing).
        """
        if not seconds >= 0:
            raise ValueError(
                f"cannot move the clock by {seconds} s: a round must measure a device time >= 0"
            )
        self._now += seconds

    def _progress_timeout(self, plan: Plan) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        emulator = self.inventory.emulator
        scale = 1.0 if emulator is None else emulator.time_scale
        return max(MIN_PROGRESS_TIMEOUT_S, 3.0 * plan.latency_s * scale)

    def _ports(
        self, stack: contextlib.ExitStack, plan: Plan, config: PipelineConfig
    ) -> tuple[dict[str, str | None], str | None]:
        """Board name -> port (None: look up its serial number), and the scribe's port."""
        inventory = self.inventory
        if inventory.emulator is None:
            scribe = inventory.scribe.port if inventory.scribe is not None else None
            return {b.name: b.port for b in inventory.boards}, scribe
        from tinysplit.testbed.hw.emulator import start_emulator

        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tinysplit-emu-")))
        handle = stack.enter_context(
            start_emulator(inventory, plan, emulator_config(inventory, config), workdir)
        )
        return dict(handle.ports), handle.scribe_port


def emulator_config(inventory: Inventory, config: PipelineConfig) -> PipelineConfig:
    """The configuration the emulator simulates for a run of ``config``.

    Emulated boards "stand" where the inventory's ``position_m`` puts them; without positions
    for every board they stand as the simulated testbed's default layout (the paper's link
    RSSIs for 5 boards, 0.5 m apart otherwise).
    """
    if config.rssi_dbm is not None or config.positions_m is not None:
        return config
    positions = [b.position_m for b in inventory.boards]
    if all(p is not None for p in positions):
        return dataclasses.replace(config, positions_m=tuple(p for p in positions if p))
    from tinysplit.sim.layout import load_layout

    n = inventory.stages
    layout = load_layout("paper" if n == 5 else "desk", n)
    return dataclasses.replace(config, rssi_dbm=layout.rssi_dbm, positions_m=layout.positions_m)
