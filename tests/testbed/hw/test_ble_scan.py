"""The host's BLE tools through unmodified bleak: scan, connect, MTU 517, write, notify.

The boards are virtual (bumble, ``bleak_bumble.py``) and advertise like ``firmware/ble``. The
no-adapter path runs bleak's real BlueZ backend against a D-Bus socket that does not exist, the
lowest boundary this machine has (it has no D-Bus at all).
"""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.scanner import BaseBleakScanner
from bleak.exc import BleakDBusError, BleakError

from tests.testbed.hw.bleak_bumble import REQUESTED_MTU, VirtualRadio, bleak_backends
from tinysplit.errors import BoardError, ConfigError
from tinysplit.protocol.frames import crc16_ccitt as crc16
from tinysplit.testbed.hw.ble_scan import (
    ACK_CHAR_UUID,
    DATA_CHAR_UUID,
    SERVICE_UUID,
    BoardLink,
    NoBluetoothAdapter,
    advert_stage,
    scan_boards,
    scan_boards_async,
)

NO_BUS = "unix:path=/nonexistent/tinysplit-test/system_bus_socket"


def _radio(*rssi: float) -> VirtualRadio:
    radio = VirtualRadio()
    for stage, value in enumerate(rssi, start=1):
        radio.add_board(stage, rssi_dbm=value)
    return radio


def test_advert_stage_reads_the_firmware_advertisement() -> None:
    assert advert_stage(None, {0xFFFF: b"ts\x03"}) == 3
    assert advert_stage("tinysplit-4", {}) == 4
    assert advert_stage("tinysplit-4", {0xFFFF: b"ts\x02"}) == 2  # manufacturer data decides
    assert advert_stage("tinysplit-0", {}) is None
    assert advert_stage("other", {0xFFFF: b"xx\x02", 0x02E5: b"ts\x01"}) is None
    assert advert_stage(None, {0xFFFF: b"ts"}) is None


def test_scan_through_bleak_finds_the_boards_and_their_rssi() -> None:
    radio = _radio(-41.0, -58.0, -73.0)
    radio.add_board(9, rssi_dbm=-80.0, advertise=False)  # powered, silent: not heard
    scanner, _ = bleak_backends(radio)
    adverts = scan_boards(0.4, backend=scanner)  # its own event loop, as the survey runs it
    assert [(a.stage, a.rssi_dbm, a.name) for a in adverts] == [
        (1, -41.0, "tinysplit-1"),
        (2, -58.0, "tinysplit-2"),
        (3, -73.0, "tinysplit-3"),
    ]
    assert [a.address for a in adverts] == [b.address for b in radio.boards[:3]]
    assert all(a.samples >= 2 for a in adverts)
    assert adverts[0].to_dict()["rssi_min_dbm"] == -41.0


def test_other_devices_are_ignored() -> None:
    async def run() -> None:
        radio = _radio(-50.0)
        scanner, _ = bleak_backends(radio)
        central = await radio.power_on()
        # A phone nearby: connectable, named, but no tinysplit manufacturer data.
        from bumble import hci
        from bumble.controller import Controller
        from bumble.core import AdvertisingData
        from bumble.device import Device
        from bumble.host import Host
        from bumble.transport.common import AsyncPipeSink

        assert central is radio.central
        controller = Controller("phone", link=radio.link, public_address="D0:00:00:00:00:01")
        phone = Device(address=hci.Address("D0:00:00:00:00:01"),
                       host=Host(controller, AsyncPipeSink(controller)))  # fmt: skip
        await phone.power_on()
        data = AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, b"phone")])
        await phone.start_advertising(advertising_data=bytes(data))
        adverts = await scan_boards_async(0.3, backend=scanner)
        assert [a.stage for a in adverts] == [1]

    asyncio.run(run())


def test_unmodified_bleak_scanner_sees_the_firmware_advertisement() -> None:
    async def run() -> None:
        radio = _radio(-60.0)
        scanner, _ = bleak_backends(radio)
        found = await BleakScanner.find_device_by_name("tinysplit-1", timeout=2.0, backend=scanner)
        assert found is not None
        seen = await BleakScanner.discover(
            timeout=0.3, return_adv=True, service_uuids=[SERVICE_UUID], backend=scanner
        )
        (device, adv), *_ = seen.values()
        assert device.address == radio.boards[0].address
        assert adv.manufacturer_data == {0xFFFF: b"ts\x01"}
        assert adv.service_uuids == [SERVICE_UUID]
        assert adv.rssi == -60

    asyncio.run(run())


def test_board_link_connects_with_mtu_517_writes_without_response_and_gets_notifications() -> None:
    async def run() -> None:
        radio = _radio(-50.0, -55.0)
        board = radio.boards[1]
        # The board answers every frame with a notification carrying the frame's CRC-16.
        board.on_frame = lambda frame: crc16(frame).to_bytes(2, "little")
        scanner, client = bleak_backends(radio)
        device = await BleakScanner.find_device_by_name("tinysplit-2", timeout=2.0, backend=scanner)
        assert device is not None
        frames = [bytes([k]) * (512 - k) for k in range(12)]
        async with await BoardLink.connect(device, backend=client) as link:
            assert link.mtu_size == REQUESTED_MTU
            assert link.frame_bytes == 512
            data = link.client.services.get_characteristic(DATA_CHAR_UUID)
            ack = link.client.services.get_characteristic(ACK_CHAR_UUID)
            assert data is not None and "write-without-response" in data.properties
            assert ack is not None and "notify" in ack.properties
            assert data.max_write_without_response_size == 514
            for frame in frames:
                await link.write_frame(frame)
            answers = [await link.notification(timeout_s=2.0) for _ in frames]
            with pytest.raises(ConfigError, match="513 B exceeds this link's 512 B"):
                await link.write_frame(bytes(513))
            with pytest.raises(BoardError, match=f"BLE board {device.address}: no notification"):
                await link.notification(timeout_s=0.05)
        assert not link.client.is_connected
        assert board.frames == frames
        assert radio.client_writes == [False] * len(frames)  # write commands, no responses
        assert answers == [crc16(f).to_bytes(2, "little") for f in frames]
        assert radio.boards[0].frames == []

    asyncio.run(run())


def test_bleak_client_api_drives_the_virtual_board_directly() -> None:
    async def run() -> None:
        radio = _radio(-50.0)
        radio.boards[0].on_frame = lambda frame: b"ok"
        _, client = bleak_backends(radio)
        got: asyncio.Queue[bytes] = asyncio.Queue()
        async with BleakClient(radio.boards[0].address, backend=client) as ble:
            assert ble.mtu_size == 517
            await ble.start_notify(ACK_CHAR_UUID, lambda _c, data: got.put_nowait(bytes(data)))
            await ble.write_gatt_char(DATA_CHAR_UUID, b"\x01" * 512, response=True)
            assert await asyncio.wait_for(got.get(), 2.0) == b"ok"
        assert radio.client_writes == [True]

    asyncio.run(run())


def test_a_board_without_the_tinysplit_service_is_refused() -> None:
    async def run() -> None:
        radio = VirtualRadio()
        radio.add_board(1, with_service=False)
        _, client = bleak_backends(radio)
        with pytest.raises(BoardError, match="no tinysplit service 54530001-"):
            await BoardLink.connect(radio.boards[0].address, backend=client)

    asyncio.run(run())


def test_an_absent_board_is_a_clear_error() -> None:
    async def run() -> None:
        radio = _radio(-50.0)
        _, client = bleak_backends(radio)
        with pytest.raises(BoardError, match="BLE board C0:00:00:00:00:99: cannot connect"):
            await BoardLink.connect("C0:00:00:00:00:99", backend=client, timeout_s=0.3)

    asyncio.run(run())


# ------------------------------------------------------------------------ without an adapter


def test_no_dbus_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # bleak's own BlueZ backend, unmodified: its D-Bus connection fails with FileNotFoundError.
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
    with pytest.raises(NoBluetoothAdapter) as info:
        scan_boards(0.2)
    message = str(info.value)
    assert message.startswith("no Bluetooth adapter found (")
    assert "D-Bus" in message and "\n" not in message
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert isinstance(info.value, BoardError)


def test_no_dbus_when_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
    with pytest.raises(NoBluetoothAdapter, match="no Bluetooth adapter found"):
        asyncio.run(BoardLink.connect("C0:00:00:00:00:01", timeout_s=1.0))


def _failing_scanner(error: Exception) -> type[BaseBleakScanner]:
    """A backend whose start fails as bleak's BlueZ backend does without BlueZ or an adapter."""

    class Failing(BaseBleakScanner):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(None, None)

        async def start(self) -> None:
            raise error

        async def stop(self) -> None:
            pass

    return Failing


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (
            BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", ["BlueZ is not running"]),
            "BlueZ: org.freedesktop.DBus.Error.ServiceUnknown BlueZ is not running",
        ),
        (BleakError("No Bluetooth adapters found."), "bleak: No Bluetooth adapters found."),
    ],
)
def test_bluez_and_adapter_errors_are_one_clear_line(error: Exception, why: str) -> None:
    with pytest.raises(NoBluetoothAdapter) as info:
        scan_boards(0.1, backend=_failing_scanner(error))
    assert str(info.value) == f"no Bluetooth adapter found ({why})"


def test_other_failures_are_not_mistaken_for_a_missing_adapter() -> None:
    with pytest.raises(ZeroDivisionError):
        scan_boards(0.1, backend=_failing_scanner(ZeroDivisionError("bug")))
    with pytest.raises(ConfigError, match="scan time must be > 0 s"):
        scan_boards(0.0)
