from __future__ import annotations

from decimal import Decimal

import pytest

from gridfare.errors import TariffError
from gridfare.tariffs import quote

COMMERCIAL = "cn-bj-commercial-tou"


def _funds(book, kwh):
    split = {"peak_kwh": kwh, "flat_kwh": "0", "valley_kwh": "0"}
    return dict(quote(book[COMMERCIAL], kwh=kwh, **split).lines).get("funds", Decimal("0.00"))


def test_funds_are_per_kwh(book):
    assert _funds(book, "1000") == Decimal("27.17")  # 1000 x 0.02716875


def test_rates_are_summed_then_rounded_once(book):
    # 3 x 0.02716875 = 0.0815 -> 0.08; rounding each rate (0.06 + 0.01 + 0.02) would give 0.09.
    assert _funds(book, "3") == Decimal("0.08")


def test_zero_energy_zero_funds(book):
    assert _funds(book, "0") == Decimal("0.00")


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ("", "components[0].rates", "is required"),
        ("[components.rates]\n", "components[0].rates", "at least one"),
        ('[components.rates]\n"a" = "-0.01"\n', "components[0].rates.a", "negative"),
        ('[components.rates]\n"a" = "0.000000001"\n', "components[0].rates.a", "finer"),
        ('rate = "0.01"\n[components.rates]\n"a" = "0.01"\n', "components[0].rate", "unknown key"),
    ],
)
def test_invalid_funds(make_tariff, body, key, message):
    with pytest.raises(TariffError) as info:
        make_tariff(f'[[components]]\nkind = "funds"\n{body}')
    assert f"t-test.toml: {key}: " in str(info.value)
    assert message in str(info.value)
