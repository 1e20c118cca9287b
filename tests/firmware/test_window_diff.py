"""Differential test: the C adaptive window (ts_window.c) and the simulator's
(tinysplit.links.adaptive) give the same window and state after the same event sequences."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tinysplit.links.adaptive import AdaptiveWindow, min_window_for_cadence


class CWindow(ctypes.Structure):
    """``ts_window_t`` as the compiler lays it out."""

    _fields_ = [
        ("window", ctypes.c_uint16),
        ("min_window", ctypes.c_uint16),
        ("max_window", ctypes.c_uint16),
        ("ssthresh", ctypes.c_uint16),
        ("credit", ctypes.c_uint32),
        ("recover", ctypes.c_uint32),
        ("smooth", ctypes.c_uint64),
        ("best", ctypes.c_uint64),
        ("acks", ctypes.c_uint32),
        ("losses", ctypes.c_uint32),
        ("timeouts", ctypes.c_uint32),
    ]


@pytest.fixture(scope="module")
def lib(core_lib: ctypes.CDLL) -> ctypes.CDLL:
    p = ctypes.POINTER(CWindow)
    u16, u32 = ctypes.c_uint16, ctypes.c_uint32
    for name, restype, argtypes in (
        ("ts_window_init", ctypes.c_int, [p, u16, u16, u16]),
        ("ts_window_min_for_cadence", u16, [u16]),
        ("ts_window_on_ack", None, [p, u32, u32]),
        ("ts_window_on_loss", None, [p]),
        ("ts_window_on_timeout", None, [p]),
        ("ts_window_current", u16, [p]),
    ):
        fn = getattr(core_lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return core_lib


def _state(c: CWindow) -> tuple[int, int, int, int, int, int]:
    return (c.window, c.ssthresh, c.credit, c.recover, c.smooth, c.best)


def test_min_window_for_cadence_matches(lib: ctypes.CDLL) -> None:
    for r in range(1, 17):
        assert lib.ts_window_min_for_cadence(r) == min_window_for_cadence(r)


@pytest.mark.parametrize("seed", range(40))
def test_same_events_same_state(lib: ctypes.CDLL, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lo = int(rng.integers(1, 9))
    initial = int(rng.integers(lo, 17))
    py = AdaptiveWindow(initial=initial, min_window=lo, max_window=16)
    c = CWindow()
    assert lib.ts_window_init(ctypes.byref(c), initial, lo, 16) == 0
    base_us = int(rng.integers(100, 50_000))
    for _ in range(600):
        u = rng.random()
        if u < 0.04:
            py.on_loss()
            lib.ts_window_on_loss(ctypes.byref(c))
        elif u < 0.05:
            py.on_timeout()
            lib.ts_window_on_timeout(ctypes.byref(c))
        else:
            frames = int(rng.integers(0, 33))
            # Per-frame times that drift, jump and sometimes hit the u32 limit.
            scale = base_us * (1 + 9 * (rng.random() < 0.1))
            interval = min(int(frames * scale * rng.uniform(0.5, 2.0)), 2**32 - 1)
            if rng.random() < 0.01:
                interval = 2**32 - 1
            py.on_ack(frames, interval)
            lib.ts_window_on_ack(ctypes.byref(c), frames, interval)
        assert lib.ts_window_current(ctypes.byref(c)) == py.window
        assert _state(c) == py.state()
    assert (c.acks, c.losses, c.timeouts) == (py.acks, py.losses, py.timeouts)
