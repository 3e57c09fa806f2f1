from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridfare.errors import InvalidInput
from gridfare.money import (
    RAW_PER_FEN,
    apply_rate_to_fen,
    cny_to_fen,
    format_cny,
    price_units,
    round_raw_to_fen,
)


def test_half_a_fen_rounds_up_and_away_from_zero():
    half = RAW_PER_FEN // 2
    assert round_raw_to_fen(np.array([half - 1, half, -half, -half + 1])).tolist() == [0, 1, -1, 0]


def test_rate_in_basis_points():
    # 1000.00 CNY at -0.75 % is -7.50; 1.00 CNY at +0.5 % is 0.005 -> 0.01.
    assert apply_rate_to_fen(np.array([100_000, 100]), np.array([-75, 50])).tolist() == [-750, 1]


@given(st.integers(-10**15, 10**15))
def test_matches_decimal_half_up(raw):
    expected = cny_to_fen(Decimal(raw) / (RAW_PER_FEN * 100))
    assert round_raw_to_fen(np.array([raw]))[0] == expected


def test_prices_are_exact_and_refuse_false_precision():
    assert price_units("0.4883", "p") == 48_830_000
    assert price_units("0.00196875", "p") == 196_875
    with pytest.raises(InvalidInput, match="more precision"):
        price_units("0.000000001", "p")
    with pytest.raises(InvalidInput, match="not a number"):
        price_units("abc", "p")


def test_format():
    assert format_cny(28215) == "282.15"
    assert format_cny(-5) == "-0.05"
