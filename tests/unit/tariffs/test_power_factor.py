from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pytest

from gridfare.errors import InvalidInput, TariffError
from gridfare.tariffs import quote
from gridfare.tariffs.power_factor import STANDARDS, adjustment_bp
from gridfare.tariffs.usage import PF_NOT_METERED


@pytest.mark.parametrize(
    ("standard", "pf", "bp"),
    [
        # standard 0.90
        (90, 100, -75),
        (90, 95, -75),
        (90, 94, -60),
        (90, 91, -15),
        (90, 90, 0),
        (90, 89, 50),
        (90, 85, 250),
        (90, 70, 1000),
        (90, 69, 1100),
        (90, 65, 1500),
        (90, 64, 1700),
        (90, 60, 2500),
        (90, 1, 14300),
        (90, 0, 14500),  # the table has no floor: 0.00 is a reading, surcharged
        # standard 0.85
        (85, 100, -110),
        (85, 94, -110),
        (85, 93, -95),
        (85, 91, -65),
        (85, 90, -50),
        (85, 86, -10),
        (85, 85, 0),
        (85, 84, 50),
        (85, 65, 1000),
        (85, 64, 1100),
        (85, 60, 1500),
        (85, 59, 1700),
        (85, 1, 13300),
        (85, 0, 13500),
        # standard 0.80
        (80, 100, -130),
        (80, 92, -130),
        (80, 91, -115),
        (80, 90, -100),
        (80, 81, -10),
        (80, 80, 0),
        (80, 79, 50),
        (80, 60, 1000),
        (80, 59, 1100),
        (80, 55, 1500),
        (80, 54, 1700),
        (80, 0, 12500),
    ],
)
def test_national_table_points(standard, pf, bp):
    assert adjustment_bp(pf, standard) == bp


@pytest.mark.parametrize("standard", STANDARDS)
def test_tables_fall_as_power_factor_rises(standard):
    rates = [adjustment_bp(pf, standard) for pf in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    assert adjustment_bp(standard, standard) == 0


def test_unmetered_or_unadjusted_accounts_get_nothing():
    assert adjustment_bp(PF_NOT_METERED, 90) == 0
    assert adjustment_bp(60, 0) == 0
    assert adjustment_bp(0, 0) == 0


def test_a_factor_rounding_to_zero_is_surcharged_not_dropped(book):
    """The issue's quotes: 0.004 rounds to 0.00 (+135 % at 0.85), 0.01 is +133 %."""
    tariff = book["cn-bj-commercial-tou"]  # standard_default 0.85
    split = {"peak_kwh": "100", "flat_kwh": "0", "valley_kwh": "0"}  # peak 137.82
    for pf, expected in (("0.004", "186.06"), ("0", "186.06"), ("0.005", "183.30"),
                         ("0.01", "183.30")):
        lines = dict(quote(tariff, kwh="100", power_factor=pf, **split).lines)
        assert lines["pf_adjust"] == Decimal(expected), pf  # 137.82 x 135 % / 133 %
    assert "pf_adjust" not in dict(quote(tariff, kwh="100", **split).lines)  # not metered


def test_adjusts_energy_and_basic_but_not_funds(book):
    tariff = book["cn-bj-industrial-two-part"]
    result = quote(
        tariff,
        kwh="1000",
        peak_kwh="300",
        flat_kwh="400",
        valley_kwh="300",
        capacity_kva="100",
        power_factor="0.85",
    )  # +2.5 % at standard 0.90
    lines = dict(result.lines)
    adjusted = sum(lines[k] for k in ("peak", "flat", "valley", "basic"))
    assert lines["funds"] == Decimal("27.17")
    assert lines["pf_adjust"] == (adjusted * Decimal("0.025")).quantize(Decimal("0.01"))
    assert lines["pf_adjust"] == Decimal("91.76")  # (313.89+265.80+90.78+3000.00) x 2.5 %


def test_default_standard_comes_from_the_tariff(book):
    tariff = book["cn-bj-commercial-tou"]
    assert tariff.pf_standard_default == 85
    split = {"peak_kwh": "100", "flat_kwh": "0", "valley_kwh": "0"}
    default = dict(quote(tariff, kwh="100", power_factor="0.90", **split).lines)
    assert default["pf_adjust"] == Decimal("-0.69")  # 137.82 x -0.5 % = -0.6891
    at_90 = dict(quote(tariff, kwh="100", power_factor="0.90", pf_standard="0.90", **split).lines)
    assert "pf_adjust" not in at_90


def test_half_fen_rebate_rounds_away_from_zero(make_tariff):
    tariff = make_tariff(
        """
        [[components]]
        kind = "tiered"
        basis = "monthly"
        edges_kwh = []
        prices = ["1"]

        [[components]]
        kind = "power_factor"
        """
    )
    # 5.00 x -0.1 % = -0.005 -> -0.01; 1.00 x +0.5 % = +0.005 -> +0.01
    rebate = quote(tariff, kwh="5", power_factor="0.86", pf_standard="0.85")
    assert dict(rebate.lines)["pf_adjust"] == Decimal("-0.01")
    surcharge = quote(tariff, kwh="1", power_factor="0.89", pf_standard="0.90")
    assert dict(surcharge.lines)["pf_adjust"] == Decimal("0.01")


def test_vectorized_over_mixed_standards(book, usage):
    rows = usage(
        kwh=["100"] * 5,
        peak=["100"] * 5,
        flat=["0"] * 5,
        valley=["0"] * 5,
        tou_metered=[True] * 5,
        power_factor=[96, 96, PF_NOT_METERED, 80, 0],
        pf_standard=[90, 0, 90, 85, 85],
    )
    lines = book["cn-bj-commercial-tou"].charge(rows)
    # peak 137.82 each: -0.75 %, none, none (not metered), +2.5 %, +135 % (0.00 measured)
    np.testing.assert_array_equal(lines["pf_adjust_fen"], [-103, 0, 0, 345, 18606])


def test_bad_standards_are_refused(book, usage):
    rows = usage(
        kwh=["1"],
        peak=["1"],
        flat=["0"],
        valley=["0"],
        tou_metered=[True],
        power_factor=[90],
        pf_standard=[75],
    )
    with pytest.raises(InvalidInput, match="pf_standard"):
        book["cn-bj-commercial-tou"].charge(rows)
    with pytest.raises(InvalidInput, match="no table entry"):
        adjustment_bp(90, 75)


def test_invalid_standard_default(make_tariff):
    with pytest.raises(TariffError, match=r"components\[0\]\.standard_default: expected 0.90"):
        make_tariff('[[components]]\nkind = "power_factor"\nstandard_default = "0.95"\n')
