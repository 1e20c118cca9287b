"""Host-side BLE tools on bleak: the boards' advertisements (survey) and a GATT link to a board.

The BLE firmware (``firmware/ble/README.md``) advertises, legacy and connectable, the tinysplit
service UUID and manufacturer data ``FF FF 't' 's' <stage>`` (company id 0xFFFF, the Bluetooth
SIG's test id), and puts the name ``tinysplit-<stage>`` in its scan response. Its GATT service
has a data characteristic (write without response, frames in) and an ack characteristic
(notify, frames out).

This is the only tinysplit module that imports ``bleak``, and only inside its functions, so
importing it (or :mod:`tinysplit.testbed.hw.survey`) costs nothing. Every bleak entry point takes
``backend=``: bleak's own platform backend by default; tests pass a bumble-backed one.

On a machine without a usable Bluetooth adapter bleak fails in several ways (BlueZ:
``FileNotFoundError`` when there is no D-Bus socket, ``BleakDBusError`` when BlueZ is missing,
``BleakError`` / ``BleakBluetoothNotAvailableError`` when no adapter is present or it is off);
:func:`scan_boards` turns each into one :class:`NoBluetoothAdapter` error.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tinysplit.errors import BoardError, ConfigError

if TYPE_CHECKING:
    from bleak import BleakClient
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

__all__ = [
    "ACK_CHAR_UUID",
    "COMPANY_ID",
    "DATA_CHAR_UUID",
    "MAX_FRAME_BYTES",
    "NAME_PREFIX",
    "SERVICE_UUID",
    "BoardAdvert",
    "BoardLink",
    "NoBluetoothAdapter",
    "advert_stage",
    "scan_boards",
    "scan_boards_async",
]

#: The tinysplit GATT service and its characteristics (``firmware/ble/README.md``).
SERVICE_UUID = "54530001-0000-4000-8000-74696e797370"
DATA_CHAR_UUID = "54530002-0000-4000-8000-74696e797370"
ACK_CHAR_UUID = "54530003-0000-4000-8000-74696e797370"
#: Company id of the boards' manufacturer data: 0xFFFF, the Bluetooth SIG's test id.
COMPANY_ID = 0xFFFF
#: What follows the company id in the manufacturer data, before the stage byte.
MANUFACTURER_MAGIC = b"ts"
#: The scan-response name is this prefix and the stage number.
NAME_PREFIX = "tinysplit-"
#: Largest frame: the 512-byte attribute value limit (Core spec Vol 3 Part F 3.2.9).
MAX_FRAME_BYTES = 512
_NAME = re.compile(re.escape(NAME_PREFIX) + r"([0-9]{1,3})\Z")


class NoBluetoothAdapter(BoardError):
    """bleak found no usable Bluetooth adapter (no D-Bus, no BlueZ, no adapter, adapter off)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardAdvert:
    """One board as the host heard it during a scan.

    Attributes:
        address: its Bluetooth address as bleak reports it (a UUID on macOS).
        stage: the stage it advertises (manufacturer data, else the name).
        name: its advertised name (``tinysplit-<stage>``), None when no scan response was heard.
        rssi_dbm: median RSSI of its advertisements at the host, dBm.
        samples: advertisements heard.
        rssi_min_dbm, rssi_max_dbm: weakest and strongest of them, dBm.
    """

    address: str
    stage: int
    name: str | None
    rssi_dbm: float
    samples: int
    rssi_min_dbm: float
    rssi_max_dbm: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "address": self.address,
            "stage": self.stage,
            "name": self.name,
            "rssi_dbm": self.rssi_dbm,
            "samples": self.samples,
            "rssi_min_dbm": self.rssi_min_dbm,
            "rssi_max_dbm": self.rssi_max_dbm,
        }


def advert_stage(name: str | None, manufacturer_data: Mapping[int, bytes]) -> int | None:
    """The stage a tinysplit board advertises, or None for any other device.

    The manufacturer data (company 0xFFFF, ``"ts"``, stage byte) decides; the name
    ``tinysplit-<stage>`` of the scan response is the fallback for a scanner that merged only it.
    """
    data = manufacturer_data.get(COMPANY_ID)
    if data is not None and len(data) >= 3 and data[:2] == MANUFACTURER_MAGIC:
        return data[2] if data[2] >= 1 else None
    match = _NAME.match(name or "")
    if match and int(match.group(1)) >= 1:
        return int(match.group(1))
    return None


async def scan_boards_async(
    scan_s: float, *, backend: type[BaseBleakScanner] | None = None
) -> list[BoardAdvert]:
    """Scan for ``scan_s`` seconds and return the tinysplit boards heard, by stage then address.

    Args:
        scan_s: scan duration in seconds (> 0).
        backend: a bleak scanner backend class; None for the platform's.

    Raises:
        NoBluetoothAdapter: bleak found no usable adapter (one line saying why).
        ConfigError: ``scan_s`` is not positive.
    """
    from bleak import BleakScanner

    if not scan_s > 0:
        raise ConfigError(f"scan time must be > 0 s, got {scan_s}")
    heard: dict[str, tuple[int, list[float], str | None]] = {}

    def seen(device: BLEDevice, adv: AdvertisementData) -> None:
        stage = advert_stage(adv.local_name, adv.manufacturer_data)
        if stage is None:
            return
        _, samples, name = heard.get(device.address, (stage, [], None))
        samples.append(float(adv.rssi))
        heard[device.address] = (stage, samples, adv.local_name or name)

    try:
        async with BleakScanner(detection_callback=seen, backend=backend):
            await asyncio.sleep(scan_s)
    except Exception as exc:
        if _is_no_adapter(exc):
            raise NoBluetoothAdapter(f"no Bluetooth adapter found ({_why(exc)})") from exc
        raise
    adverts = [
        BoardAdvert(
            address=address,
            stage=stage,
            name=name,
            rssi_dbm=float(statistics.median(samples)),
            samples=len(samples),
            rssi_min_dbm=min(samples),
            rssi_max_dbm=max(samples),
        )
        for address, (stage, samples, name) in heard.items()
    ]
    return sorted(adverts, key=lambda a: (a.stage, a.address))


def scan_boards(
    scan_s: float, *, backend: type[BaseBleakScanner] | None = None
) -> list[BoardAdvert]:
    """Blocking :func:`scan_boards_async` (runs its own event loop)."""
    return asyncio.run(scan_boards_async(scan_s, backend=backend))


def _is_no_adapter(exc: BaseException) -> bool:
    from bleak.exc import BleakError

    # FileNotFoundError: bleak's BlueZ backend finds no D-Bus system bus socket. BleakError
    # covers BleakDBusError (BlueZ not running, adapter not ready) and "no adapter" / "powered
    # off" (BleakBluetoothNotAvailableError).
    return isinstance(exc, FileNotFoundError | PermissionError | BleakError)


def _why(exc: BaseException) -> str:
    from bleak.exc import BleakDBusError

    if isinstance(exc, FileNotFoundError | PermissionError):
        detail = exc.strerror or type(exc).__name__
        return f"the D-Bus system bus that BlueZ needs is not reachable: {detail}"
    if isinstance(exc, BleakDBusError):
        return f"BlueZ: {exc.dbus_error}" + (
            f" {exc.dbus_error_details}" if exc.dbus_error_details else ""
        )
    text = " ".join(str(exc).split())
    return f"bleak: {text or type(exc).__name__}"


class BoardLink:
    """A GATT link from the host to one board's tinysplit service.

    The host plays the previous stage: it writes frames without response to the data
    characteristic and receives the board's ACK / NACK / CTRL frames as notifications of the ack
    characteristic. Use :meth:`connect` (an async context manager)::

        async with await BoardLink.connect(device) as link:
            await link.write_frame(frame)
            answer = await link.notification(timeout_s=2.0)

    Attributes:
        client: the connected bleak client.
        address: the board's address.
    """

    def __init__(self, client: BleakClient, address: str) -> None:
        self.client = client
        self.address = address
        self._notifications: asyncio.Queue[bytes] = asyncio.Queue()

    @classmethod
    async def connect(
        cls,
        device: BLEDevice | str,
        *,
        backend: type[BaseBleakClient] | None = None,
        timeout_s: float = 10.0,
    ) -> BoardLink:
        """Connect, check the tinysplit service and subscribe to the ack characteristic.

        The ATT MTU is what the platform negotiates (BlueZ and the boards ask for 517);
        :attr:`frame_bytes` follows from it.

        Raises:
            BoardError: the board cannot be reached or has no tinysplit service (names it).
        """
        from bleak import BleakClient
        from bleak.exc import BleakError

        client = BleakClient(device, timeout=timeout_s, backend=backend)
        address = client.address
        try:
            await client.connect()
        except (BleakError, TimeoutError, OSError) as exc:
            if _is_no_adapter(exc) and not isinstance(exc, TimeoutError):
                raise NoBluetoothAdapter(f"no Bluetooth adapter found ({_why(exc)})") from exc
            raise BoardError(f"BLE board {address}: cannot connect ({_why(exc)})") from exc
        link = cls(client, address)
        try:
            if client.services.get_characteristic(DATA_CHAR_UUID) is None or (
                client.services.get_characteristic(ACK_CHAR_UUID) is None
            ):
                raise BoardError(
                    f"BLE board {address}: no tinysplit service {SERVICE_UUID} "
                    "(not a tinysplit BLE firmware?)"
                )
            await client.start_notify(ACK_CHAR_UUID, link._on_notify)
        except BaseException:
            await client.disconnect()
            raise
        return link

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU in bytes."""
        return int(self.client.mtu_size)

    @property
    def frame_bytes(self) -> int:
        """Largest frame this link carries: min(512, MTU - 3), as the firmware computes it."""
        return min(MAX_FRAME_BYTES, self.mtu_size - 3)

    async def write_frame(self, frame: bytes) -> None:
        """Write one frame to the data characteristic without response.

        Raises:
            ConfigError: the frame is larger than :attr:`frame_bytes`.
            BoardError: the write failed (link lost).
        """
        from bleak.exc import BleakError

        if len(frame) > self.frame_bytes:
            raise ConfigError(
                f"frame of {len(frame)} B exceeds this link's {self.frame_bytes} B "
                f"(ATT MTU {self.mtu_size})"
            )
        try:
            await self.client.write_gatt_char(DATA_CHAR_UUID, frame, response=False)
        except (BleakError, OSError) as exc:
            raise BoardError(f"BLE board {self.address}: write failed ({_why(exc)})") from exc

    async def notification(self, *, timeout_s: float) -> bytes:
        """The next notification of the ack characteristic.

        Raises:
            BoardError: none arrived within ``timeout_s`` seconds.
        """
        try:
            return await asyncio.wait_for(self._notifications.get(), timeout_s)
        except TimeoutError:
            raise BoardError(
                f"BLE board {self.address}: no notification within {timeout_s:g} s"
            ) from None

    def pending(self) -> int:
        """Notifications received and not taken yet."""
        return self._notifications.qsize()

    async def close(self) -> None:
        """Unsubscribe and disconnect (idempotent)."""
        if self.client.is_connected:
            await self.client.disconnect()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _on_notify(self, _characteristic: Any, data: bytearray) -> None:
        self._notifications.put_nowait(bytes(data))
