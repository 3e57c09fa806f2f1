"""Shared fixtures for the tariff tests: the sample book and hand-written tariff files."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from textwrap import dedent

import numpy as np
import pytest

from gridfare.tariffs import Tariff, TariffBook, Usage, load_tariff_book
from gridfare.tariffs.loader import parse_tariff


@pytest.fixture(scope="session")
def book() -> TariffBook:
    return load_tariff_book()


@pytest.fixture
def make_tariff() -> Callable[..., Tariff]:
    """``make_tariff(components_toml, code="t-test", kind="commercial") -> Tariff``."""

    def make(components: str, *, code: str = "t-test", kind: str = "commercial") -> Tariff:
        text = f'code = "{code}"\nname = "test"\ncustomer_kind = "{kind}"\n' + dedent(components)
        return parse_tariff(text, f"{code}.toml")

    return make


@pytest.fixture
def usage() -> Callable[..., Usage]:
    """``usage(month=1, kwh=["240.01", ...])``: quantities in kWh/kW/kVA as text or int;
    power_factor and pf_standard in hundredths; tou_metered as bools."""

    def make(month: int = 1, **columns: object) -> Usage:
        scaled = {
            name: np.asarray(values)
            if name in ("tou_metered", "power_factor", "pf_standard")
            else np.array([int(Decimal(str(v)) * 100) for v in values], dtype=np.int64)
            for name, values in columns.items()
        }
        n = len(next(iter(scaled.values())))
        return Usage.of(month, n, **scaled)

    return make


def _flat_schedule(period: int = 0) -> list[list[int]]:
    return [[period] * 24 for _ in range(12)]


@pytest.fixture
def urdb_record() -> Callable[..., dict]:
    """``urdb_record(**fields) -> dict``: a one-period flat-rate URDB record plus ``fields``
    (a field given as None is dropped)."""

    def make(**fields: object) -> dict:
        record: dict[str, object] = {
            "label": "5e1676e95457a3f87673e3b0",
            "name": "test rate",
            "utility": "Test Utility",
            "energyratestructure": [[{"rate": Decimal("0.1"), "unit": "kWh"}]],
            "energyweekdayschedule": _flat_schedule(),
            "energyweekendschedule": _flat_schedule(),
        }
        record.update(fields)
        return {key: value for key, value in record.items() if value is not None}

    return make


@pytest.fixture
def profile() -> Callable[..., np.ndarray]:
    """``profile(kwh_per_hour, year=2026) -> float array``: the same load every hour."""
    from gridfare.tariffs.hourly import hours_in_year

    def make(kwh: float, year: int = 2026) -> np.ndarray:
        return np.full(hours_in_year(year), kwh)

    return make
