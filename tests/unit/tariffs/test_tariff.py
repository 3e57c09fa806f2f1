from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from datasets.schemas import CHARGE_LINES
from gridfare.errors import InvalidInput, TariffError
from gridfare.tariffs import Tariff, Usage, quote
from gridfare.tariffs.component import Stage
from gridfare.tariffs.fixed import Fixed, Minimum
from gridfare.tariffs.tiered import Tiered
from gridfare.tariffs.usage import PF_NOT_METERED


def _random_usage(tariff: Tariff, n: int, seed: int, month: int) -> Usage:
    rng = np.random.default_rng(seed)
    parts = {p: rng.integers(0, 300_000, n) for p in ("critical", "peak", "flat", "valley")}
    if tariff.tou_periods and "flat" not in tariff.tou_periods:
        parts["flat"][:] = 0
    parts["kwh"] = sum(parts.values())
    return Usage.of(
        month,
        n,
        **parts,
        tou_metered=np.ones(n, bool),
        ytd_kwh=rng.integers(0, 600_000, n),
        max_demand_kw=rng.integers(0, 100_000, n),
        capacity_kva=rng.integers(0, 200_000, n),
        power_factor=rng.choice([PF_NOT_METERED, 0, 1, 55, 64, 70, 85, 86, 89, 90, 91, 94, 95,
                                 100], n),
        pf_standard=rng.choice([0, 80, 85, 90], n),
    )


def _as_text(hundredths) -> str:
    return str(Decimal(int(hundredths)) / 100)


@pytest.mark.parametrize(("seed", "month"), [(1, 3), (2, 7)])  # 7: critical-peak month
def test_vectorized_charge_equals_quoting_each_row(book, seed, month):
    for code in book:
        tariff = book[code]
        usage = _random_usage(tariff, 60, seed, month)
        lines = tariff.charge(usage)
        for row in range(len(usage)):
            one = quote(
                tariff,
                kwh=_as_text(usage.kwh[row]),
                **{
                    f"{p}_kwh": _as_text(getattr(usage, p)[row])
                    for p in ("critical", "peak", "flat", "valley")
                },
                ytd_kwh=_as_text(usage.ytd_kwh[row]),
                max_demand_kw=_as_text(usage.max_demand_kw[row]),
                capacity_kva=_as_text(usage.capacity_kva[row]),
                power_factor=(None if usage.power_factor[row] == PF_NOT_METERED
                              else _as_text(usage.power_factor[row])),
                pf_standard=_as_text(usage.pf_standard[row]),
                month=usage.month,
            )
            expected = {f"{name}_fen": int(amount * 100) for name, amount in one.lines}
            got = {name: int(lines[name][row]) for name in CHARGE_LINES if lines[name][row]}
            assert got == expected, (code, row)


def test_charge_returns_every_line_as_int64(book):
    usage = Usage.of(1, 3, kwh=np.array([0, 100, 50_000]))
    lines = book["cn-bj-residential-monthly"].charge(usage)
    assert tuple(lines) == CHARGE_LINES
    for column in lines.values():
        assert column.dtype == np.int64 and column.shape == (3,)


def test_empty_section(book):
    usage = Usage.of(1, 0)
    assert all(len(v) == 0 for v in book["cn-bj-commercial-tou"].charge(usage).values())


def test_components_run_in_stage_order():
    tariff = Tariff("t", "t", "residential", (Minimum(100), Fixed(10), Tiered("monthly", (), (1,))))
    assert [c.stage for c in tariff.components] == [Stage.ENERGY, Stage.FIXED, Stage.MINIMUM]


def test_one_component_per_kind():
    with pytest.raises(TariffError):
        Tariff("t", "t", "residential", (Fixed(1), Fixed(2)))


def test_negative_usage_is_refused(book):
    usage = Usage.of(1, 2, kwh=np.array([5, -1]))
    with pytest.raises(InvalidInput, match=r"kwh is negative in 1 rows \(row 1: -1\)"):
        book["cn-bj-residential-monthly"].charge(usage)


def test_requires_is_drawn_from_the_known_inputs(book):
    from gridfare.tariffs.component import INPUTS

    for code in book:
        assert book[code].requires <= INPUTS
