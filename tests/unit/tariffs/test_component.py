from __future__ import annotations

import numpy as np
import pytest

from gridfare.errors import InvalidInput
from gridfare.tariffs.component import priced


def test_priced_rounds_half_up_to_the_fen():
    # 0.01 kWh x 0.5 CNY = 0.005 CNY -> 0.01; x 0.4999 -> 0.00
    assert priced(np.array([1, 1]), 50_000_000).tolist() == [1, 1]
    assert priced(np.array([1]), 49_990_000).tolist() == [0]


def test_priced_refuses_int64_overflow():
    with pytest.raises(InvalidInput, match="too large"):
        priced(np.array([10**12]), 10**8)


def test_priced_empty():
    assert priced(np.array([], dtype=np.int64), 10**8).tolist() == []
