"""Reading one TOML table of a tariff file, so that every error names the file and the key.

Numbers are exact: the loader parses TOML floats as ``Decimal`` and strings are parsed as
``Decimal`` too, so ``0.4883`` and ``"0.4883"`` mean the same price and no float is involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from gridfare.errors import InvalidInput, TariffError
from gridfare.money import (
    ENERGY_SCALE,
    FEN_PER_CNY,
    FLOAT_EXACT_UNITS,
    MAX_AMOUNT_FEN,
    MAX_PRICE,
    PRICE_SCALE,
    scaled_int,
    to_decimal,
)

__all__ = ["Table"]


class Table:
    """One TOML table (the tariff, or one of its components) being validated."""

    def __init__(self, data: Mapping[str, object], *, file: str, where: str = "") -> None:
        self._data = dict(data)
        self._file = file
        self._where = where
        self._read: set[str] = set()

    def error(self, key: str | None, message: str) -> TariffError:
        path = ".".join(part for part in (self._where, key) if part)
        return TariffError(
            f"{self._file}: {path}: {message}" if path else f"{self._file}: {message}"
        )

    def keys(self) -> tuple[str, ...]:
        """The keys of this table, in file order (for tables of named entries)."""
        return tuple(self._data)

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> object:
        if key not in self._data:
            raise self.error(key, "is required")
        self._read.add(key)
        return self._data[key]

    def string(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}; got {value!r}")
        return value

    def decimal(self, key: str, value: object = None) -> Decimal:
        value = self.raw(key) if value is None else value
        # bool is an int in Python; `true` is never a price.
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise self.error(key, f"expected a number or a numeric string, got {value!r}")
        try:
            return to_decimal(value, key)
        except InvalidInput:
            raise self.error(key, f"{value!r} is not a number") from None

    def _scaled(self, key: str, value: Decimal, scale: int, unit: str, most: int) -> int:
        if value < 0:
            raise self.error(key, f"must not be negative, got {value}")
        if value > Decimal(most) / scale:
            # Bounded so that every charge fits int64 fen (gridfare.tariffs.bounds).
            raise self.error(key, f"{value} is above the largest accepted, {Decimal(most) / scale}")
        try:
            return scaled_int(value, scale, key)
        except InvalidInput:
            raise self.error(key, f"{value} is finer than 1/{scale} {unit}") from None

    def price(self, key: str, value: object = None) -> int:
        """A non-negative price in CNY as 1e-8 CNY units."""
        return self._scaled(key, self.decimal(key, value), PRICE_SCALE, "CNY", MAX_PRICE)

    def amount_fen(self, key: str) -> int:
        """A non-negative amount in CNY as whole fen."""
        return self._scaled(key, self.decimal(key), FEN_PER_CNY, "CNY", MAX_AMOUNT_FEN)

    def ratio_bp(self, key: str) -> int:
        """A share in (0, 1] as 1/10000 units."""
        value = self.decimal(key)
        if not 0 < value <= 1:
            raise self.error(key, f"must be in (0, 1], got {value}")
        return self._scaled(key, value, 10_000, "", 10_000)

    def prices(self, key: str) -> tuple[int, ...]:
        items = self._list(key)
        return tuple(self.price(f"{key}[{i}]", item) for i, item in enumerate(items))

    def edges(self, key: str) -> tuple[int, ...]:
        """Strictly increasing positive energies in kWh, as 0.01 kWh units."""
        edges: list[int] = []
        for i, item in enumerate(self._list(key)):
            value = self.decimal(f"{key}[{i}]", item)
            edge = self._scaled(f"{key}[{i}]", value, ENERGY_SCALE, "kWh", FLOAT_EXACT_UNITS)
            if edge == 0 or (edges and edge <= edges[-1]):
                raise self.error(key, "edges must be positive and strictly increasing")
            edges.append(edge)
        return tuple(edges)

    def months(self, key: str) -> frozenset[int]:
        months: list[int] = []
        for i, month in enumerate(self._list(key)):
            if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
                raise self.error(f"{key}[{i}]", f"expected a month 1..12, got {month!r}")
            months.append(month)
        if len(set(months)) != len(months) or not months:
            raise self.error(key, "expected distinct months, at least one")
        return frozenset(months)

    def table(self, key: str) -> Table:
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {value!r}")
        return Table(value, file=self._file, where=self._path(key))

    def tables(self, key: str) -> list[Table]:
        tables: list[Table] = []
        for i, item in enumerate(self._list(key)):
            if not isinstance(item, Mapping):
                raise self.error(key, "expected an array of tables ([[...]])")
            tables.append(Table(item, file=self._file, where=self._path(f"{key}[{i}]")))
        return tables

    def finish(self) -> None:
        """Refuse keys nobody read: a misspelt key must not silently change a price."""
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            raise self.error(unknown[0], "unknown key")

    def _list(self, key: str) -> list[object]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.error(key, f"expected an array, got {value!r}")
        return value

    def _path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key
