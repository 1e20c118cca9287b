"""Shared test doubles for the hardware testbed: ptys and a scripted fake board.

Fixtures (available to every test module in ``tests/testbed/hw/``):

``pty_pair``
    Yields ``(master_fd, slave_path)``: a fresh pseudo-terminal in raw mode (no echo, no newline
    translation). Open ``slave_path`` with pyserial (``open_serial(port=slave_path, ...)``) as a
    board's USB serial port; read and write ``master_fd`` as the board. The fixture keeps a slave
    fd open until teardown (so the master never sees EOF before pyserial opens the port) and
    closes both ends at teardown (whatever a test already closed is skipped).

``fake_board``
    A factory: ``fake_board(responder, *, hello=None) -> FakeBoard``, started on a new pty; its
    ``.port`` is the slave path to open. Every board made is stopped and its pty closed at
    teardown.

:class:`FakeBoard` (importable as ``from tests.testbed.hw.conftest import FakeBoard``) is a
thread on the master fd that reads command lines and answers them:

* ``responder`` is a dict or a callable. A dict maps a whole command line, or else its first
  word, to the lines to send back (a ``str`` or a sequence of ``str``; each gets a newline);
  anything else answers ``TS1 err unknown no command <word>``. A callable gets the command line
  and returns the lines (``None`` or ``[]``: stay silent). ``hello`` (a ``key=value`` string) is
  answered as ``TS1 ok proto=1 <hello>`` unless the responder handles it.
* ``board.received`` lists the command lines read, in order.
* From the test thread: ``board.send_line(text)`` writes one line; ``board.event(name, k=v)``
  writes ``TS1 evt name k=v``; ``board.log(text)`` a log line; ``board.garbage(data)`` raw bytes
  (no newline added); ``board.unplug()`` closes the master fd (the host then sees the port fail,
  as when a USB cable is pulled) and waits until it is closed. A responder may call
  ``board.unplug()`` too: the board then closes right after answering (or not) that command.

Writes from the board thread and the test thread are serialised, so lines never interleave.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

Lines = str | Sequence[str] | None
Responder = Mapping[str, str | Sequence[str]] | Callable[[str], Lines]


def _open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """A raw pty: ``(master_fd, slave_path)``, both ends closed at teardown."""
    master, slave, path = _open_pty()
    try:
        yield master, path
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class FakeBoard:
    """A scripted board on the master side of a pty (see the module docstring).

    Args:
        master_fd: the pty master; the board owns it from :meth:`start` on and closes it.
        responder: dict or callable producing the reply lines of each command line.
        hello: ``key=value`` words appended to the default ``TS1 ok proto=1`` hello reply.
        port: the slave path, kept for the tests' convenience.
    """

    def __init__(
        self,
        master_fd: int,
        responder: Responder | None = None,
        *,
        hello: str | None = None,
        port: str = "",
    ) -> None:
        self.master_fd = master_fd
        self.responder: Responder = responder if responder is not None else {}
        self.hello = hello
        self.port = port
        self.received: list[str] = []
        self._write_lock = threading.Lock()
        self._unplug = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake board", daemon=True)

    def start(self) -> FakeBoard:
        """Start answering; returns self."""
        self._thread.start()
        return self

    # ------------------------------------------------------------------ driving from a test

    def send(self, data: bytes) -> None:
        """Write raw bytes to the host (ignored once unplugged)."""
        with self._write_lock:
            if self._closed.is_set():
                return
            view = memoryview(data)
            while view:
                written = os.write(self.master_fd, view)
                view = view[written:]

    def send_line(self, text: str) -> None:
        """Write one line (a newline is appended)."""
        self.send(text.encode("utf-8") + b"\n")

    def event(self, name: str, **fields: object) -> None:
        """Write ``TS1 evt <name> <k>=<v> ...``."""
        words = " ".join(f"{key}={value}" for key, value in fields.items())
        self.send_line(f"TS1 evt {name} {words}".rstrip())

    def log(self, text: str) -> None:
        """Write a log line (no ``TS1`` prefix)."""
        self.send_line(text)

    def garbage(self, data: bytes) -> None:
        """Write raw bytes as they are (no newline added)."""
        self.send(data)

    def unplug(self, timeout_s: float = 5.0) -> None:
        """Close the master fd, as if the USB cable were pulled, and wait until it is closed.

        Called from a responder (the board's own thread), it only asks: the fd is closed right
        after the current command's lines are written.
        """
        self._unplug.set()
        if threading.current_thread() is self._thread:
            return
        if not self._thread.is_alive():
            self._close()
        self._closed.wait(timeout_s)

    def stop(self) -> None:
        """Stop the thread and close the master fd (idempotent)."""
        self.unplug()
        self._thread.join(timeout=5.0)

    # ------------------------------------------------------------------ the board's side

    def _answer(self, line: str) -> list[str]:
        responder = self.responder
        if callable(responder):
            got = responder(line)
        else:
            got = responder.get(line, responder.get(line.split(" ", 1)[0]))
            if got is None:
                if line == "hello":
                    got = f"TS1 ok proto=1 {self.hello or ''}".rstrip()
                else:
                    got = f"TS1 err unknown no command {line.split(' ', 1)[0]}"
        if got is None:
            return []
        return [got] if isinstance(got, str) else list(got)

    def _close(self) -> None:
        with self._write_lock:
            if not self._closed.is_set():
                with contextlib.suppress(OSError):
                    os.close(self.master_fd)
                self._closed.set()

    def _run(self) -> None:
        buffer = b""
        try:
            while not self._unplug.is_set():
                ready, _, _ = select.select([self.master_fd], [], [], 0.02)
                if not ready:
                    continue
                try:
                    chunk = os.read(self.master_fd, 4096)
                except OSError:
                    # EIO: no process holds the slave open right now; wait for one.
                    self._unplug.wait(0.02)
                    continue
                buffer += chunk
                while b"\n" in buffer and not self._unplug.is_set():
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.rstrip(b"\r").decode("utf-8", "replace")
                    self.received.append(line)
                    for reply in self._answer(line):
                        self.send_line(reply)
        finally:
            self._close()


@pytest.fixture
def fake_board() -> Iterator[Callable[..., FakeBoard]]:
    """Factory of started :class:`FakeBoard` s on fresh ptys, all stopped at teardown."""
    made: list[tuple[FakeBoard, int]] = []

    def make(responder: Responder | None = None, *, hello: str | None = None) -> FakeBoard:
        master, slave, path = _open_pty()
        board = FakeBoard(master, responder, hello=hello, port=path).start()
        made.append((board, slave))
        return board

    yield make
    for board, slave in made:
        board.stop()
        with contextlib.suppress(OSError):
            os.close(slave)
