from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridfare.errors import InvalidInput, TouSplitMismatch
from gridfare.tariffs import Quote, Tariff, quote

BJ = "cn-bj-residential-monthly"
COMMERCIAL = "cn-bj-commercial-tou"
CENT = Decimal("0.01")


def test_to_dict_is_json_with_string_amounts(book):
    result = quote(book[BJ], kwh="500")
    assert isinstance(result, Quote)
    assert result.lines[0] == ("tier1", Decimal("117.19"))
    assert json.loads(json.dumps(result.to_dict()))["total"] == "282.15"


def test_quote_calls_tariff_charge(book, monkeypatch):
    calls = []
    original = Tariff.charge

    def spy(self, usage):
        calls.append(len(usage))
        return original(self, usage)

    monkeypatch.setattr(Tariff, "charge", spy)
    quote(book[BJ], kwh="1")
    assert calls == [1]


@pytest.mark.parametrize("kwh", [500, Decimal("500"), "500", "500.00"])
def test_inputs_as_int_decimal_or_text(book, kwh):
    assert quote(book[BJ], kwh=kwh).total == Decimal("282.15")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"kwh": "-1"}, "kwh: -1 must not be negative"),
        ({"kwh": "1.001"}, "kwh: 1.001 has more precision than 1/100"),
        ({"kwh": "abc"}, "kwh: 'abc' is not a number"),
        ({"kwh": "1", "ytd_kwh": "-5"}, "ytd_kwh"),
        ({"kwh": "1", "month": 13}, "month: 13"),
        ({"kwh": "1", "month": "x"}, "month"),
        ({"kwh": "1", "power_factor": "-0.01"}, "power_factor: -0.01 must be in [0, 1]"),
        ({"kwh": "1", "power_factor": "1.01"}, "power_factor"),
        ({"kwh": "1", "pf_standard": "0.75"}, "pf_standard"),
        ({"kwh": "1", "peak_kwh": "1"}, "flat_kwh, valley_kwh must be given"),
    ],
)
def test_invalid_inputs_name_field_and_rule(book, inputs, message):
    with pytest.raises(InvalidInput) as info:
        quote(book[BJ], **inputs)
    assert message in str(info.value)


def test_split_must_add_up_exactly(book):
    with pytest.raises(TouSplitMismatch) as info:
        quote(book[COMMERCIAL], kwh="100", peak_kwh="50", flat_kwh="30", valley_kwh="19.99")
    assert "= 99.99 kWh, but kwh is 100.00" in str(info.value)
    with pytest.raises(TouSplitMismatch):
        quote(
            book[COMMERCIAL],
            kwh="100",
            critical_kwh="1",
            peak_kwh="50",
            flat_kwh="30",
            valley_kwh="20",
        )
    # A split on a non-TOU tariff is still checked, and otherwise ignored.
    with pytest.raises(TouSplitMismatch):
        quote(book[BJ], kwh="500", peak_kwh="1", flat_kwh="1", valley_kwh="1")
    assert quote(book[BJ], kwh="500", peak_kwh="100", flat_kwh="300", valley_kwh="100").total == (
        Decimal("282.15")
    )


def test_tou_tariff_needs_a_split(book):
    with pytest.raises(InvalidInput, match="is time-of-use: give critical_kwh, peak_kwh"):
        quote(book[COMMERCIAL], kwh="100")
    with pytest.raises(InvalidInput, match="give peak_kwh, valley_kwh"):
        quote(book["cn-zj-residential-tou"], kwh="100")


def test_critical_is_optional_in_the_split(book):
    result = quote(
        book[COMMERCIAL], kwh="10", peak_kwh="10", flat_kwh="0", valley_kwh="0", pf_standard="0"
    )
    assert dict(result.lines)["peak"] == Decimal("13.78")


def test_two_part_tariffs_need_their_inputs(book):
    split = {"peak_kwh": "1", "flat_kwh": "0", "valley_kwh": "0"}
    with pytest.raises(InvalidInput, match="capacity_kva: tariff cn-bj-industrial-two-part"):
        quote(book["cn-bj-industrial-two-part"], kwh="1", **split)
    with pytest.raises(InvalidInput, match="max_demand_kw"):
        quote(book["cn-bj-industrial-demand"], kwh="1", capacity_kva="100", **split)


def test_power_factor_is_rounded_half_up_to_two_places(book):
    split = {"peak_kwh": "100", "flat_kwh": "0", "valley_kwh": "0"}
    tariff = book["cn-bj-industrial-two-part"]
    at = {
        pf: dict(quote(tariff, kwh="100", capacity_kva="0", power_factor=pf, **split).lines)
        for pf in ("0.945", "0.944", "0.95")
    }
    assert at["0.945"]["pf_adjust"] == at["0.95"]["pf_adjust"] == Decimal("-0.78")  # -0.75 %
    assert at["0.944"]["pf_adjust"] == Decimal("-0.63")  # 0.94: -0.60 % of 104.63


# ---- properties -----------------------------------------------------------------------------

TIERS = {  # the sample sheets, restated independently of the loader
    "cn-bj-residential-monthly": (("240", "400"), ("0.4883", "0.5383", "0.7883"), False),
    "cn-bj-residential-annual": (("2880", "4800"), ("0.4883", "0.5383", "0.7883"), True),
}
energy = st.integers(min_value=0, max_value=2_000_000).map(lambda u: Decimal(u) / 100)


def reference_total(code: str, kwh: Decimal, ytd: Decimal) -> Decimal:
    edges, prices, annual = TIERS[code]
    start = ytd if annual else Decimal(0)
    end = start + kwh
    bounds = [Decimal(0), *map(Decimal, edges), None]
    total = Decimal(0)
    for tier, price in enumerate(prices):
        low, high = bounds[tier], bounds[tier + 1]
        upper = end if high is None else min(end, high)
        in_tier = max(Decimal(0), upper - max(start, low))
        total += (in_tier * Decimal(price)).quantize(CENT, rounding=ROUND_HALF_UP)
    return total


@settings(max_examples=300, deadline=None)
@given(code=st.sampled_from(sorted(TIERS)), kwh=energy, ytd=energy)
def test_tiered_total_is_sum_of_lines_and_matches_decimal_reference(book, code, kwh, ytd):
    result = quote(book[code], kwh=str(kwh), ytd_kwh=str(ytd))
    assert result.total == sum((amount for _, amount in result.lines), Decimal("0.00"))
    assert result.total == reference_total(code, kwh, ytd)


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from(
        ["cn-bj-residential-monthly", "cn-bj-residential-annual", "cn-zj-residential-tou"]
    ),
    peak=energy,
    valley=energy,
    more=energy,
    to_peak=st.booleans(),
    ytd=energy,
    month=st.integers(1, 12),
)
def test_residential_totals_never_fall_as_energy_rises(
    book, code, peak, valley, more, to_peak, ytd, month
):
    tariff = book[code]

    def total(p: Decimal, v: Decimal) -> Decimal:
        split = {"peak_kwh": str(p), "valley_kwh": str(v)} if tariff.tou_periods else {}
        return quote(tariff, kwh=str(p + v), ytd_kwh=str(ytd), month=month, **split).total

    before = total(peak, valley)
    after = total(peak + more, valley) if to_peak else total(peak, valley + more)
    assert after >= before


def test_every_residential_sample_is_covered_by_the_monotonicity_test(book):
    residential = {code for code in book if book[code].customer_kind == "residential"}
    assert residential == {
        "cn-bj-residential-monthly",
        "cn-bj-residential-annual",
        "cn-zj-residential-tou",
    }
