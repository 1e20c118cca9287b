"""A fake ESP32-S3 ROM bootloader (and flasher stub) on a pty, so the real esptool code runs.

:class:`FakeEsp32S3` serves one pseudo-terminal from a thread: esptool opens :attr:`port` like a
USB serial port and speaks its SLIP-framed serial protocol. The fake answers what esptool sends
to an ESP32-S3 to connect, identify the chip, read the MAC, attach and size the flash, upload and
start the stub, write the flash (plain or deflate-compressed) and check it by MD5:

* ``SYNC`` (a new connection: the chip is back in its ROM, as after the reset esptool does first),
  ``GET_SECURITY_INFO`` (carries the chip id: 9 is an ESP32-S3), ``READ_REG`` / ``WRITE_REG``
  over a register file holding the eFuse MAC words; a write of the SPI ``USR`` bit runs the
  queued SPI flash command (``RDID`` answers a JEDEC id whose size byte gives the flash size,
  ``RDSFDP`` the SFDP signature).
* ``SPI_ATTACH``, ``SPI_SET_PARAMS``, ``CHANGE_BAUDRATE`` (accepted; baud is meaningless on a pty).
* ``MEM_BEGIN`` / ``MEM_DATA`` / ``MEM_END``: the stub upload; ``MEM_END`` with an entry point
  answers, then sends the stub's ``OHAI`` greeting, and the fake answers as the stub from then on
  (MD5 as 16 raw bytes instead of 32 hex characters, 2 status bytes instead of 4).
* ``FLASH_BEGIN`` / ``FLASH_DATA`` / ``FLASH_END`` and ``FLASH_DEFL_BEGIN`` / ``_DATA`` / ``_END``:
  ``*_BEGIN`` erases the 4 KiB sectors the write covers, data blocks are checked against their
  checksum and programmed NOR-style (``flash &= data``: bits only go from 1 to 0, so a write
  without the erase would show).
* ``SPI_FLASH_MD5``, ``ERASE_REGION`` / ``ERASE_FLASH`` (stub) and ``READ_FLASH`` (stub).

Flash contents live in :attr:`FakeEsp32S3.flash` (a ``bytearray``) for tests to read back.
:attr:`FakeEsp32S3.corrupt_writes` makes every write session program one wrong byte, so esptool's
MD5 verification fails as it would on a board whose flash does not keep what it is sent. Any
other command is refused the way the ROM refuses one it does not know (status ``0x01 0x05``).
The protocol is esptool's (``esptool/loader.py``, ``esptool/targets/esp32s3.py``) and Espressif's
"Serial Protocol" documentation.

Run it by hand (``python -m tests.testbed.hw.fake_rom --mac 24:0a:c4:00:00:01``) to point
``esptool --no-stub`` or ``tinysplit flash`` at the printed port.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import select
import signal
import struct
import threading
import tty
import zlib
from collections import Counter
from collections.abc import Callable
from types import TracebackType

__all__ = ["FakeEsp32S3", "parse_mac"]

ESP32S3_CHIP_ID = 9
ESP32C3_CHIP_ID = 5
SECTOR_BYTES = 0x1000

# Command opcodes (esptool ESPLoader.ESP_CMDS).
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14
ERASE_FLASH, ERASE_REGION, READ_FLASH = 0xD0, 0xD1, 0xD2

NAMES = {
    FLASH_BEGIN: "FLASH_BEGIN",
    FLASH_DATA: "FLASH_DATA",
    FLASH_END: "FLASH_END",
    MEM_BEGIN: "MEM_BEGIN",
    MEM_END: "MEM_END",
    MEM_DATA: "MEM_DATA",
    SYNC: "SYNC",
    WRITE_REG: "WRITE_REG",
    READ_REG: "READ_REG",
    SPI_SET_PARAMS: "SPI_SET_PARAMS",
    SPI_ATTACH: "SPI_ATTACH",
    CHANGE_BAUDRATE: "CHANGE_BAUDRATE",
    FLASH_DEFL_BEGIN: "FLASH_DEFL_BEGIN",
    FLASH_DEFL_DATA: "FLASH_DEFL_DATA",
    FLASH_DEFL_END: "FLASH_DEFL_END",
    SPI_FLASH_MD5: "SPI_FLASH_MD5",
    GET_SECURITY_INFO: "GET_SECURITY_INFO",
    ERASE_FLASH: "ERASE_FLASH",
    ERASE_REGION: "ERASE_REGION",
    READ_FLASH: "READ_FLASH",
}

# Registers (esptool/targets/esp32s3.py).
MAC_EFUSE_REG = 0x60007044
CHIP_DETECT_MAGIC_REG = 0x40001000
SPI_BASE = 0x60002000
SPI_CMD_REG, SPI_ADDR_REG, SPI_USR2_REG, SPI_W0_REG = (
    SPI_BASE,
    SPI_BASE + 0x04,
    SPI_BASE + 0x20,
    SPI_BASE + 0x58,
)
SPI_CMD_USR = 1 << 18
SPIFLASH_RDID, SPIFLASH_RDSFDP = 0x9F, 0x5A
SFDP_SIGNATURE = 0x50444653
JEDEC_WINBOND = 0x40EF  # manufacturer 0xEF, memory type 0x40, as RDID returns them (LSB first)

ROM_SYNC_VALUE = 0x20120707
STATUS_OK = b"\x00\x00"
STATUS_INVALID_COMMAND = b"\x01\x05"
STATUS_BAD_CHECKSUM = b"\x01\x07"
CHECKSUM_SEED = 0xEF

_Handler = Callable[[int, bytes, int], None]


def parse_mac(text: str) -> bytes:
    """``"24:0a:c4:00:00:01"`` (or ``-`` separated, or 12 hex digits) as 6 bytes."""
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"a MAC has 6 bytes, got {text!r}")
    return raw


def _slip(frame: bytes) -> bytes:
    return b"\xc0" + frame.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class FakeEsp32S3:
    """One fake ESP32-S3 in download mode, on a fresh pty.

    Args:
        mac: the base MAC in eFuse (what ``esptool read-mac`` shows).
        flash_bytes: flash size (a power of two; the RDID answer encodes it): 8 MiB by default,
            as on an ESP32-S3-WROOM-1-N8R8.
        chip_id: the chip id ``GET_SECURITY_INFO`` reports (9: ESP32-S3; 5 makes an ESP32-C3).

    Attributes:
        port: the pty path to hand to esptool.
        flash: the flash contents (erased flash reads ``0xff``).
        corrupt_writes: when True, each write session programs one byte wrong.
        ops: how many times each command was received, by name.
        write_sessions: ``(offset, bytes)`` of every flash write session started.
    """

    def __init__(
        self,
        *,
        mac: str = "24:0a:c4:00:00:01",
        flash_bytes: int = 8 << 20,
        chip_id: int = ESP32S3_CHIP_ID,
    ) -> None:
        if flash_bytes <= 0 or flash_bytes & (flash_bytes - 1):
            raise ValueError("flash_bytes must be a power of two")
        self.mac = parse_mac(mac)
        self.chip_id = chip_id
        self.flash = bytearray(b"\xff" * flash_bytes)
        self.corrupt_writes = False
        self.ops: Counter[str] = Counter()
        self.write_sessions: list[tuple[int, int]] = []
        self._regs: dict[int, int] = {}
        self._stub = False
        self._write: dict[str, int] = {}
        self._inflate: zlib._Decompress | None = None
        self._corrupt_pending = False
        self._master, self._slave = os.openpty()
        # Raw mode: no echo, no line editing, every byte passes (the slave end is esptool's).
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"fake-rom {self.port}")
        self._thread.daemon = True
        self._thread.start()

    # Lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving and close the pty (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            os.close(fd)

    def __enter__(self) -> FakeEsp32S3:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes of flash from ``offset``."""
        return bytes(self.flash[offset : offset + size])

    # Serving -----------------------------------------------------------------------------------

    def _serve(self) -> None:
        frame: bytearray | None = None
        escaped = False
        while not self._stop.is_set():
            if not select.select([self._master], [], [], 0.02)[0]:
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            for byte in chunk:
                if byte == 0xC0:
                    if frame:
                        self._handle(bytes(frame))
                    frame = bytearray()
                elif frame is None:
                    continue  # noise before the first frame start
                elif escaped:
                    frame.append(0xC0 if byte == 0xDC else 0xDB)
                    escaped = False
                elif byte == 0xDB:
                    escaped = True
                else:
                    frame.append(byte)

    def _send(self, frame: bytes) -> None:
        os.write(self._master, _slip(frame))

    def _reply(self, op: int, value: int = 0, data: bytes = b"", status: bytes = STATUS_OK) -> None:
        # The ROM sends 2 status bytes and 2 reserved ones after the data; the stub only 2.
        body = data + status + (b"" if self._stub else b"\x00\x00")
        self._send(struct.pack("<BBHI", 1, op, len(body), value) + body)

    def _handle(self, frame: bytes) -> None:
        if len(frame) < 8:
            return  # READ_FLASH acknowledgements, which the fake does not need
        direction, op, size, checksum = struct.unpack("<BBHI", frame[:8])
        data = frame[8 : 8 + size]
        if direction != 0:
            return
        self.ops[NAMES.get(op, hex(op))] += 1
        handler = self._handlers().get(op)
        if handler is None:
            self._reply(op, status=STATUS_INVALID_COMMAND)
            return
        handler(op, data, checksum)

    def _handlers(self) -> dict[int, _Handler]:
        return {
            SYNC: self._sync,
            GET_SECURITY_INFO: self._security_info,
            READ_REG: self._read_reg,
            WRITE_REG: self._write_reg,
            SPI_ATTACH: self._ok,
            SPI_SET_PARAMS: self._ok,
            CHANGE_BAUDRATE: self._ok,
            MEM_BEGIN: self._ok,
            MEM_DATA: self._ok,
            MEM_END: self._mem_end,
            FLASH_BEGIN: self._flash_begin,
            FLASH_DEFL_BEGIN: self._flash_begin,
            FLASH_DATA: self._flash_data,
            FLASH_DEFL_DATA: self._flash_data,
            FLASH_END: self._ok,
            FLASH_DEFL_END: self._ok,
            SPI_FLASH_MD5: self._md5,
            ERASE_FLASH: self._erase_flash,
            ERASE_REGION: self._erase_region,
            READ_FLASH: self._read_flash,
        }

    # Commands ----------------------------------------------------------------------------------

    def _ok(self, op: int, data: bytes, checksum: int) -> None:
        self._reply(op)

    def _sync(self, op: int, data: bytes, checksum: int) -> None:
        if data != b"\x07\x07\x12\x20" + b"\x55" * 32:
            return  # the ROM ignores a malformed SYNC
        # A SYNC starts a connection after esptool's reset: the ROM runs, not a stub.
        self._stub = False
        for _ in range(8):
            self._reply(op, ROM_SYNC_VALUE)

    def _security_info(self, op: int, data: bytes, checksum: int) -> None:
        # flags, flash_crypt_cnt, 7 key purposes, chip id, API version
        self._reply(op, data=struct.pack("<IBBBBBBBBII", 0, 0, *([0] * 7), self.chip_id, 0))

    def _register(self, addr: int) -> int:
        mac = self.mac
        if addr == MAC_EFUSE_REG:
            return int.from_bytes(mac[2:], "big")
        if addr == MAC_EFUSE_REG + 4:
            return int.from_bytes(mac[:2], "big")
        if addr == CHIP_DETECT_MAGIC_REG:
            return self.chip_id
        return self._regs.get(addr, 0)

    def _read_reg(self, op: int, data: bytes, checksum: int) -> None:
        (addr,) = struct.unpack("<I", data[:4])
        self._reply(op, self._register(addr))

    def _write_reg(self, op: int, data: bytes, checksum: int) -> None:
        for start in range(0, len(data) - 15, 16):
            addr, value, mask, _delay_us = struct.unpack("<IIII", data[start : start + 16])
            self._regs[addr] = (self._register(addr) & ~mask) | (value & mask)
            if addr == SPI_CMD_REG and self._regs[addr] & SPI_CMD_USR:
                self._run_spi_command()
        self._reply(op)

    def _run_spi_command(self) -> None:
        command = self._regs.get(SPI_USR2_REG, 0) & 0xFF
        if command == SPIFLASH_RDID:
            size_id = len(self.flash).bit_length() - 1
            self._regs[SPI_W0_REG] = (size_id << 16) | JEDEC_WINBOND
        elif command == SPIFLASH_RDSFDP and self._regs.get(SPI_ADDR_REG, 0) == 0:
            self._regs[SPI_W0_REG] = SFDP_SIGNATURE
        else:
            self._regs[SPI_W0_REG] = 0
        self._regs[SPI_CMD_REG] &= ~SPI_CMD_USR  # done at once

    def _mem_end(self, op: int, data: bytes, checksum: int) -> None:
        no_entry, entry = struct.unpack("<II", data[:8])
        self._reply(op)
        if not no_entry and entry:
            self._stub = True
            self._send(b"OHAI")  # the stub's greeting once it runs

    def _erase(self, offset: int, size: int) -> None:
        start = offset - offset % SECTOR_BYTES
        end = -(-(offset + size) // SECTOR_BYTES) * SECTOR_BYTES
        self.flash[start:end] = b"\xff" * (min(end, len(self.flash)) - start)

    def _flash_begin(self, op: int, data: bytes, checksum: int) -> None:
        size, _blocks, _block_bytes, offset = struct.unpack("<IIII", data[:16])
        if offset + size > len(self.flash):
            self._reply(op, status=b"\x01\x06")
            return
        self._erase(offset, size)
        self._write = {"offset": offset, "pos": offset}
        self._inflate = zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None
        self._corrupt_pending = self.corrupt_writes
        self.write_sessions.append((offset, size))
        self._reply(op)

    def _flash_data(self, op: int, data: bytes, checksum: int) -> None:
        size, _seq, _, _ = struct.unpack("<IIII", data[:16])
        block = data[16 : 16 + size]
        state = CHECKSUM_SEED
        for byte in block:
            state ^= byte
        if state != checksum or not self._write:
            self._reply(op, status=STATUS_BAD_CHECKSUM)
            return
        if op == FLASH_DEFL_DATA:
            if self._inflate is None:
                self._reply(op, status=STATUS_INVALID_COMMAND)
                return
            block = self._inflate.decompress(block)
        pos = self._write["pos"]
        programmed = bytearray(block)
        if self._corrupt_pending and programmed:
            programmed[0] ^= 0x5A
            self._corrupt_pending = False
        end = min(pos + len(programmed), len(self.flash))
        old = int.from_bytes(self.flash[pos:end], "big")
        new = int.from_bytes(programmed[: end - pos], "big")
        self.flash[pos:end] = (old & new).to_bytes(end - pos, "big")  # NOR: bits only clear
        self._write["pos"] = pos + len(block)
        self._reply(op)

    def _md5(self, op: int, data: bytes, checksum: int) -> None:
        addr, size, _, _ = struct.unpack("<IIII", data[:16])
        digest = hashlib.md5(self.flash[addr : addr + size])
        self._reply(op, data=digest.digest() if self._stub else digest.hexdigest().encode())

    def _erase_flash(self, op: int, data: bytes, checksum: int) -> None:
        self.flash[:] = b"\xff" * len(self.flash)
        self._reply(op)

    def _erase_region(self, op: int, data: bytes, checksum: int) -> None:
        offset, size = struct.unpack("<II", data[:8])
        self._erase(offset, size)
        self._reply(op)

    def _read_flash(self, op: int, data: bytes, checksum: int) -> None:
        offset, size, block_bytes, _in_flight = struct.unpack("<IIII", data[:16])
        if not self._stub:
            self._reply(op, status=STATUS_INVALID_COMMAND)
            return
        self._reply(op)
        chunk = self.read(offset, size)
        for start in range(0, size, block_bytes):
            self._send(chunk[start : start + block_bytes])
        self._send(hashlib.md5(chunk).digest())


def main() -> None:
    """Serve one fake board until interrupted; prints the port."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mac", default="24:0a:c4:00:00:01")
    parser.add_argument("--flash-mb", type=int, default=8)
    args = parser.parse_args()
    with FakeEsp32S3(mac=args.mac, flash_bytes=args.flash_mb << 20) as rom:
        print(rom.port, flush=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
        print(" ".join(f"{name}={n}" for name, n in sorted(rom.ops.items())), flush=True)


if __name__ == "__main__":
    main()
