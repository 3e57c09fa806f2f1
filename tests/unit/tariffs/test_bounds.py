"""The int64 bounds: derived from the book's prices, and no charge wraps within them.

The reference below prices with Python's unbounded integers, so a wrapped int64 anywhere in
``Tariff.charge`` (a line, the power-factor base, the minimum's sum) shows as a difference.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.schemas import CHARGE_LINES
from gridfare.errors import QuantityOutOfRange, TariffError
from gridfare.money import FLOAT_EXACT_UNITS, INT64_MAX, RAW_PER_FEN, QuantityBounds
from gridfare.tariffs import Usage, load_tariff_book, quote
from gridfare.tariffs.basic import Basic
from gridfare.tariffs.bounds import MAX_ADJUST_BP, bounds_of
from gridfare.tariffs.fixed import Fixed, Minimum
from gridfare.tariffs.funds import Funds
from gridfare.tariffs.loader import parse_tariff
from gridfare.tariffs.power_factor import _TABLE, ADJUSTED_LINES, STANDARDS, PowerFactor
from gridfare.tariffs.tiered import TIER_LINES, Tiered
from gridfare.tariffs.tou import TimeOfUse

BOOK = load_tariff_book()

# Every component at the largest price and amount the loader accepts.
EXTREME = parse_tariff("""
code = "x-extreme"
name = "the largest prices the loader accepts"
customer_kind = "industrial"
[[components]]
kind = "tiered"
basis = "annual"
edges_kwh = ["100", "90071992547409.91"]
prices = ["10000", "0.00000001", "10000"]
[[components]]
kind = "basic"
basis = "demand"
price = "10000"
min_demand_ratio = "1"
[[components]]
kind = "power_factor"
standard_default = "0.90"
[[components]]
kind = "funds"
[components.rates]
a = "10000"
b = "10000"
[[components]]
kind = "fixed"
amount = "100000000"
[[components]]
kind = "minimum"
amount = "100000000"
""", "x-extreme.toml")
TARIFFS = [*BOOK.values(), EXTREME]


def _half_up(raw: int, per: int) -> int:
    magnitude = (abs(raw) + per // 2) // per
    return -magnitude if raw < 0 else magnitude


def reference(tariff, u: dict[str, int], month: int) -> dict[str, int]:
    """``Tariff.charge`` for one account, in Python ints (never wraps)."""
    lines = dict.fromkeys(CHARGE_LINES, 0)
    for c in tariff.components:
        if isinstance(c, Tiered):
            start = u["ytd_kwh"] if c.basis == "annual" else 0
            end = start + u["kwh"]
            edges = (0, *c.edges, None)
            for tier, price in enumerate(c.prices):
                low, high = edges[tier], edges[tier + 1]
                top = end if high is None else min(end, high)
                bottom = start if high is None else min(start, high)
                slice_ = max(top, low) - max(bottom, low)
                lines[TIER_LINES[tier]] = _half_up(slice_ * price, RAW_PER_FEN)
        elif isinstance(c, TimeOfUse):
            critical = c.critical if month in c.critical_months else None
            at_peak = u["peak"] if critical is not None else u["peak"] + u["critical"]
            lines["peak_fen"] = _half_up(at_peak * c.peak, RAW_PER_FEN)
            lines["valley_fen"] = _half_up(u["valley"] * c.valley, RAW_PER_FEN)
            if critical is not None:
                lines["critical_fen"] = _half_up(u["critical"] * critical, RAW_PER_FEN)
            if c.flat is not None:
                lines["flat_fen"] = _half_up(u["flat"] * c.flat, RAW_PER_FEN)
        elif isinstance(c, Basic):
            billed = u["capacity_kva"]
            if c.basis == "demand":
                floor = _half_up(u["capacity_kva"] * c.min_demand_ratio_bp, 10_000)
                billed = max(u["max_demand_kw"], floor)
            lines["basic_fen"] = _half_up(billed * c.price, RAW_PER_FEN)
        elif isinstance(c, PowerFactor):
            base = sum(lines[name] for name in ADJUSTED_LINES)
            rate = int(_TABLE[u["pf_standard"], u["power_factor"]])
            lines["pf_adjust_fen"] = _half_up(base * rate, 10_000)
        elif isinstance(c, Funds):
            lines["funds_fen"] = _half_up(u["kwh"] * c.rate, RAW_PER_FEN)
        elif isinstance(c, Fixed):
            lines["fixed_fen"] = c.amount_fen
        elif isinstance(c, Minimum):
            billed = sum(v for k, v in lines.items() if k != "minimum_topup_fen")
            lines["minimum_topup_fen"] = max(c.amount_fen - billed, 0)
    return lines


def test_bounds_come_from_the_largest_prices():
    bounds = BOOK.bounds
    assert bounds.energy == (INT64_MAX - RAW_PER_FEN) // bounds.energy_price
    assert bounds.demand == (INT64_MAX - RAW_PER_FEN) // bounds.demand_price
    assert bounds.energy_price == max(bounds_of([t]).energy_price for t in BOOK.values())
    assert bounds_of([]) == QuantityBounds.unpriced()
    assert int(np.abs(_TABLE).max()) == MAX_ADJUST_BP
    # The sample book prices a province's largest accounts: hundreds of millions of kWh.
    assert bounds.energy > 100_000_000 * 100


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_no_charge_wraps_within_the_bounds(data):
    tariff = data.draw(st.sampled_from(TARIFFS))
    bounds = tariff.bounds
    edge = st.integers(0, bounds.energy) | st.sampled_from([0, 1, bounds.energy])
    kwh = data.draw(edge)
    cut = sorted(data.draw(st.lists(st.integers(0, kwh), min_size=3, max_size=3)))
    parts = [cut[0], cut[1] - cut[0], cut[2] - cut[1], kwh - cut[2]]
    demand = st.integers(0, bounds.demand) | st.just(bounds.demand)
    u = {"kwh": kwh, "critical": parts[0], "peak": parts[1], "flat": parts[2],
         "valley": parts[3], "max_demand_kw": data.draw(demand),
         "capacity_kva": data.draw(demand),
         "ytd_kwh": data.draw(st.integers(0, FLOAT_EXACT_UNITS)),
         "power_factor": data.draw(st.integers(0, 100)),
         "pf_standard": data.draw(st.sampled_from(STANDARDS))}
    if tariff.tou_periods and "flat" not in tariff.tou_periods:
        u["valley"] += u["flat"]
        u["flat"] = 0
    month = data.draw(st.integers(1, 12))
    usage = Usage.of(month, 1, tou_metered=np.array([True]),
                     **{k: np.array([v], np.int64) for k, v in u.items()})
    charged = {line: int(fen[0]) for line, fen in tariff.charge(usage).items()}
    assert charged == reference(tariff, u, month)
    assert sum(charged.values()) < INT64_MAX


def test_charge_refuses_one_unit_beyond():
    bounds = EXTREME.bounds
    usage = Usage.of(1, 1, kwh=np.array([bounds.energy + 1]))
    with pytest.raises(QuantityOutOfRange, match="kwh"):
        EXTREME.charge(usage)


@pytest.mark.parametrize("field, value", [
    ("kwh", "1e17"), ("kwh", "1e999999999"), ("ytd_kwh", "1e16"),
    ("capacity_kva", "1e12"), ("max_demand_kw", "99999999999"),
])
def test_quote_refuses_quantities_beyond_the_bounds_in_one_line(field, value):
    tariff = BOOK["cn-bj-industrial-demand"]
    args = {"kwh": "100", "peak_kwh": "40", "flat_kwh": "30", "valley_kwh": "30",
            "max_demand_kw": "10", "capacity_kva": "100", field: value}
    with pytest.raises(QuantityOutOfRange) as caught:
        quote(tariff, **args)
    assert "\n" not in str(caught.value)
    assert field in str(caught.value)


def test_quote_at_the_bound_is_exact_and_positive():
    tariff = BOOK["cn-bj-residential-monthly"]
    most = Decimal(tariff.bounds.energy) / 100
    result = quote(tariff, kwh=str(most))
    assert result.total > 0
    with pytest.raises(QuantityOutOfRange):
        quote(tariff, kwh=str(most + Decimal("0.01")))


def test_loader_refuses_prices_beyond_the_cap():
    with pytest.raises(TariffError, match="largest accepted"):
        parse_tariff('code = "x"\nname = "x"\ncustomer_kind = "residential"\n'
                     '[[components]]\nkind = "fixed"\namount = "1e30"\n', "x.toml")
    with pytest.raises(TariffError, match="largest accepted"):
        parse_tariff('code = "x"\nname = "x"\ncustomer_kind = "residential"\n'
                     '[[components]]\nkind = "funds"\n[components.rates]\na = "10000.01"\n',
                     "x.toml")

