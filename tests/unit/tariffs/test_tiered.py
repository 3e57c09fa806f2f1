from __future__ import annotations

from decimal import Decimal

import pytest

from gridfare.errors import TariffError
from gridfare.tariffs import quote
from gridfare.tariffs.tiered import Tiered

BJ = "cn-bj-residential-monthly"

# kWh -> (tier1, tier2, tier3, total) in CNY on the Beijing monthly sheet 0.4883/0.5383/0.7883.
EDGES = {
    "0": ("0.00", "0.00", "0.00", "0.00"),
    "240": ("117.19", "0.00", "0.00", "117.19"),  # 117.192: the edge belongs to tier 1
    "240.01": ("117.19", "0.01", "0.00", "117.20"),  # 0.005383 -> 0.01
    "400": ("117.19", "86.13", "0.00", "203.32"),  # 86.128
    "400.01": ("117.19", "86.13", "0.01", "203.33"),  # 0.007883 -> 0.01
    "500": ("117.19", "86.13", "78.83", "282.15"),
    "10000": ("117.19", "86.13", "7567.68", "7771.00"),  # open top tier
}


@pytest.mark.parametrize("kwh", EDGES)
def test_monthly_tier_edges(book, kwh):
    result = quote(book[BJ], kwh=kwh)
    lines = dict(result.lines)
    expected = EDGES[kwh]
    assert [lines.get(f"tier{i}", Decimal("0.00")) for i in (1, 2, 3)] == [
        Decimal(x) for x in expected[:3]
    ]
    assert result.total == Decimal(expected[3])


def test_500_kwh_quotes_282_15(book):
    result = quote(book[BJ], kwh="500")
    assert result.to_dict() == {
        "tariff_code": BJ,
        "lines": {"tier1": "117.19", "tier2": "86.13", "tier3": "78.83"},
        "total": "282.15",
    }


# At 1 CNY/kWh every tier line in fen equals its energy in 0.01 kWh: the split is visible.
ONE_CNY = 10**8
ANNUAL = Tiered(basis="annual", edges=(288_000, 480_000), prices=(ONE_CNY,) * 3)


def _split(component, usage):
    lines = component.charge(usage, {})
    return [int(lines[f"tier{i}_fen"][0]) / 100 for i in (1, 2, 3)]


@pytest.mark.parametrize(
    ("ytd", "kwh", "expected"),
    [
        ("0", "100", [100, 0, 0]),
        ("2800", "100", [80, 20, 0]),  # crosses the 2880 edge carried over from earlier months
        ("2880", "100", [0, 100, 0]),
        ("4700", "300", [0, 100, 200]),
        ("4900", "100", [0, 0, 100]),  # already beyond 4800: all tier 3
        ("0", "6000", [2880, 1920, 1200]),
    ],
)
def test_annual_tiers_continue_from_year_to_date(usage, ytd, kwh, expected):
    assert _split(ANNUAL, usage(kwh=[kwh], ytd_kwh=[ytd])) == expected


def test_monthly_tiers_ignore_year_to_date(usage):
    monthly = Tiered(basis="monthly", edges=(24_000, 40_000), prices=(ONE_CNY,) * 3)
    assert _split(monthly, usage(kwh=["300"], ytd_kwh=["5000"])) == [240, 60, 0]


def test_annual_sample_carries_over_through_quote(book):
    annual = book["cn-bj-residential-annual"]
    result = quote(annual, kwh="100", ytd_kwh="2800", month=11)
    # 80 x 0.4883 = 39.064 -> 39.06; 20 x 0.5383 = 10.766 -> 10.77
    assert dict(result.lines) == {"tier1": Decimal("39.06"), "tier2": Decimal("10.77")}


def test_exact_half_fen_rounds_up(make_tariff):
    tariff = make_tariff(
        """
        [[components]]
        kind = "tiered"
        basis = "monthly"
        edges_kwh = []
        prices = ["0.5"]
        """
    )
    assert quote(tariff, kwh="0.01").total == Decimal("0.01")  # exactly 0.005 CNY


def test_increment_tiers_can_be_zero_priced(book):
    result = quote(book["cn-zj-residential-tou"], kwh="230", peak_kwh="230", valley_kwh="0")
    assert "tier1" not in dict(result.lines)  # +0 in the first tier: no line at all


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        (
            'edges_kwh = [240, 400]\nprices = ["0.4883", "0.5383"]',
            "components[0].prices",
            "expected 3 prices for 2 edges, got 2",
        ),
        ("edges_kwh = [400, 240]\nprices = [1, 2, 3]", "components[0].edges_kwh", "increasing"),
        ("edges_kwh = [240, 240]\nprices = [1, 2, 3]", "components[0].edges_kwh", "increasing"),
        ("edges_kwh = [0, 240]\nprices = [1, 2, 3]", "components[0].edges_kwh", "positive"),
        (
            "edges_kwh = [100, 200, 300]\nprices = [1, 2, 3, 4]",
            "components[0].edges_kwh",
            "at most 2",
        ),
        ('edges_kwh = [240]\nprices = ["0.5", "-0.1"]', "components[0].prices[1]", "negative"),
        ('edges_kwh = ["240.001"]\nprices = [1, 2]', "components[0].edges_kwh[0]", "finer"),
        ('edges_kwh = [240]\nprices = [1, 2]\nbasis = "weekly"', None, None),
    ],
)
def test_invalid_tiers_name_file_and_key(make_tariff, body, key, message):
    basis = "" if "basis" in body else 'basis = "monthly"\n'
    with pytest.raises(TariffError) as info:
        make_tariff(f'[[components]]\nkind = "tiered"\n{basis}{body}\n')
    text = str(info.value)
    assert text.startswith("t-test.toml: ")
    if key:
        assert f"{key}: " in text and message in text
    else:
        assert "components[0].basis" in text
