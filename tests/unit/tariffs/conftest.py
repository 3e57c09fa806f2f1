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
