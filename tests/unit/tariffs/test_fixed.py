from __future__ import annotations

from decimal import Decimal

import pytest

from gridfare.errors import TariffError
from gridfare.tariffs import quote

TARIFF = """
[[components]]
kind = "minimum"      # deliberately first: a minimum is applied last whatever the file order
amount = "10.00"

[[components]]
kind = "tiered"
basis = "monthly"
edges_kwh = []
prices = ["0.5"]

[[components]]
kind = "fixed"
amount = "1"
"""


def test_minimum_tops_up_everything_else(make_tariff):
    tariff = make_tariff(TARIFF)
    result = quote(tariff, kwh="5")  # 2.50 + 1.00 fixed
    assert dict(result.lines) == {
        "tier1": Decimal("2.50"),
        "fixed": Decimal("1.00"),
        "minimum_topup": Decimal("6.50"),
    }
    assert result.total == Decimal("10.00")


@pytest.mark.parametrize(("kwh", "total"), [("18", "10.00"), ("20", "11.00"), ("0", "10.00")])
def test_no_topup_at_or_above_the_minimum(make_tariff, kwh, total):
    result = quote(make_tariff(TARIFF), kwh=kwh)
    assert result.total == Decimal(total)
    if kwh != "0":
        assert "minimum_topup" not in dict(result.lines)


def test_amounts_are_whole_fen(make_tariff):
    with pytest.raises(TariffError, match=r"components\[0\]\.amount: 1.005 is finer"):
        make_tariff('[[components]]\nkind = "fixed"\namount = "1.005"\n')
