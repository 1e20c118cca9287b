"""Helpers of the emulator tests: a raw pty host, small models and inventories.

:class:`Wire` talks to an emulated board the lowest way a host can: ``os.open`` on the pty path
and plain reads and writes, so tests see every byte the emulator sends, in order.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPLY_PREFIXES = ("TS1 ok", "TS1 err")


class Wire:
    """A host on one emulated port: send command lines, read the ``TS1`` lines that come back.

    Attributes:
        lines: every ``TS1`` line received so far, in order.
        logs: every line without the prefix (boot messages).
    """

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self._buffer = b""
        self.lines: list[str] = []
        self.logs: list[str] = []
        self._unread = 0

    def close(self) -> None:
        """Close the port."""
        os.close(self.fd)

    def send(self, line: str | bytes) -> None:
        """Write one command line (a newline is added)."""
        data = line if isinstance(line, bytes) else line.encode("ascii")
        os.write(self.fd, data + b"\n")

    def _fill(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout_s))
        if not ready:
            return False
        self._buffer += os.read(self.fd, 1 << 16)
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            text = raw.decode("latin-1")
            (self.lines if text.startswith("TS1 ") else self.logs).append(text)
        return True

    def read_until(self, done: Callable[[str], bool], timeout_s: float = 30.0) -> list[str]:
        """The new ``TS1`` lines up to and including the first one ``done`` accepts."""
        deadline = time.monotonic() + timeout_s
        while True:
            for index in range(self._unread, len(self.lines)):
                if done(self.lines[index]):
                    taken = self.lines[self._unread : index + 1]
                    self._unread = index + 1
                    return taken
            if not self._fill(deadline - time.monotonic()) and time.monotonic() > deadline:
                raise TimeoutError(f"no matching line in {self.lines[self._unread :][-5:]}")

    def wait_lines(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until ``count`` ``TS1`` lines have arrived in all."""
        deadline = time.monotonic() + timeout_s
        while len(self.lines) < count:
            if not self._fill(deadline - time.monotonic()) and time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.lines)} of {count} lines: {self.lines[-5:]}")

    def drain(self, quiet_s: float = 0.2) -> list[str]:
        """The new ``TS1`` lines until the port stays quiet for ``quiet_s``."""
        while self._fill(quiet_s):
            pass
        taken = self.lines[self._unread :]
        self._unread = len(self.lines)
        return taken

    def command(self, line: str | bytes, timeout_s: float = 30.0) -> tuple[list[str], str]:
        """Send a command; return the events that came before its reply, and the reply."""
        self.send(line)
        got = self.read_until(lambda text: text.startswith(REPLY_PREFIXES), timeout_s)
        return got[:-1], got[-1]

    def ok(self, line: str, timeout_s: float = 30.0) -> str:
        """Send a command that must succeed; return the reply's payload."""
        _, reply = self.command(line, timeout_s)
        assert reply.startswith("TS1 ok"), f"{line!r} -> {reply!r}"
        return reply.removeprefix("TS1 ok").strip()

    def err(self, line: str | bytes) -> str:
        """Send a command that must fail; return ``<code> <message>``."""
        _, reply = self.command(line)
        assert reply.startswith("TS1 err "), f"{line!r} -> {reply!r}"
        return reply.removeprefix("TS1 err ")


def fields(text: str) -> dict[str, str]:
    """The ``key=value`` words of a line or payload."""
    return dict(w.split("=", 1) for w in text.split() if "=" in w)


def two_layer_model(path: Path, hidden: int, seed: int = 0) -> Path:
    """A 6 -> ``hidden`` -> 4 MatMul model (one cut point, after the first layer)."""
    rng = np.random.default_rng(seed)
    inits = {
        "w1": (rng.standard_normal((6, hidden)) * 0.5).astype(np.float32),
        "w2": (rng.standard_normal((hidden, 4)) * (0.5 / np.sqrt(hidden / 8))).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def write_inventory(
    path: Path, *, transport: str, boards: int, time_scale: float = 0.0, meter: str = "none"
) -> Path:
    """An emulated inventory of ``boards`` boards b1.. with a scribe (lines = stages)."""
    text = [f'transport = "{transport}"']
    for k in range(1, boards + 1):
        text += ["[[board]]", f'name = "b{k}"', f"stage = {k}"]
    text += ["[scribe]", "pulse_unit_us = 10", "[power]", f'meter = "{meter}"']
    text += ["[emulator]", f"time_scale = {time_scale}", "seed = 0"]
    path.write_text("\n".join(text) + "\n")
    return path
