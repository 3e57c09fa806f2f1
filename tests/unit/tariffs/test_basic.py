from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from gridfare.errors import TariffError
from gridfare.tariffs import quote
from gridfare.tariffs.basic import Basic

PRICE_48 = 48 * 10**8


def test_capacity_basis(book):
    result = quote(
        book["cn-bj-industrial-two-part"],
        kwh="0",
        peak_kwh="0",
        flat_kwh="0",
        valley_kwh="0",
        capacity_kva="315",
    )
    assert dict(result.lines) == {"basic": Decimal("9450.00")}  # 315 kVA x 30


@pytest.mark.parametrize(
    ("demand", "capacity", "billed_fen"),
    [
        ("300", "1000", 400 * 4800),  # below the 40 % floor: billed at 400 kW
        ("500", "1000", 500 * 4800),
        ("400", "1000", 400 * 4800),
        ("0", "315.57", 605_904),  # floor 126.228 kW -> 126.23 kW x 48 = 6059.04
        ("10", "0", 10 * 4800),
    ],
)
def test_demand_basis_with_floor(usage, demand, capacity, billed_fen):
    basic = Basic(basis="demand", price=PRICE_48, min_demand_ratio_bp=4000)
    lines = basic.charge(usage(kwh=["0"], max_demand_kw=[demand], capacity_kva=[capacity]), {})
    np.testing.assert_array_equal(lines["basic_fen"], [billed_fen])


def test_demand_without_floor_ignores_capacity(usage):
    basic = Basic(basis="demand", price=PRICE_48)
    lines = basic.charge(usage(kwh=["0"], max_demand_kw=["100"], capacity_kva=["1000"]), {})
    assert lines["basic_fen"].tolist() == [480_000]


def test_requires():
    assert Basic("capacity", 1).requires == {"capacity"}
    assert Basic("demand", 1).requires == {"max_demand"}
    assert Basic("demand", 1, 4000).requires == {"max_demand", "capacity"}


def test_demand_sample(book):
    tariff = book["cn-bj-industrial-demand"]
    assert {"max_demand", "capacity"} <= tariff.requires
    result = quote(
        tariff,
        kwh="0",
        peak_kwh="0",
        flat_kwh="0",
        valley_kwh="0",
        max_demand_kw="300",
        capacity_kva="1000",
    )
    assert dict(result.lines) == {"basic": Decimal("19200.00")}


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        (
            'basis = "capacity"\nprice = 30\nmin_demand_ratio = "0.4"',
            "components[0].min_demand_ratio",
            "only applies",
        ),
        (
            'basis = "demand"\nprice = 48\nmin_demand_ratio = "1.2"',
            "components[0].min_demand_ratio",
            "(0, 1]",
        ),
        ('basis = "kva"\nprice = 30', "components[0].basis", "expected one of"),
        ('basis = "demand"', "components[0].price", "is required"),
    ],
)
def test_invalid_basic(make_tariff, body, key, message):
    with pytest.raises(TariffError) as info:
        make_tariff(f'[[components]]\nkind = "basic"\n{body}\n')
    assert f"t-test.toml: {key}: " in str(info.value)
    assert message in str(info.value)
