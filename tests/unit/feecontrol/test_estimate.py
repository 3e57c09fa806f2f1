"""Fee estimation on the tariff engine: tier edges, TOU, month and year boundaries, and the
month's deductions adding up exactly to the same lines of the month's bill."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.compute as pc
import pytest

from datasets.schemas import CUSTOMER_KINDS
from gridfare.feecontrol.config import AuditRules
from gridfare.feecontrol.estimate import DEDUCTED_LINES
from gridfare.tariffs import Usage
from tests.unit.feecontrol.helpers import (
    BOOK,
    customers,
    freeze,
    records,
    run_days,
    snapshot,
)
from tests.unit.feecontrol.memory import MemoryAccounts

MONTHLY = "cn-bj-residential-monthly"  # tiers 0-240-400 at 0.4883 / 0.5383 / 0.7883


def _deductions(code: str, kind: str, registers: list[float], start: dt.date,
                tou: list[dict] | None = None) -> list[int]:
    # Large days of energy: the audit's plausibility limit is not what these tests test.
    audit = AuditRules(max_daily_kwh=dict.fromkeys(CUSTOMER_KINDS, 10**6))
    snap = snapshot(customers((1, kind, code)), audit=audit)
    accounts = MemoryAccounts({1: 10**9})
    days = []
    for i, kwh in enumerate(registers):
        day = start + dt.timedelta(days=i)
        days.append((day, records(freeze(1, day, kwh, tou=tou[i] if tou else None))))
    results = run_days(days, snap, accounts)
    return [int(pc.sum(r.tables["decisions"]["deduction_fen"]).as_py()) for r in results]


def test_the_first_reading_opens_the_settlement():
    assert _deductions(MONTHLY, "residential", [1000.0], dt.date(2026, 11, 2)) == [0]


def test_a_tier_edge_inside_one_days_energy():
    # 239.99 kWh in tier 1, then 0.02 kWh: 0.01 at tier 1, 0.01 at tier 2.
    fen = _deductions(MONTHLY, "residential", [0.0, 239.99, 240.01], dt.date(2026, 11, 2))
    assert fen[1] == round(23999 * 48830000 / 10**8)  # 117.19 CNY
    tier1, tier2 = 48830000, 53830000  # 1e-8 CNY/kWh
    assert fen[2] == (round(24000 * tier1 / 10**8) - round(23999 * tier1 / 10**8)
                      + round(1 * tier2 / 10**8))


def test_tiers_start_again_in_a_new_month():
    # 300 kWh in November fills tier 1 and part of tier 2; December starts at tier 1 again.
    fen = _deductions(MONTHLY, "residential", [0.0, 300.0, 310.0],
                      dt.date(2026, 11, 30))
    # The freeze of Dec 1 closes Nov 30 (a November day); Dec 2 closes Dec 1.
    assert fen[2] == round(1000 * 48830000 / 10**8)


def test_annual_tiers_carry_the_year():
    code = "cn-bj-residential-annual"
    tariff = BOOK[code]
    fen = _deductions(code, "residential", [0.0, 100.0, 130.0], dt.date(2026, 11, 2))
    one = Usage.of(11, 1, kwh=np.array([13000]), ytd_kwh=np.array([0]))
    base = Usage.of(11, 1, kwh=np.array([10000]), ytd_kwh=np.array([0]))
    expected = sum(int(tariff.charge(one)[line][0] - tariff.charge(base)[line][0])
                   for line in DEDUCTED_LINES)
    assert fen[2] == expected


def test_a_month_of_deductions_is_the_months_bill_lines():
    rng = np.random.default_rng(4)
    code = "cn-bj-commercial-tou"
    registers = {"critical": 0, "peak": 0, "flat": 0, "valley": 0}
    tous, totals = [], []
    for _ in range(31):  # freeze of Nov 1 (opens) .. Dec 1 (closes Nov 30)
        tous.append({k: v / 100 for k, v in registers.items()})
        totals.append(sum(registers.values()) / 100)
        for period in ("peak", "flat", "valley"):
            registers[period] += int(rng.integers(1000, 30000))
    fen = _deductions(code, "commercial", totals, dt.date(2026, 11, 1), tous)
    month = Usage.of(11, 1, kwh=np.array([round(totals[-1] * 100)]),
                     peak=np.array([round(tous[-1]["peak"] * 100)]),
                     flat=np.array([round(tous[-1]["flat"] * 100)]),
                     valley=np.array([round(tous[-1]["valley"] * 100)]),
                     tou_metered=np.array([True]))
    bill = BOOK[code].charge(month)
    assert sum(fen) == sum(int(bill[line][0]) for line in DEDUCTED_LINES)


@pytest.mark.parametrize("code", ["cn-zj-residential-tou", "cn-bj-industrial-two-part"])
def test_tou_tariffs_price_the_periods(code):
    kind = "residential" if "residential" in code else "industrial"
    periods = ("peak", "valley") if kind == "residential" else ("peak", "flat", "valley")
    first = dict.fromkeys(periods, 0.0)
    second = {p: 10.0 * (i + 1) for i, p in enumerate(periods)}
    total = sum(second.values())
    fen = _deductions(code, kind, [0.0, total], dt.date(2026, 11, 2), [first, second])
    usage = Usage.of(11, 1, kwh=np.array([int(total * 100)]), tou_metered=np.array([True]),
                     **{p: np.array([int(v * 100)]) for p, v in second.items()})
    bill = BOOK[code].charge(usage)
    assert fen[1] == sum(int(bill[line][0]) for line in DEDUCTED_LINES) > 0
