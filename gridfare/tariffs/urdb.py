"""URDB rate records (OpenEI's Utility Rate Database, API v7/v8 JSON) -> UrdbTariffs.

An export is ``{"items": [record, ...]}``; each record becomes one ``UrdbTariff`` of the
components in ``KINDS`` (one module each), priced with exact integers in the minor unit of
the record's ``currency`` (default USD). A field no component reads and that is not purely
descriptive is refused by name (``urdb_record.Record.finish``). See docs/urdb.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import numpy as np

from gridfare.errors import UrdbError
from gridfare.tariffs import urdb_demand, urdb_energy, urdb_fixed, urdb_flat_demand, urdb_minimum
from gridfare.tariffs.component import Component
from gridfare.tariffs.hourly import HourlyUsage
from gridfare.tariffs.urdb_record import Record

__all__ = ["CURRENCIES", "KINDS", "LINES", "UrdbTariff", "load_urdb", "parse_urdb", "translate"]

KINDS: dict[str, Callable[[Record], Component | None]] = {
    "urdb_energy": urdb_energy.parse,
    "urdb_demand": urdb_demand.parse,
    "urdb_flat_demand": urdb_flat_demand.parse,
    "urdb_fixed": urdb_fixed.parse,
    "urdb_minimum": urdb_minimum.parse,
}
LINES = ("energy", "demand_tou", "demand_flat", "fixed", "minimum_adjustment")
CURRENCIES = {"USD": 100, "CAD": 100, "EUR": 100, "GBP": 100, "AUD": 100, "MXN": 100,
              "CNY": 100, "JPY": 1}  # minor units per major unit


@dataclass(frozen=True)
class UrdbTariff:
    """A translated URDB rate: its components in bill order, priced over n profiles."""

    label: str
    name: str
    utility: str
    currency: str
    components: tuple[Component, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.components, key=lambda component: component.stage))
        object.__setattr__(self, "components", ordered)

    @property
    def code(self) -> str:
        return self.label

    @property
    def minor_per_major(self) -> int:
        return CURRENCIES[self.currency]

    def charge(self, usage: HourlyUsage) -> dict[str, np.ndarray]:
        """Every line of ``LINES`` as (n, 12) int64 minor units, each rounded half up."""
        lines = {line: np.zeros((len(usage), 12), dtype=np.int64) for line in LINES}
        for component in self.components:
            lines.update(component.charge(usage, MappingProxyType(lines)))
        return lines

    def describe(self) -> str:
        kinds = ", ".join(component.kind for component in self.components)
        return f"{self.label}  {self.currency}  {self.utility}: {self.name}  [{kinds}]"


def translate(item: Mapping[str, object], *, source: str = "urdb", index: int = 0
              ) -> UrdbTariff:
    """One export record -> a validated ``UrdbTariff``; errors name the record and field."""
    record = Record(item, source=source, index=index)
    currency = record.text("currency", "USD")
    if currency not in CURRENCIES:
        raise record.error("currency", f"{currency!r} is not one of {', '.join(CURRENCIES)}")
    minor = CURRENCIES[currency]
    components = []
    for parse in KINDS.values():
        component = parse(record)
        if component is None:
            continue
        if hasattr(component, "raw_per_minor"):
            component = dataclasses.replace(component, raw_per_minor=10**11 // minor)
        else:
            component = dataclasses.replace(component, minor_per_major=minor)
        components.append(component)
    record.finish()
    if not any(c.kind in ("urdb_energy", "urdb_demand", "urdb_flat_demand", "urdb_fixed")
               for c in components):
        raise record.error("energyratestructure", "the record prices nothing gridfare "
                           "reads (no energy, demand or fixed charge)")
    return UrdbTariff(label=record.label, name=record.text("name"),
                      utility=record.text("utility"), currency=currency,
                      components=tuple(components))


def parse_urdb(text: str | bytes, source: str, label: str | None = None
               ) -> tuple[UrdbTariff, ...]:
    """The records of an export's text (``{"items": [...]}``), all or nothing; with
    ``label`` only that record is translated (the others may use fields gridfare refuses)."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UrdbError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
        raise UrdbError(f'{source}: expected an export object with an "items" list')
    items = list(enumerate(data["items"]))
    if not items:
        raise UrdbError(f"{source}: items: the export holds no rate records")
    if label is not None:
        labels = [item.get("label") if isinstance(item, Mapping) else None for _, item in items]
        items = [(i, item) for (i, item), found in zip(items, labels, strict=True)
                 if found == label]
        if not items:
            known = ", ".join(str(found) for found in labels)
            raise UrdbError(f"{source}: no record labelled {label!r}; labels: {known}")
    tariffs = tuple(translate(item, source=source, index=i) for i, item in items)
    seen: set[str] = set()
    for tariff in tariffs:
        if tariff.label in seen:
            raise UrdbError(f"{source}: record {tariff.label}: label appears twice")
        seen.add(tariff.label)
    return tariffs


def load_urdb(path: str | os.PathLike[str], label: str | None = None
              ) -> tuple[UrdbTariff, ...]:
    """The records of an export file (only the one labelled ``label`` if given)."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise UrdbError(f"{path}: cannot read URDB export: {exc}") from exc
    return parse_urdb(text, Path(path).name, label)
