"""The link-model contract: move one tensor across one radio link, frame by frame.

A link model is built from one named calibration profile (``links/data/esp32s3.toml``) and is
stateless between transfers: :meth:`LinkModel.transfer` simulates one tensor from the moment the
sender hands its first frame to the stack until the receiver holds the last byte (or, when the
tensor is lost, until the sender is done with it). All randomness comes from the generator passed
in, so the same generator state gives the same result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.protocol.frames import MAX_RELIABLE_WINDOW


class Transport(StrEnum):
    """Transport ids."""

    BLE = "ble"
    WIFI = "wifi"
    ESPNOW = "espnow"


class Mode(StrEnum):
    """Protocol modes.

    ``paper``: an acknowledgment every ``window``-th frame, no retransmission; a lost frame fails
    the tensor (the paper's failure). ``reliable``: sequence numbers, per-frame CRC, per-tensor
    checksum and selective-repeat ARQ; every tensor arrives intact.
    """

    PAPER = "paper"
    RELIABLE = "reliable"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConditions:
    """What one transfer sees.

    Attributes:
        rssi_dbm: received signal strength on the link (dBm, symmetric).
        window: application window: frames sent before a response is required (BLE, ESP-NOW);
            ignored by TCP, which has its own. At most ``MAX_RELIABLE_WINDOW`` in reliable mode.
        mode: protocol mode.
        relay_rssi_dbm: Wi-Fi only: RSSI of the second hop when two stations talk through the
            SoftAP (the frames cross the air twice); ``None`` when one end is the AP.
    """

    rssi_dbm: float
    window: int = 1
    mode: Mode = Mode.RELIABLE
    relay_rssi_dbm: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"window must be an integer >= 1, got {self.window!r}")
        if self.mode is Mode.RELIABLE and self.window > MAX_RELIABLE_WINDOW:
            raise ConfigError(
                f"reliable mode takes windows up to {MAX_RELIABLE_WINDOW}, got {self.window} "
                f"(an ACK's bitmap covers the {2 * MAX_RELIABLE_WINDOW} frames in flight)"
            )
        if not -130.0 <= self.rssi_dbm <= 20.0:
            raise ConfigError(f"rssi_dbm must be within -130..20 dBm, got {self.rssi_dbm}")
        if self.relay_rssi_dbm is not None and not -130.0 <= self.relay_rssi_dbm <= 20.0:
            raise ConfigError(
                f"relay_rssi_dbm must be within -130..20 dBm, got {self.relay_rssi_dbm}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferResult:
    """Outcome of one tensor transfer. Times in seconds, sizes in bytes.

    Attributes:
        duration_s: first frame handed to the sender's stack -> last byte at the receiver (or the
            sender done, when the tensor is lost).
        delivered: the receiver holds the whole tensor, intact.
        app_frames: application DATA frames sent, retransmissions included.
        retransmissions: application DATA frames sent again (reliable mode).
        drops: application frames lost (silently on a full buffer in paper mode; after the MAC's
            retries on ESP-NOW).
        link_retries: link-layer / MAC retransmissions (CRC errors), invisible to the application.
        bytes_on_air: every byte transmitted over the air, headers and retries included.
        sender_tx_s, sender_rx_s, receiver_tx_s, receiver_rx_s: radio time per end and direction.
        relay_tx_s, relay_rx_s: radio time of the Wi-Fi SoftAP relaying between two stations.
    """

    duration_s: float
    delivered: bool
    app_frames: int
    retransmissions: int = 0
    drops: int = 0
    link_retries: int = 0
    bytes_on_air: int = 0
    sender_tx_s: float = 0.0
    sender_rx_s: float = 0.0
    receiver_tx_s: float = 0.0
    receiver_rx_s: float = 0.0
    relay_tx_s: float = 0.0
    relay_rx_s: float = 0.0


class LinkModel(ABC):
    """A calibrated model of one transport between two ESP32-S3 boards.

    Subclasses set :attr:`transport`, take their profile in ``__init__`` and implement
    :meth:`transfer` and :meth:`setup_s`. ``transfer`` must be deterministic for a given generator
    state, never lose a tensor in reliable mode, and report every drop and retransmission.
    """

    transport: ClassVar[Transport]

    @abstractmethod
    def transfer(
        self, payload_bytes: int, conditions: LinkConditions, rng: np.random.Generator
    ) -> TransferResult:
        """Simulate sending one tensor of ``payload_bytes`` bytes."""

    @abstractmethod
    def setup_s(self, conditions: LinkConditions) -> float:
        """Time to establish the link before the first transfer (connection, association), s."""

    @property
    @abstractmethod
    def frame_bytes(self) -> int:
        """Largest application frame (bytes handed to the stack per send call)."""
