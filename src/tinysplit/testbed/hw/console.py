"""The board console protocol, version 1, on the host side (``docs/protocol.md``, "Console").

A :class:`Console` owns one serial stream. A reader thread drains it all the time, so a board
or scribe that streams events never blocks on a full buffer while the host talks to another
board, and sorts each received line:

* ``TS1 ok ...`` / ``TS1 err <code> <message>``: the reply to the command in flight
  (:meth:`Console.command`). Each command gets exactly one reply, in order.
* ``TS1 evt <name> <key>=<value> ...``: an :class:`Event`, queued with the host's monotonic time
  of arrival (:meth:`Console.pop_events`, :meth:`Console.wait_event`).
* any other decodable line: ESP-IDF log output, counted (:attr:`Console.log_lines`) and kept in a
  short history for error messages.
* undecodable bytes, malformed ``TS1`` lines, over-long lines: garbage, skipped and counted
  (:attr:`Console.garbage_lines`). Bytes before a ``TS1 `` prefix on the same line (noise, a
  boot message without newline) are garbage too; the line from the prefix on is still used.

A port that fails (unplugged board, EOF on a pty) or a board that stays silent past the timeout
raises :class:`~tinysplit.errors.BoardError` naming the board and its port.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Self

import numpy as np
import numpy.typing as npt

from tinysplit.errors import BoardError
from tinysplit.testbed.hw.console_lines import (
    DATA_MAX_BYTES,
    MAX_LINE_BYTES,
    PREFIX,
    PROTO,
    ConsoleCommandError,
    Event,
    Reply,
    parse_fields,
    parse_line,
)

if TYPE_CHECKING:
    from tinysplit.testbed.hw.serial_port import SerialLike

__all__ = [
    "DATA_MAX_BYTES",
    "PROTO",
    "Console",
    "ConsoleCommandError",
    "Event",
    "Reply",
    "parse_fields",
    "parse_line",
]

_MAX_RX_LINE = 16384  # longer without a newline: garbage (a board's lines stay under 1024 B)


class Console:
    """Host side of one board's (or the scribe's) console.

    Args:
        stream: the open serial stream; the console owns it and closes it in :meth:`close`.
        label: the board's name for error messages, e.g. ``"b2 (stage 2)"``.
        port: the port's path or URL, for error messages.
        timeout_s: default reply timeout of :meth:`command`, in seconds.
        history: how many recent log lines to keep for error messages.

    Attributes:
        log_lines: lines without the ``TS1 `` prefix received so far.
        garbage_lines: undecodable or malformed lines (and noise before a prefix) skipped.
        stray_replies: replies that arrived with no command waiting, dropped.
        recent_log: the last ``history`` log lines.
    """

    def __init__(
        self,
        stream: SerialLike,
        *,
        label: str,
        port: str,
        timeout_s: float = 5.0,
        history: int = 20,
    ) -> None:
        self.stream = stream
        self.label = label
        self.port = port
        self.timeout_s = timeout_s
        self.log_lines = 0
        self.garbage_lines = 0
        self.stray_replies = 0
        self.recent_log: deque[str] = deque(maxlen=history)
        self._cond = threading.Condition()
        self._command_lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._events: deque[Event] = deque()
        self._waiting = False
        self._failure: str | None = None
        self._stopping = threading.Event()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"console {label}", daemon=True
        )
        self._reader.start()

    # ----------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop the reader thread and close the stream (idempotent)."""
        self._stopping.set()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=2.0)
        with contextlib.suppress(OSError):  # already gone (unplugged): nothing to release
            self.stream.close()
        with self._cond:
            if self._failure is None:
                self._failure = "closed by the host"
            self._cond.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------- commands

    def command(self, line: str, *, timeout_s: float | None = None) -> Reply:
        """Send one command line and return its ``ok`` or ``err`` reply (see :meth:`Reply.require`).

        Only the first reply after the line is sent is taken; replies arriving while no command
        waits (late answers to a timed-out command) are dropped and counted in
        :attr:`stray_replies`. Events arriving meanwhile are queued.

        Args:
            line: the command, without line ending; ASCII, at most 1024 bytes.
            timeout_s: how long to wait for the reply, in seconds (default: the console's).

        Raises:
            ValueError: the line is not one printable ASCII line of at most 1024 bytes.
            BoardError: the port failed or closed, or no reply came in time; the message names
                the board, its port and the command.
        """
        if not line or not line.isascii() or not line.isprintable() or len(line) > MAX_LINE_BYTES:
            raise ValueError(f"not a valid console command line: {line[:60]!r}")
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        with self._command_lock:
            with self._cond:
                self._raise_if_failed(f"cannot send {line!r}")
                self.stray_replies += len(self._replies)
                self._replies.clear()
                self._waiting = True
            try:
                self._write(line, f"cannot send {line!r}")
                reply = self._await_reply(line, wait_s)
            finally:
                with self._cond:
                    self._waiting = False
        return replace(reply, command=line, label=self.label, port=self.port)

    def hello(self, *, timeout_s: float | None = None) -> dict[str, str]:
        """Send ``hello``, check ``proto=1`` and return the reply's fields.

        Raises:
            BoardError: an error reply, no reply, or another protocol version.
        """
        fields = self.command("hello", timeout_s=timeout_s).require().fields
        proto = fields.get("proto")
        if proto != PROTO:
            raise BoardError(
                f"board {self.label} on {self.port}: speaks console protocol proto={proto}, "
                f"this host speaks proto={PROTO} (flash a matching firmware)"
            )
        return fields

    def inject(
        self,
        inference: int,
        exponent: int,
        values: npt.NDArray[np.int16],
        *,
        timeout_s: float | None = None,
    ) -> Reply:
        """Hand stage 1 an input tensor: ``inject``, ``data`` lines of <= 512 B, ``end``.

        Args:
            inference: the inference sequence number, 0..65535.
            exponent: the tensor's exponent (real = value * 2^exponent), -128..127.
            values: the int16 values in NHWC order (any shape; sent flattened, little-endian).
            timeout_s: reply timeout per line in seconds (default: the console's).

        Returns:
            The ``end`` reply (``ok inference=<n>``).

        Raises:
            ValueError: bad inference, exponent or dtype.
            ConsoleCommandError: the board refused a line (e.g. ``err state previous input not
                consumed yet``); the inject is then dropped or left open as the protocol says.
            BoardError: port failure, silence, or a reply that does not match what was sent.
        """
        if not 0 <= inference <= 0xFFFF:
            raise ValueError(f"inference must be 0..65535, got {inference}")
        if not -128 <= exponent <= 127:
            raise ValueError(f"exponent must be -128..127, got {exponent}")
        array = np.asarray(values)
        if array.dtype != np.int16:
            raise ValueError(f"values must be int16, got {array.dtype}")
        payload = array.astype("<i2").tobytes()
        crc = zlib.crc32(payload)
        opened = self.command(
            f"inject {inference} {exponent} {len(payload)} {crc:08x}", timeout_s=timeout_s
        ).require()
        chunk = min(DATA_MAX_BYTES, _int_field(opened, "max_data", DATA_MAX_BYTES))
        if chunk < 1:
            raise BoardError(f"board {self.label} on {self.port}: bad max_data in {opened.raw!r}")
        for offset in range(0, len(payload), chunk):
            piece = payload[offset : offset + chunk]
            text = base64.b64encode(piece).decode("ascii")
            got = self.command(f"data {offset} {text}", timeout_s=timeout_s).require()
            if _int_field(got, "received", -1) != offset + len(piece):
                raise BoardError(
                    f"board {self.label} on {self.port}: 'data {offset} ...' answered "
                    f"{got.raw!r}, expected received={offset + len(piece)}"
                )
        return self.command("end", timeout_s=timeout_s).require()

    def read_output(
        self,
        inference: int,
        nbytes: int,
        *,
        crc32: int | None = None,
        timeout_s: float | None = None,
    ) -> bytes:
        """Read the last stage's latest output with ``read`` lines of <= 512 B.

        Args:
            inference: the output's inference number (from its ``evt output``).
            nbytes: its size in bytes (the event's ``bytes``).
            crc32: if given, the expected CRC-32 of the bytes (the event's ``crc32``).
            timeout_s: reply timeout per line in seconds (default: the console's).

        Returns:
            The output's little-endian int16 bytes.

        Raises:
            ConsoleCommandError: the board refused (``err range``: another inference is latest).
            BoardError: port failure, silence, bad base64, a wrong length or CRC-32.
        """
        parts: list[bytes] = []
        for offset in range(0, nbytes, DATA_MAX_BYTES):
            length = min(DATA_MAX_BYTES, nbytes - offset)
            reply = self.command(
                f"read {inference} {offset} {length}", timeout_s=timeout_s
            ).require()
            try:
                piece = base64.b64decode(reply.words[0] if reply.words else "", validate=True)
            except (binascii.Error, ValueError):
                piece = b""
            if len(piece) != length:
                raise BoardError(
                    f"board {self.label} on {self.port}: 'read {inference} {offset} {length}' "
                    f"answered {reply.raw[:80]!r}, not {length} bytes of base64"
                )
            parts.append(piece)
        data = b"".join(parts)
        if crc32 is not None and zlib.crc32(data) != crc32:
            raise BoardError(
                f"board {self.label} on {self.port}: output of inference {inference} read back "
                f"with CRC-32 {zlib.crc32(data):08x}, the board announced {crc32:08x}"
            )
        return data

    # ----------------------------------------------------------------------------- events

    def pop_events(self, name: str | None = None) -> list[Event]:
        """Remove and return the queued events (only those called ``name`` if given), in order."""
        with self._cond:
            if name is None:
                taken = list(self._events)
                self._events.clear()
                return taken
            taken = [e for e in self._events if e.name == name]
            kept = [e for e in self._events if e.name != name]
            self._events = deque(kept)
            return taken

    def wait_event(
        self,
        name: str,
        *,
        timeout_s: float,
        match: Callable[[Event], bool] | None = None,
    ) -> Event:
        """Remove and return the first queued or arriving event ``name`` that ``match`` accepts.

        Other events stay queued in order.

        Args:
            name: the event name.
            timeout_s: how long to wait, in seconds.
            match: an extra predicate (e.g. on ``fields["inference"]``).

        Raises:
            BoardError: the port failed or closed, or no such event came in time; the message
                names the board, its port and the event.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for index, event in enumerate(self._events):
                    if event.name == name and (match is None or match(event)):
                        del self._events[index]
                        return event
                self._raise_if_failed(f"waiting for evt {name}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BoardError(
                        f"board {self.label} on {self.port}: no 'evt {name}' within "
                        f"{timeout_s:g} s{self._history_note()}"
                    )
                self._cond.wait(left)

    # ----------------------------------------------------------------------------- internals

    def _history_note(self) -> str:
        if not self.recent_log:
            return ""
        return f" (last log line: {self.recent_log[-1][:120]!r})"

    def _raise_if_failed(self, doing: str) -> None:
        if self._failure is not None:
            raise BoardError(
                f"board {self.label} on {self.port}: unplugged or closed ({self._failure}); {doing}"
            )

    def _write(self, line: str, doing: str) -> None:
        try:
            # No flush(): pyserial's write returns once the bytes are with the OS, and its
            # flush (tcdrain) fails with termios.error, not OSError, on a port gone mid-call.
            self.stream.write(line.encode("ascii") + b"\n")
        except OSError as exc:
            with self._cond:
                if self._failure is None:
                    self._failure = str(exc) or type(exc).__name__
                self._cond.notify_all()
            self._raise_if_failed(doing)

    def _await_reply(self, line: str, wait_s: float) -> Reply:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while not self._replies:
                self._raise_if_failed(f"no reply to {line!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BoardError(
                        f"board {self.label} on {self.port}: no reply to {line!r} within "
                        f"{wait_s:g} s{self._history_note()}"
                    )
                self._cond.wait(left)
            return self._replies.popleft()

    def _read_loop(self) -> None:
        buffer = bytearray()
        skipping = False  # inside an over-long line, dropped up to its newline
        try:
            while not self._stopping.is_set():
                chunk = self.stream.read(max(1, self.stream.in_waiting))
                if not chunk:
                    continue
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    if skipping:
                        skipping = False
                    elif end > _MAX_RX_LINE:
                        self._count_garbage()
                    else:
                        self._handle_line(bytes(buffer[:end]))
                    del buffer[: end + 1]
                if len(buffer) > _MAX_RX_LINE:
                    if not skipping:
                        self._count_garbage()
                    skipping = True
                    buffer.clear()
        except Exception as exc:  # any failure of the port ends the console
            reason = "EOF" if isinstance(exc, OSError) and not str(exc) else str(exc)
            with self._cond:
                if self._failure is None and not self._stopping.is_set():
                    self._failure = reason or type(exc).__name__
                self._cond.notify_all()
        finally:
            with self._cond:
                if self._failure is None and not self._stopping.is_set():
                    self._failure = "reader stopped"
                self._cond.notify_all()

    def _count_garbage(self) -> None:
        with self._cond:
            self.garbage_lines += 1

    def _handle_line(self, raw: bytes) -> None:
        raw = raw.rstrip(b"\r")
        if not raw:
            return
        start = raw.find(PREFIX)
        if start > 0:
            self._count_garbage()  # noise before the prefix on the same line
            raw = raw[start:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._count_garbage()
            return
        if start < 0:
            with self._cond:
                self.log_lines += 1
                self.recent_log.append(text)
            return
        parsed = parse_line(text)
        with self._cond:
            if parsed is None:
                self.garbage_lines += 1
            elif isinstance(parsed, Event):
                self._events.append(parsed)
            elif self._waiting and not self._replies:
                self._replies.append(parsed)
            else:
                self.stray_replies += 1
            self._cond.notify_all()


def _int_field(reply: Reply, key: str, default: int) -> int:
    try:
        return int(reply.fields[key])
    except (KeyError, ValueError):
        return default
