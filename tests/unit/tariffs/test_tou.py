from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from gridfare.errors import InvalidInput, TariffError
from gridfare.tariffs import quote

COMMERCIAL = "cn-bj-commercial-tou"
SPLIT = {"critical_kwh": "100", "peak_kwh": "300", "flat_kwh": "300", "valley_kwh": "300"}


def test_critical_price_applies_in_a_critical_month(book):
    lines = dict(quote(book[COMMERCIAL], kwh="1000", month=7, pf_standard="0", **SPLIT).lines)
    assert lines["critical"] == Decimal("150.65")  # 100 x 1.5065
    assert lines["peak"] == Decimal("413.46")  # 300 x 1.3782
    assert lines["flat"] == Decimal("257.85")  # 300 x 0.8595
    assert lines["valley"] == Decimal("109.74")  # 300 x 0.3658


def test_outside_critical_months_critical_energy_is_billed_at_peak(book):
    lines = dict(quote(book[COMMERCIAL], kwh="1000", month=6, pf_standard="0", **SPLIT).lines)
    assert "critical" not in lines
    assert lines["peak"] == Decimal("551.28")  # (100 + 300) x 1.3782


def test_tariff_without_critical_bills_critical_register_at_peak(book):
    tariff = book["cn-bj-industrial-two-part"]
    lines = dict(
        quote(
            tariff,
            kwh="10",
            critical_kwh="4",
            peak_kwh="6",
            flat_kwh="0",
            valley_kwh="0",
            capacity_kva="0",
            pf_standard="0",
        ).lines
    )
    assert lines == {"peak": Decimal("10.46"), "funds": Decimal("0.27")}  # 10 x 1.0463


def test_peak_and_valley_only(book):
    tariff = book["cn-zj-residential-tou"]
    assert tariff.tou_periods == ("peak", "valley")
    lines = dict(quote(tariff, kwh="100", peak_kwh="60", valley_kwh="40").lines)
    assert lines == {"peak": Decimal("34.08"), "valley": Decimal("11.52")}


def test_flat_energy_on_a_tariff_without_flat_is_refused(book, usage):
    tariff = book["cn-zj-residential-tou"]
    rows = usage(kwh=["10"], peak=["5"], flat=["5"], valley=["0"], tou_metered=[True])
    with pytest.raises(InvalidInput, match="no flat period"):
        tariff.charge(rows)
    with pytest.raises(InvalidInput, match="flat_kwh"):
        quote(tariff, kwh="10", peak_kwh="5", flat_kwh="5", valley_kwh="0")


def test_unsplit_accounts_are_refused_not_billed_zero(book, usage):
    rows = usage(kwh=["10", "10"], peak=["10", "0"], tou_metered=[True, False])
    with pytest.raises(InvalidInput, match="no TOU split"):
        book[COMMERCIAL].charge(rows)


def test_requires_tou(book):
    assert "tou" in book[COMMERCIAL].requires
    assert "tou" not in book["cn-bj-residential-monthly"].requires


def test_vectorized_months_are_per_call(book, usage):
    rows = usage(
        month=8,
        kwh=["2", "3"],
        critical=["1", "3"],
        peak=["1", "0"],
        flat=["0", "0"],
        valley=["0", "0"],
        tou_metered=[True, True],
    )
    lines = book[COMMERCIAL].charge(rows)
    np.testing.assert_array_equal(lines["critical_fen"], [151, 452])  # 1.5065, 4.5195


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ('peak = "1"', "components[0].valley", "is required"),
        (
            'peak = "1"\nvalley = "0.3"\ncritical_months = [7]',
            "components[0].critical_months",
            "without a critical price",
        ),
        (
            'peak = "1"\nvalley = "0.3"\ncritical = "2"\ncritical_months = [13]',
            "components[0].critical_months[0]",
            "1..12",
        ),
        ('peak = "1"\nvalley = "0.3"\nshoulder = "0.5"', "components[0].shoulder", "unknown key"),
        ('peak = "one"\nvalley = "0.3"', "components[0].peak", "not a number"),
        ("peak = true\nvalley = 0.3", "components[0].peak", "expected a number"),
    ],
)
def test_invalid_tou_names_file_and_key(make_tariff, body, key, message):
    with pytest.raises(
        TariffError,
        match=rf"^t-test\.toml: {key}: .*{message}".replace("[", r"\[").replace("]", r"\]"),
    ):
        make_tariff(f'[[components]]\nkind = "tou"\n{body}\n')
