"""The grammar of console protocol v1 lines (``docs/protocol.md``, "Console" and "Scribe").

A line from a board is ``TS1 ok <words>``, ``TS1 err <code> <message>``, ``TS1 evt <name>
<key>=<value> ...`` or, without the prefix, log output. :func:`parse_line` turns a ``TS1`` line
into a :class:`Reply` or an :class:`Event`; :class:`~tinysplit.testbed.hw.console.Console` uses it
and re-exports these names.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from tinysplit.errors import BoardError

__all__ = [
    "DATA_MAX_BYTES",
    "MAX_LINE_BYTES",
    "PREFIX",
    "PROTO",
    "ConsoleCommandError",
    "Event",
    "Reply",
    "parse_fields",
    "parse_line",
]

PROTO = "1"
"""The console protocol version this host speaks (``hello`` reports it as ``proto``)."""
PREFIX = b"TS1 "
MAX_LINE_BYTES = 1024
"""Longest command line a board accepts (``err size`` beyond), newline excluded."""
DATA_MAX_BYTES = 512
"""Largest tensor chunk of one ``data`` or ``read`` line (``TS_CONSOLE_STAGE_DATA_MAX``)."""
_KEY = re.compile(r"[a-z_][a-z0-9_]*\Z")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_CODE = re.compile(r"[a-z][a-z0-9_]*\Z")


def parse_fields(words: tuple[str, ...]) -> dict[str, str]:
    """The ``key=value`` words of a line as a dict (words without a valid key are left out)."""
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep and _KEY.match(key):
            fields[key] = value
    return fields


class ConsoleCommandError(BoardError):
    """A board answered ``TS1 err``; :attr:`code` is the protocol's error code (``state``, ...)."""

    def __init__(self, message: str, *, code: str, command: str) -> None:
        super().__init__(message)
        self.code = code
        self.command = command


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One reply line: ``TS1 ok <words>`` or ``TS1 err <code> <message words>``.

    Attributes:
        ok: True for ``ok``.
        code: the error code of an ``err`` (None for ``ok``).
        words: the words after ``ok`` or after the error code.
        fields: the ``key=value`` words as a dict.
        raw: the line as received, without the line ending.
        command: the command line it answers (empty when unknown).
        label: the board's name, for error messages.
        port: the board's port, for error messages.
    """

    ok: bool
    code: str | None
    words: tuple[str, ...]
    fields: dict[str, str]
    raw: str
    command: str = ""
    label: str = ""
    port: str = ""

    @property
    def message(self) -> str:
        """The words joined by spaces (an ``err``'s human-readable message)."""
        return " ".join(self.words)

    def require(self) -> Reply:
        """This reply if it is ``ok``.

        Raises:
            ConsoleCommandError: the reply is an ``err``; the message names the board, its port,
                the command, the code and the board's message.
        """
        if self.ok:
            return self
        raise ConsoleCommandError(
            f"board {self.label} on {self.port}: {self.command!r} failed: "
            f"err {self.code} {self.message}".rstrip(),
            code=self.code or "",
            command=self.command,
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One ``TS1 evt <name> <key>=<value> ...`` line.

    Attributes:
        name: the event name (``output``, ``mark``, ``rtt``, ``error``, ``power``, ...).
        fields: its ``key=value`` words.
        host_time_s: the host's :func:`time.monotonic` when the line arrived, in seconds.
    """

    name: str
    fields: dict[str, str] = field(default_factory=dict)
    host_time_s: float = 0.0


def parse_line(text: str) -> Reply | Event | None:
    """A decoded ``TS1 `` line as a :class:`Reply` or :class:`Event`; None if malformed.

    The reply's ``command``, ``label`` and ``port`` are left empty (the console fills them); an
    event's ``host_time_s`` is :func:`time.monotonic` now.
    """
    if not text.isprintable():
        return None
    words = tuple(word for word in text[len(PREFIX) :].split(" ") if word)
    if not words:
        return None
    kind, rest = words[0], words[1:]
    if kind == "ok":
        return Reply(ok=True, code=None, words=rest, fields=parse_fields(rest), raw=text)
    if kind == "err":
        if not rest or not _CODE.match(rest[0]):
            return None
        return Reply(
            ok=False, code=rest[0], words=rest[1:], fields=parse_fields(rest[1:]), raw=text
        )
    if kind == "evt":
        if not rest or not _NAME.match(rest[0]):
            return None
        return Event(rest[0], parse_fields(rest[1:]), time.monotonic())
    return None
