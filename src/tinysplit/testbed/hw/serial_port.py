"""Serial ports of the boards: open by path, pyserial URL or USB serial number.

This is the only tinysplit module that imports ``serial`` (pyserial). Ports may be device paths
(``/dev/ttyACM0``, a pty such as ``/dev/pts/5``) or pyserial URLs (``socket://host:port``,
``loop://``). Everything else talks to a port through :class:`SerialLike`, so tests and emulators
can hand in any object with the same five members.
"""

from __future__ import annotations

import logging
from typing import Protocol

import serial
from serial.tools import list_ports

from tinysplit.errors import BoardError

__all__ = ["SerialLike", "find_serial_number", "is_url", "list_serial_ports", "open_serial"]

log = logging.getLogger(__name__)


class SerialLike(Protocol):
    """The part of :class:`serial.Serial` the console uses.

    ``read(size)`` returns at most ``size`` bytes, waiting at most the stream's read timeout for
    the first one (``b""`` when none came); it raises :class:`OSError` (pyserial's
    ``SerialException`` is one) when the port is gone. ``write`` raises :class:`OSError` likewise.
    """

    @property
    def in_waiting(self) -> int:
        """Bytes received and not read yet."""

    def read(self, size: int = 1, /) -> bytes:
        """Read up to ``size`` bytes (see the class docstring)."""

    def write(self, data: bytes, /) -> int | None:
        """Write ``data``; returns the byte count (pyserial) or None."""

    def flush(self) -> None:
        """Wait until everything written has been handed to the device."""

    def close(self) -> None:
        """Close the port; further reads and writes fail."""


def is_url(port: str) -> bool:
    """True when ``port`` is a pyserial URL (``scheme://...``) rather than a device path."""
    return "://" in port


def list_serial_ports() -> list[tuple[str, str | None]]:
    """Serial ports the operating system lists now, as ``(device, USB serial number or None)``.

    Ptys are never listed (pyserial lists only real serial devices).
    """
    return [(info.device, info.serial_number) for info in list_ports.comports()]


def find_serial_number(serial_number: str, *, label: str | None = None) -> str:
    """The device path of the one USB serial port with this USB serial number.

    Args:
        serial_number: the USB descriptor's serial number (``iSerial``, as ``lsusb -v`` or
            ``python -m serial.tools.list_ports -v`` shows it); compared exactly.
        label: the board's name for the error message.

    Raises:
        BoardError: no port, or several ports, with that serial number; the message names the
            board and lists the serial numbers present.
    """
    who = f"board {label}" if label else "serial port"
    ports = list_serial_ports()
    matches = sorted(device for device, number in ports if number == serial_number)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise BoardError(
            f"{who}: serial number {serial_number!r} is on several ports: {', '.join(matches)}"
        )
    present = sorted(f"{number} ({device})" for device, number in ports if number)
    listed = ", ".join(present) if present else "none"
    raise BoardError(
        f"{who}: no serial port with serial number {serial_number!r} is plugged in "
        f"(serial numbers present: {listed})"
    )


def open_serial(
    *,
    port: str | None,
    serial_number: str | None,
    label: str,
    baudrate: int = 115200,
    timeout_s: float = 0.05,
    write_timeout_s: float | None = 5.0,
) -> SerialLike:
    """Open a board's serial port, found by path/URL or by USB serial number.

    Args:
        port: a device path or pyserial URL; takes precedence over ``serial_number``.
        serial_number: the USB serial number to look up when ``port`` is None.
        label: the board's name for error messages (``"b2 (stage 2)"``).
        baudrate: bits per second; ignored by USB-Serial-JTAG ports and ptys.
        timeout_s: read timeout in seconds: how long ``read`` waits for a first byte.
        write_timeout_s: write timeout in seconds (None: block), so a board that stopped
            reading cannot hang the host forever (an extension of the lead's contract).

    Returns:
        The open port (a :class:`serial.Serial`, or a URL handler's equivalent).

    Raises:
        BoardError: neither ``port`` nor ``serial_number`` given, the serial number is not
            plugged in, or the port cannot be opened; the message names the board and the port.
    """
    if port is None:
        if serial_number is None:
            raise BoardError(f"board {label}: neither a port nor a serial number is given")
        port = find_serial_number(serial_number, label=label)
    try:
        stream = serial.serial_for_url(
            port,
            baudrate=baudrate,
            timeout=timeout_s,
            write_timeout=write_timeout_s,
        )
    except (OSError, ValueError) as exc:
        # SerialException is an OSError; ValueError is a bad URL or setting.
        raise BoardError(f"board {label} on {port}: cannot open the serial port: {exc}") from exc
    log.debug("opened %s for board %s", port, label)
    return stream
