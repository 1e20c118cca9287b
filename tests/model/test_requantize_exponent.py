"""Receive-side requantization (``requantize_exponent``), bit-exact with the firmware's
``ts_requantize`` (the C side is checked in ``tests/firmware/test_codec_vectors.py``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinysplit.errors import ConfigError
from tinysplit.model.quantize import requantize_exponent

I16 = st.integers(-32768, 32767)
EXP = st.integers(-128, 127)


def reference(v: int, from_exp: int, to_exp: int) -> int:
    """Exact rational arithmetic: floor(v * 2**(from - to) + 1/2), saturated to int16."""
    scaled = Fraction(v) * Fraction(2) ** (from_exp - to_exp)
    rounded = (scaled + Fraction(1, 2)).__floor__()
    return max(-32768, min(32767, rounded))


@given(st.lists(I16, max_size=32), EXP, EXP)
def test_matches_exact_rounding_half_up_and_saturation(
    values: list[int], from_exp: int, to_exp: int
) -> None:
    out = requantize_exponent(np.array(values, dtype=np.int16), from_exp, to_exp)
    assert out.dtype == np.int16
    assert out.tolist() == [reference(v, from_exp, to_exp) for v in values]


def test_half_values_round_up() -> None:
    values = np.array([-3, -2, -1, 0, 1, 2, 3], dtype=np.int16)
    assert requantize_exponent(values, -1, 0).tolist() == [-1, -1, 0, 0, 1, 1, 2]


def test_same_exponent_is_identity() -> None:
    values = np.array([-32768, -1, 0, 32767], dtype=np.int16)
    assert requantize_exponent(values, -9, -9).tolist() == values.tolist()


@pytest.mark.parametrize(("from_exp", "to_exp"), [(-129, 0), (0, 128)])
def test_exponents_are_int8(from_exp: int, to_exp: int) -> None:
    with pytest.raises(ConfigError, match="int8 exponent range"):
        requantize_exponent(np.zeros(2, dtype=np.int16), from_exp, to_exp)


def test_values_are_int16() -> None:
    with pytest.raises(ConfigError, match=r"outside -32768\.\.32767"):
        requantize_exponent([40000], 0, 1)
    with pytest.raises(ConfigError, match="dtype"):
        requantize_exponent(np.array([0.5]), 0, 1)
