"""A bumble-backed bleak backend and virtual tinysplit BLE boards, for tests.

bleak's public API (``BleakScanner(backend=...)``, ``BleakClient(..., backend=...)``) runs
unmodified on top of :func:`bleak_backends`, whose scanner and client drive a bumble ``Device``
standing in for the host's adapter. The virtual boards are bumble devices on the same in-process
``LocalLink``, shaped like ``firmware/ble``: legacy connectable advertising of the tinysplit
service UUID and manufacturer data ``FF FF 't' 's' <stage>``, the name ``tinysplit-<stage>`` in
the scan response, and the tinysplit GATT service (data characteristic: write without response
and write; ack characteristic: notify).

bumble moves packets without a radio: every advertisement reaches every scanner, all with RSSI
-50 dBm, and its controller answers a scan request with the advertising data again.
:class:`RadioController` (the host's controller) is the thin radio layer this test double adds:
it reports each advertiser's RSSI from :attr:`VirtualRadio.rssi_dbm` and gives scan responses
their own data, so a scan looks like one over the air.

Everything asynchronous is created in the event loop that first uses the radio (the scanner's
``start`` or :meth:`VirtualRadio.power_on`), so code that runs its own ``asyncio.run`` (such as
:func:`tinysplit.testbed.hw.ble_scan.scan_boards`) works with it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bumble import hci
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from tinysplit.testbed.hw.ble_scan import (
    ACK_CHAR_UUID,
    COMPANY_ID,
    DATA_CHAR_UUID,
    MANUFACTURER_MAGIC,
    NAME_PREFIX,
    SERVICE_UUID,
)

HOST_ADDRESS = "F0:00:00:00:00:01"
#: ATT MTU the backend requests after connecting, as BlueZ and the boards do.
REQUESTED_MTU = 517
_PROPERTIES = {
    0x02: "read",
    0x04: "write-without-response",
    0x08: "write",
    0x10: "notify",
    0x20: "indicate",
}

FrameHandler = Callable[[bytes], bytes | None]


def _uuid_str(value: UUID) -> str:
    """bumble UUID -> bleak's lowercase 128-bit string."""
    return str(uuid.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


class RadioController(Controller):
    """The host's controller: per-advertiser RSSI and real scan responses (see module docstring)."""

    def __init__(self, radio: VirtualRadio, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.radio = radio

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            packet = hci.HCI_LE_Advertising_Report_Event(
                reports=[self._legacy(r) for r in packet.reports]
            )
        elif isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            packet = hci.HCI_LE_Extended_Advertising_Report_Event(
                reports=[self._extended(r) for r in packet.reports]
            )
        super().send_hci_packet(packet)

    def _view(
        self, address: hci.Address, rssi: int, data: bytes, scan_response: bool
    ) -> tuple[int, bytes]:
        key = str(address).split("/")[0]
        if scan_response:
            data = self.radio.scan_responses.get(key, data)
        return int(self.radio.rssi_dbm.get(key, rssi)), data

    def _legacy(
        self, report: hci.HCI_LE_Advertising_Report_Event.Report
    ) -> hci.HCI_LE_Advertising_Report_Event.Report:
        scan_response = report.event_type == hci.HCI_LE_Advertising_Report_Event.EventType.SCAN_RSP
        rssi, data = self._view(report.address, report.rssi, report.data, scan_response)
        return dataclasses.replace(report, rssi=rssi, data=data)

    def _extended(
        self, report: hci.HCI_LE_Extended_Advertising_Report_Event.Report
    ) -> hci.HCI_LE_Extended_Advertising_Report_Event.Report:
        kind = hci.HCI_LE_Extended_Advertising_Report_Event.EventType
        scan_response = bool(report.event_type & kind.SCAN_RESPONSE)
        rssi, data = self._view(report.address, report.rssi, report.data, scan_response)
        # The boards advertise legacy ADV_IND PDUs: connectable and scannable, and the scan
        # response answers a scannable advertisement (bumble's controller leaves these bits out).
        event_type = kind.CONNECTABLE_ADVERTISING | kind.SCANNABLE_ADVERTISING
        event_type |= kind.LEGACY_ADVERTISING_PDU_USED
        if scan_response:
            event_type |= kind.SCAN_RESPONSE
        return dataclasses.replace(report, rssi=rssi, data=data, event_type=int(event_type))


@dataclasses.dataclass
class VirtualBoard:
    """One virtual tinysplit BLE board.

    Attributes:
        stage: the stage it advertises.
        address: its public address.
        device: the bumble device (after :meth:`VirtualRadio.power_on`).
        frames: every value written to its data characteristic, in order.
        on_frame: called with each written frame; a returned value is notified on the ack
            characteristic (default: none).
        advertise: start advertising at power-on.
        with_service: serve the tinysplit GATT service (False: a board with other firmware).
    """

    stage: int
    address: str
    device: Device | None = None
    frames: list[bytes] = dataclasses.field(default_factory=list)
    on_frame: FrameHandler | None = None
    advertise: bool = True
    with_service: bool = True
    _ack: Characteristic | None = None
    _tasks: set[asyncio.Future[None]] = dataclasses.field(default_factory=set)

    def advertising_data(self) -> bytes:
        """Flags, the service UUID and the manufacturer data, as the firmware advertises."""
        manufacturer = COMPANY_ID.to_bytes(2, "little") + MANUFACTURER_MAGIC + bytes([self.stage])
        return bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                        bytes(UUID(SERVICE_UUID)),
                    ),
                    (AdvertisingData.MANUFACTURER_SPECIFIC_DATA, manufacturer),
                ]
            )
        )

    def scan_response_data(self) -> bytes:
        """The complete local name ``tinysplit-<stage>``."""
        name = f"{NAME_PREFIX}{self.stage}".encode()
        return bytes(AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, name)]))

    def _build(self, link: LocalLink, index: int) -> Device:
        controller = Controller(f"board{index}", link=link, public_address=self.address)
        device = Device(
            address=hci.Address(self.address), host=Host(controller, AsyncPipeSink(controller))
        )
        device.name = f"{NAME_PREFIX}{self.stage}"
        if self.with_service:
            ack = Characteristic(
                UUID(ACK_CHAR_UUID), Characteristic.Properties.NOTIFY, Characteristic.READABLE, b""
            )
            data = Characteristic(
                UUID(DATA_CHAR_UUID),
                Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
                Characteristic.WRITEABLE,
                CharacteristicValue(write=self._on_write),
            )
            device.add_service(Service(UUID(SERVICE_UUID), [data, ack]))
            self._ack = ack
        self.device = device
        return device

    def _on_write(self, _connection: Connection, value: bytes) -> None:
        frame = bytes(value)
        self.frames.append(frame)
        answer = self.on_frame(frame) if self.on_frame is not None else None
        if answer is not None and self.device is not None and self._ack is not None:
            task = asyncio.ensure_future(self.device.notify_subscribers(self._ack, answer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class VirtualRadio:
    """An in-process BLE world: the host's adapter and virtual tinysplit boards on one LocalLink.

    Args:
        host_address: the host adapter's public address.

    Attributes:
        boards: the boards added, in order.
        rssi_dbm: RSSI at the host of each board's advertisements, by address.
        scan_responses: each board's scan-response data, by address.
        central: the host's bumble device (after :meth:`power_on`).
        link: the LocalLink every device is on (after :meth:`power_on`).
        client_writes: the ``response`` flag of every GATT write the bleak client made.
    """

    def __init__(self, host_address: str = HOST_ADDRESS) -> None:
        self.host_address = host_address
        self.boards: list[VirtualBoard] = []
        self.rssi_dbm: dict[str, float] = {}
        self.scan_responses: dict[str, bytes] = {}
        self.central: Device | None = None
        self.link: LocalLink | None = None
        self.client_writes: list[bool] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_board(self, stage: int, *, rssi_dbm: float = -50.0, **options: Any) -> VirtualBoard:
        """Add a board advertising ``stage``, heard at the host at ``rssi_dbm``."""
        address = f"C0:00:00:00:00:{len(self.boards) + 1:02X}"
        board = VirtualBoard(stage=stage, address=address, **options)
        self.boards.append(board)
        self.rssi_dbm[address] = rssi_dbm
        self.scan_responses[address] = board.scan_response_data()
        return board

    async def power_on(self) -> Device:
        """Build and power the devices in the running loop (once), start advertising."""
        loop = asyncio.get_running_loop()
        if self.central is not None:
            if loop is not self._loop:
                raise RuntimeError("a VirtualRadio serves one event loop")
            return self.central
        self._loop = loop
        link = self.link = LocalLink()
        controller = RadioController(self, "host", link=link, public_address=self.host_address)
        central = Device(
            address=hci.Address(self.host_address), host=Host(controller, AsyncPipeSink(controller))
        )
        devices = [board._build(link, i) for i, board in enumerate(self.boards)]
        await central.power_on()
        for board, device in zip(self.boards, devices, strict=True):
            await device.power_on()
            if board.advertise:
                await device.start_advertising(
                    advertising_data=board.advertising_data(),
                    scan_response_data=board.scan_response_data(),
                    advertising_interval_min=20.0,
                    advertising_interval_max=20.0,
                    auto_restart=True,
                )
        self.central = central
        return central

    def board_at(self, address: str) -> VirtualBoard:
        """The board with ``address``."""
        for board in self.boards:
            if board.address.lower() == address.lower():
                return board
        raise KeyError(address)


def bleak_backends(
    radio: VirtualRadio,
) -> tuple[type[BaseBleakScanner], type[BaseBleakClient]]:
    """bleak scanner and client backend classes bound to ``radio``'s host adapter."""

    class BumbleScanner(BaseBleakScanner):
        """Active scanning on the host's bumble device."""

        def __init__(
            self,
            detection_callback: Any = None,
            service_uuids: list[str] | None = None,
            scanning_mode: str = "active",
            **kwargs: Any,
        ) -> None:
            super().__init__(detection_callback, service_uuids)
            self._active = scanning_mode == "active"

        async def start(self) -> None:
            self.seen_devices = {}
            central = await radio.power_on()
            central.on(central.EVENT_ADVERTISEMENT, self._on_advertisement)
            await central.start_scanning(active=self._active, filter_duplicates=False)

        async def stop(self) -> None:
            central = await radio.power_on()
            await central.stop_scanning()
            central.remove_listener(central.EVENT_ADVERTISEMENT, self._on_advertisement)

        def _on_advertisement(self, adv: Advertisement) -> None:
            name: str | None = None
            manufacturer: dict[int, bytes] = {}
            uuids: list[str] = []
            for ad_type, value in adv.data.ad_structures:
                if ad_type in (
                    AdvertisingData.COMPLETE_LOCAL_NAME,
                    AdvertisingData.SHORTENED_LOCAL_NAME,
                ):
                    name = value.decode("utf-8", "replace")
                elif ad_type == AdvertisingData.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
                    manufacturer[int.from_bytes(value[:2], "little")] = bytes(value[2:])
                elif ad_type == AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS:
                    uuids += [
                        _uuid_str(UUID.from_bytes(value[i : i + 16]))
                        for i in range(0, len(value) - 15, 16)
                    ]
            if not self.is_allowed_uuid(uuids):
                return
            data = AdvertisementData(
                local_name=name,
                manufacturer_data=manufacturer,
                service_data={},
                service_uuids=uuids,
                tx_power=None,
                rssi=adv.rssi,
                platform_data=(adv,),
            )
            address = str(adv.address).split("/")[0]
            device = self.create_or_update_device(address, address, name, adv.address, data)
            self.call_detection_callbacks(device, data)

    class BumbleClient(BaseBleakClient):
        """A GATT client on the host's bumble device: connect, MTU 517, discovery, I/O."""

        def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
            super().__init__(
                address_or_ble_device,
                disconnected_callback=kwargs.get("disconnected_callback"),
                timeout=float(kwargs.get("timeout", 10.0)),
            )
            self._connection: Connection | None = None
            self._peer: Peer | None = None
            self._characteristics: dict[int, Any] = {}

        @property
        def name(self) -> str:
            return str(self.address)

        @property
        def mtu_size(self) -> int:
            return self._connection.att_mtu if self._connection is not None else 23

        @property
        def is_connected(self) -> bool:
            return self._connection is not None

        async def connect(self, pair: bool, **kwargs: Any) -> None:
            central = await radio.power_on()
            self._connection = await asyncio.wait_for(
                central.connect(hci.Address(self.address)), self._timeout
            )
            self._connection.on(self._connection.EVENT_DISCONNECTION, self._on_disconnection)
            peer = Peer(self._connection)
            await peer.request_mtu(REQUESTED_MTU)
            await peer.discover_services()
            await peer.discover_characteristics()
            services = BleakGATTServiceCollection()
            for service in peer.services:
                bleak_service = BleakGATTService(service, service.handle, _uuid_str(service.uuid))
                services.add_service(bleak_service)
                for c in service.characteristics:
                    properties: Any = [v for bit, v in _PROPERTIES.items() if c.properties & bit]
                    services.add_characteristic(
                        BleakGATTCharacteristic(
                            c,
                            c.handle,
                            _uuid_str(c.uuid),
                            properties,
                            lambda: self.mtu_size - 3,
                            bleak_service,
                        )
                    )
                    self._characteristics[c.handle] = c
            self._peer = peer
            self.services = services

        def _on_disconnection(self, _reason: int) -> None:
            self._connection = None
            if self._disconnected_callback is not None:
                self._disconnected_callback()

        async def disconnect(self) -> None:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                await connection.disconnect()

        async def pair(self, *args: Any, **kwargs: Any) -> None:
            raise NotImplementedError("the virtual boards use no security manager")

        async def unpair(self) -> None:
            raise NotImplementedError("the virtual boards use no security manager")

        async def read_gatt_char(
            self, characteristic: BleakGATTCharacteristic, **kwargs: Any
        ) -> bytearray:
            return bytearray(await self._characteristics[characteristic.handle].read_value())

        async def read_gatt_descriptor(
            self, descriptor: BleakGATTDescriptor, **kwargs: Any
        ) -> bytearray:
            raise NotImplementedError

        async def write_gatt_char(
            self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
        ) -> None:
            proxy = self._characteristics[characteristic.handle]
            radio.client_writes.append(response)
            await proxy.write_value(bytes(data), with_response=response)

        async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
            raise NotImplementedError

        async def start_notify(
            self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
        ) -> None:
            proxy = self._characteristics[characteristic.handle]
            await proxy.subscribe(lambda value: callback(bytearray(value)))

        async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
            await self._characteristics[characteristic.handle].unsubscribe()

    return BumbleScanner, BumbleClient
