"""Power factor in bills: a factor that rounds to 0.00 is a reading, and an account without
a standard takes its tariff's default; in both, a bill line equals `gridfare tariff quote`."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gridfare.billing import bill_section
from gridfare.cli import main
from gridfare.tariffs import load_tariff_book
from tests.unit.billing.test_kernel import PERIOD, accounts, readings

COMMERCIAL = "cn-bj-commercial-tou"  # power_factor standard_default 0.85
INDUSTRIAL = "cn-bj-industrial-two-part"  # standard_default 0.90, basic by capacity
# The account: 670.20 kWh against 1,029,778.20 kvarh, cos(phi) = 0.00065.
SPLIT = {"peak_kwh": 300.0, "flat_kwh": 200.0, "valley_kwh": 170.2}


@pytest.fixture(scope="module")
def book():
    return load_tariff_book()


def _bill(book, *, tariff=COMMERCIAL, pf_standard=0.85, reactive=1_029_778.2,
          capacity=None) -> dict:
    kind = "industrial" if tariff == INDUSTRIAL else "commercial"
    result = bill_section(
        accounts({"account_id": 1, "tariff_code": tariff, "customer_kind": kind,
                  "capacity_kva": capacity, "pf_standard": pf_standard}),
        readings({"account_id": 1, "prev_register": 1000.0, "cur_register": 1670.2,
                  "critical_kwh": 0.0, **SPLIT, "reactive_kvarh": reactive}),
        book, PERIOD)
    assert result.exceptions.num_rows == 0, result.exceptions.to_pylist()
    (bill,) = result.bills.to_pylist()
    return bill


def _quote(capsys, tariff=COMMERCIAL, **flags: str) -> dict[str, Decimal]:
    args = ["tariff", "quote", tariff, "--kwh", "670.20", "--critical-kwh", "0",
            *(f"--{k.replace('_', '-')}={v}" for k, v in SPLIT.items()),
            "--month", PERIOD, "--json",
            *(f"--{k.replace('_', '-')}={v}" for k, v in flags.items())]
    assert main(args) == 0
    answer = json.loads(capsys.readouterr().out)
    return {f"{line}_fen": Decimal(amount) * 100 for line, amount in answer["lines"].items()}


def _lines(bill: dict) -> dict[str, Decimal]:
    return {line: Decimal(fen) for line, fen in bill.items()
            if line.endswith("_fen") and line != "total_fen" and fen}


def test_a_factor_rounding_to_zero_is_surcharged_135_percent(book, capsys):
    bill = _bill(book)
    assert bill["power_factor"] == 0.0  # measured, not "not metered" (null)
    energy = bill["peak_fen"] + bill["flat_fen"] + bill["valley_fen"]
    assert bill["pf_adjust_fen"] == round(Decimal(energy) * Decimal("1.35"))  # +135 % at 0.85
    assert bill["pf_adjust_fen"] > 0
    assert _lines(bill) == _quote(capsys, power_factor="0.00", pf_standard="0.85")
    assert bill["total_fen"] == sum(_lines(bill).values())


def test_an_account_without_a_standard_takes_the_tariffs_default(book, capsys):
    """Bill and quote follow one rule: no standard of its own -> the tariff's default."""
    low = 500.0  # 670.20 / sqrt(670.20^2 + 500^2) = 0.80: +2.5 % at 0.85
    bill = _bill(book, pf_standard=None, reactive=low)
    assert bill["power_factor"] == 0.8 and bill["pf_adjust_fen"] > 0
    assert _lines(bill) == _quote(capsys, power_factor="0.80")  # no --pf-standard
    assert _lines(bill) == _lines(_bill(book, pf_standard=0.85, reactive=low))
    industrial = _bill(book, tariff=INDUSTRIAL, pf_standard=None, reactive=low,
                       capacity=100.0)
    assert industrial["pf_adjust_fen"] > 0  # +5 % at the tariff's 0.90
    assert _lines(industrial) == _quote(capsys, INDUSTRIAL, power_factor="0.80",
                                        capacity_kva="100")


def test_a_standard_of_zero_exempts_the_account(book, capsys):
    bill = _bill(book, pf_standard=0.0)
    assert bill["power_factor"] == 0.0 and bill["pf_adjust_fen"] == 0
    assert _lines(bill) == _quote(capsys, power_factor="0.00", pf_standard="0")


def test_without_reactive_metering_there_is_no_factor_and_no_adjustment(book, capsys):
    bill = _bill(book, reactive=None)
    assert bill["power_factor"] is None and bill["pf_adjust_fen"] == 0
    assert _lines(bill) == _quote(capsys)  # no --power-factor: not metered
