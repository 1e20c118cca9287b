"""The board side of the TS1 line protocol (``docs/protocol.md``, "Console" / "Lines").

This mirrors the firmware's ``ts_console.c`` so an emulated board frames, splits and answers
lines exactly as a real one: a line ends at ``\\n`` or ``\\r``; blank lines are ignored; a line
longer than 1024 bytes is discarded up to its terminator and answered ``err size``; a NUL byte
or more than 16 words is ``err usage``; an unknown command ``err unknown``; ``help`` and
``help <command>`` are built in. Every command gets exactly one ``TS1 ok`` / ``TS1 err`` reply;
``TS1 evt`` lines may come at any time (a handler may emit some before its reply).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PREFIX = "TS1 "
#: Longest command line (terminator excluded) and longest board line before its newline.
LINE_MAX = 1024
#: Most words in one command line.
MAX_WORDS = 16

Write = Callable[[bytes], None]
Handler = Callable[[Sequence[str]], str]


class CommandError(Exception):
    """A command failed: the console answers ``TS1 err <code> <message>``.

    Attributes:
        code: the protocol's error code (``usage``, ``unknown``, ``range``, ``state``, ``crc``,
            ``size``, ``io``).
        message: the text for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def usage_error(usage: str) -> CommandError:
    """``err usage <usage>``: wrong arguments for a command."""
    return CommandError("usage", usage)


def no_args(args: Sequence[str], usage: str) -> None:
    """Raise ``err usage`` unless the command got no arguments."""
    if args:
        raise usage_error(usage)


@dataclass(frozen=True, slots=True)
class Command:
    """One console command: its usage line (``help <command>``) and its handler.

    The handler gets the words after the command name and returns the ``ok`` payload (``""``
    for a bare ``TS1 ok``) or raises :class:`CommandError`.
    """

    usage: str
    handler: Handler


def _clean(text: str) -> str:
    """A line break inside a value would split a protocol line in two (as ``format_line``)."""
    return text.replace("\n", " ").replace("\r", " ")


class LineConsole:
    """Line assembly, dispatch and reply formatting shared by the emulated boards and scribe.

    Subclasses fill :attr:`commands` (in the order ``help`` lists them). Output goes to the
    ``write`` callable given at construction, one complete ``\\n``-terminated line per call.

    Attributes:
        lines: command lines received (blank lines excluded), as the firmware's ``con->lines``.
        errors: ``err`` replies sent.
    """

    def __init__(self, write: Write) -> None:
        self._write = write
        self._buffer = bytearray()
        self._overflow = False
        self.commands: dict[str, Command] = {}
        self.lines = 0
        self.errors = 0
        self._after: list[Callable[[], None]] = []

    # ---- output ----------------------------------------------------------------------------

    def raw_line(self, text: str) -> None:
        """Write one line as is (a log line without the ``TS1`` prefix)."""
        self._write(_clean(text).encode("latin-1", "replace") + b"\n")

    def event(self, name: str, payload: str) -> None:
        """Send ``TS1 evt <name> <payload>`` (replaced by ``what=event_too_long`` if too long)."""
        line = _clean(f"{PREFIX}evt {name} {payload}".rstrip())
        if len(line) > LINE_MAX:
            line = f"{PREFIX}evt error what=event_too_long event={name}"
        self._write(line.encode("latin-1", "replace") + b"\n")

    def _reply_ok(self, payload: str) -> None:
        line = _clean(f"{PREFIX}ok {payload}".rstrip())
        if len(line) > LINE_MAX:  # a cut ok reply would be read as complete data: refuse it
            self._reply_err("size", f"reply longer than {LINE_MAX} bytes")
            return
        self._write(line.encode("latin-1", "replace") + b"\n")

    def _reply_err(self, code: str, message: str) -> None:
        line = _clean(f"{PREFIX}err {code} {message}".rstrip())[:LINE_MAX]
        self._write(line.encode("latin-1", "replace") + b"\n")
        self.errors += 1

    # ---- input -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Take bytes from the host; every complete line is dispatched at once."""
        for byte in data:
            if byte in (0x0A, 0x0D):
                self._end_line()
            elif self._overflow:
                continue
            elif len(self._buffer) < LINE_MAX:
                self._buffer.append(byte)
            else:
                self._overflow = True

    def _end_line(self) -> None:
        line, overflow = bytes(self._buffer), self._overflow
        self._buffer.clear()
        self._overflow = False
        if overflow:
            self.lines += 1
            self._reply_err("size", f"line longer than {LINE_MAX} bytes")
        elif line:
            self.dispatch(line)

    def dispatch(self, line: bytes) -> None:
        """Run one command line and send its reply."""
        self.lines += 1
        if b"\0" in line:
            self._reply_err("usage", "line contains a NUL byte")
            return
        words = line.decode("latin-1").replace("\t", " ").split()
        if not words:
            self.lines -= 1  # blank line: not a command
            return
        if len(words) > MAX_WORDS:
            self._reply_err("usage", f"more than {MAX_WORDS} words")
            return
        name, args = words[0], words[1:]
        try:
            command = self.commands.get(name)
            if command is not None:
                payload = command.handler(args)
            elif name == "help":
                payload = self._help(args)
            else:
                raise CommandError("unknown", f"no command {name}")
        except CommandError as exc:
            self._after.clear()
            self._reply_err(exc.code, exc.message)
            return
        self._reply_ok(payload)
        after, self._after = self._after, []
        for action in after:
            action()

    def after_reply(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the current command's ``ok`` reply is written (``reset``)."""
        self._after.append(action)

    def _help(self, args: Sequence[str]) -> str:
        if len(args) > 1:
            raise usage_error("help [command]")
        if args:
            if args[0] == "help":
                return "help [command]"
            command = self.commands.get(args[0])
            if command is None:
                raise CommandError("unknown", f"no command {args[0]}")
            return command.usage
        return "commands=" + ",".join(("help", *self.commands))


def parse_u32(text: str, maximum: int = 0xFFFFFFFF) -> int | None:
    """A decimal number without sign, at most ``maximum`` (the firmware's strict ``parse_u32``)."""
    if not text or not all("0" <= c <= "9" for c in text):
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_i8(text: str) -> int | None:
    """A decimal -128..127 (an optional leading ``-``)."""
    negative = text.startswith("-")
    value = parse_u32(text[1:] if negative else text, 128 if negative else 127)
    if value is None:
        return None
    return -value if negative else value


def parse_hex32(text: str) -> int | None:
    """1 to 8 hex digits, case ignored."""
    if not 1 <= len(text) <= 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
        return None
    return int(text, 16)


def decode_base64(text: str, room: int, offset: int) -> bytes:
    """Strict RFC 4648 base64 of at most ``room`` bytes, checked as ``ts_base64_decode`` does:
    the size first (``err size``), then the alphabet, padding and unused bits (``err usage``)."""
    if len(text) % 4:
        raise CommandError("usage", "bad base64")
    pad = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    if len(text) // 4 * 3 - pad > room:
        raise CommandError("size", f"more than {room} bytes at offset {offset}")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("usage", "bad base64") from None
    if base64.b64encode(data).decode("ascii") != text:  # non-canonical: unused bits set
        raise CommandError("usage", "bad base64")
    return data
