"""A small, fast grid: the tiny MobileNet on 3 boards, 3 inferences per point."""

from __future__ import annotations

from typing import Any

import pytest

from tinysplit.sweep import GridSpec, grid_from_options

SMALL = "mobilenet_v1:alpha=0.25,input_size=32"


def small_options(**axes: Any) -> dict[str, Any]:
    """Options of a small grid (``axes`` as option text overrides)."""
    return {"model": SMALL, "devices": 3, "inferences": 3, **axes}


@pytest.fixture
def small_grid() -> GridSpec:
    """2 transports x 2 windows x 2 seeds = 8 points."""
    return grid_from_options(small_options(transport="ble,espnow", window="1,6", seed="0..1"))
