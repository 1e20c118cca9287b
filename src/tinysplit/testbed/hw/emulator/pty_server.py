"""Pseudo-terminals for the emulated boards and the one-thread loop that serves them.

Each emulated board (and the scribe) gets a pty pair. Hosts open the slave path
(``/dev/pts/N``) like a USB serial port; the emulator reads and writes the master with raw
file-descriptor I/O (no pyserial on the board side). The slave is put in raw mode (no echo, no
CR/LF translation, ``tty.setraw``) and the emulator keeps its own slave descriptor open, so the
terminal and its settings survive a host closing and reopening the port, and the master never
reports end-of-file while no host has it open.

Output is buffered per port and written without blocking; a host that stops reading for long
loses whole lines once :data:`OUTPUT_LIMIT` bytes are waiting (counted in :attr:`Port.drops`, the
scribe's ``console_drops``), as a USB Serial/JTAG console drops what the host does not take.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import time
import tty
from collections.abc import Callable

#: Bytes waiting for one host before whole lines are dropped.
OUTPUT_LIMIT = 16 * 1024 * 1024
#: Largest chunk read from or written to a master at once.
CHUNK = 65536


class Port:
    """One pty pair: the host's end is :attr:`path`, the emulator's is the master descriptor.

    Args:
        label: what the port belongs to (a board name or ``scribe``), for messages.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._out = bytearray()
        self.drops = 0
        self.on_input: Callable[[bytes], None] = lambda data: None

    def write(self, data: bytes) -> None:
        """Queue bytes for the host (a whole line per call; dropped when the host lags far)."""
        if len(self._out) + len(data) > OUTPUT_LIMIT:
            self.drops += 1
            return
        self._out += data

    @property
    def pending(self) -> bool:
        """Whether output waits for the host."""
        return bool(self._out)

    def flush(self) -> None:
        """Write as much queued output as the terminal takes now."""
        while self._out:
            try:
                n = os.write(self.master, self._out[:CHUNK])
            except BlockingIOError:
                return
            except OSError:  # the terminal is gone: nobody will read it
                self._out.clear()
                return
            del self._out[:n]

    def receive(self) -> None:
        """Read what the host sent and hand it to :attr:`on_input`."""
        try:
            data = os.read(self.master, CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no slave open (cannot happen while we hold one)
            return
        if data:
            self.on_input(data)

    def close(self) -> None:
        """Close both ends."""
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyServer:
    """Serves a set of ports until stopped: input to consoles, due work, output to hosts.

    ``pump`` is called after every wake-up and ``deadline`` tells when the next wake-up is due
    (wall clock of ``clock``); :meth:`wake` may be called from any thread to run the loop now.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.ports: list[Port] = []
        self.clock = clock
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = False

    def add(self, label: str) -> Port:
        """Create a pty for ``label``."""
        port = Port(label)
        self.ports.append(port)
        return port

    def wake(self) -> None:
        """Make the loop run its ``pump`` soon (thread-safe)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def stop(self) -> None:
        """Make :meth:`serve` return after the current round (from a signal handler or a pump)."""
        self._stop = True
        self.wake()

    def serve(
        self,
        pump: Callable[[], None],
        deadline: Callable[[], float],
        *,
        watch_fd: int | None = None,
    ) -> None:
        """Run until :meth:`stop`, or until ``watch_fd`` (the parent's pipe) reaches end-of-file.

        Args:
            pump: emits the work that is due.
            deadline: the wall time the next work is due (``math.inf``: none).
            watch_fd: a descriptor whose end-of-file means the emulator's parent is gone.
        """
        by_fd = {p.master: p for p in self.ports}
        while not self._stop:
            pump()
            for port in self.ports:
                port.flush()
            timeout = max(0.0, min(deadline() - self.clock(), 1.0))
            readers = [*by_fd, self._wake_r, *([] if watch_fd is None else [watch_fd])]
            writers = [p.master for p in self.ports if p.pending]
            readable, writable, _ = select.select(readers, writers, [], timeout)
            for fd in readable:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                elif fd == watch_fd:
                    if not os.read(watch_fd, 4096):
                        return
                else:
                    by_fd[fd].receive()
            for fd in writable:
                by_fd[fd].flush()

    def close(self) -> None:
        """Close every port and the wake-up pipe."""
        for port in self.ports:
            port.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
