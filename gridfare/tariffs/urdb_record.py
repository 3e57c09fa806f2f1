"""One URDB rate record (an ``items`` entry of an OpenEI API v7/v8 export) being validated.

Each component's ``parse`` reads its fields through ``Record``; ``finish`` then refuses any
field nobody read unless it only describes the rate (``DESCRIPTIVE``) or holds the value
that prices nothing (``NEUTRAL``): a field gridfare does not price is never dropped in
silence. Numbers come from the JSON text as Decimal (``json.loads(parse_float=Decimal)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from gridfare.errors import UrdbError
from gridfare.money import PRICE_SCALE

__all__ = ["DESCRIPTIVE", "NEUTRAL", "Record"]

# Fields that name, date, place or describe the rate and change no bill. ``dgrules`` and
# ``sell`` prices concern exported energy; gridfare bills consumption profiles only.
DESCRIPTIVE = frozenset({
    "label", "uri", "name", "utility", "eiaid", "sector", "servicetype", "description",
    "source", "sourceparent", "startdate", "enddate", "latest_update", "revisions",
    "supersedes", "approved", "is_default", "country", "voltagecategory", "phasewiring",
    "peakkwcapacitymin", "peakkwcapacitymax", "peakkwcapacityhistory", "peakkwhusagemin",
    "peakkwhusagemax", "peakkwhusagehistory", "voltageminimum", "voltagemaximum",
    "energycomments", "demandcomments", "dgrules", "fixedchargeeaaddl", "currency",
})


def _zero(value: object) -> bool:
    return value is None or value == 0 or value == "" or value == []


def _all_zero(value: object) -> bool:
    return _zero(value) or (isinstance(value, list) and all(_all_zero(v) for v in value))


# Fields that price something gridfare does not model, accepted only when they price
# nothing (absent, null, zero, empty). Anything else is refused by name.
NEUTRAL: dict[str, Callable[[object], bool]] = {
    "energyattrs": _all_zero,
    "demandattrs": _all_zero,
    "fixedattrs": _all_zero,
    "coincidentratestructure": _all_zero,
    "coincidentrateschedule": _all_zero,
    "coincidentrateunit": lambda v: True,
    "demandratchetpercentage": _all_zero,
    "demandreactivepowercharge": _zero,
    "fueladjustmentsmonthly": _all_zero,
    "lookbackpercent": _zero,
    "lookbackrange": _zero,
    "lookbackmonths": _all_zero,
    "minmonthlycharge": _zero,
    "annualmincharge": _zero,
    "demandwindow": lambda v: v is None or v == 60,  # hourly load: 60-minute demand only
    "demandunits": lambda v: v in (None, "kW"),
    "demandrateunit": lambda v: v in (None, "kW"),
    "flatdemandunit": lambda v: v in (None, "kW"),
}

_WHY = {
    "demandwindow": "hourly load gives 60-minute demand only",
    "demandunits": "only kW demand is priced",
    "demandrateunit": "only kW demand is priced",
    "flatdemandunit": "only kW demand is priced",
}


class Record:
    """One rate record; every error names the source, the record and the field."""

    def __init__(self, data: Mapping[str, object], *, source: str, index: int) -> None:
        if not isinstance(data, Mapping):
            raise UrdbError(f"{source}: items[{index}]: expected a JSON object")
        self._data = dict(data)
        self._read: set[str] = set()
        label = self._data.get("label")
        self.label = label if isinstance(label, str) and label else f"items[{index}]"
        self._where = f"{source}: record {self.label}"

    def error(self, field: str, message: str) -> UrdbError:
        return UrdbError(f"{self._where}: {field}: {message}")

    def has(self, field: str) -> bool:
        """Present and not null (URDB exports carry explicit nulls)."""
        return self._data.get(field) is not None

    def raw(self, field: str) -> object:
        self._read.add(field)
        if self._data.get(field) is None:
            raise self.error(field, "is required")
        return self._data[field]

    def text(self, field: str, default: str = "") -> str:
        self._read.add(field)
        value = self._data.get(field)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(field, f"expected a string, got {value!r}")
        return value

    def decimal(self, field: str, value: object) -> Decimal:
        # bool is an int in Python; `true` is never a price.
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise self.error(field, f"expected a number, got {value!r}")
        number = Decimal(value)
        if not number.is_finite():
            raise self.error(field, f"{value} is not a finite number")
        return number

    def scaled(self, field: str, value: object, scale: int, what: str) -> int:
        """A non-negative number times ``scale``, exactly; finer values are refused."""
        number = self.decimal(field, value)
        if number < 0:
            raise self.error(field, f"must not be negative, got {number}")
        scaled = number * scale
        if scaled != scaled.to_integral_value():
            raise self.error(field, f"{number} is finer than 1/{scale} {what}")
        return int(scaled)

    def price(self, field: str, value: object) -> int:
        """A price in major currency units as integer 1e-8 units."""
        return self.scaled(field, value, PRICE_SCALE, "of the currency")

    def schedule(self, field: str, periods: int) -> tuple[tuple[int, ...], ...]:
        """A 12 x 24 table of period indexes, each below ``periods``."""
        rows = self.raw(field)
        if not isinstance(rows, list) or len(rows) != 12:
            raise self.error(field, "expected 12 rows (months) of 24 period indexes")
        table = []
        for month, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != 24:
                raise self.error(f"{field}[{month}]", "expected 24 period indexes (hours)")
            for hour, period in enumerate(row):
                if isinstance(period, bool) or not isinstance(period, int) or not (
                        0 <= period < periods):
                    raise self.error(
                        f"{field}[{month}][{hour}]",
                        f"period {period!r} is not one of the {periods} periods defined")
            table.append(tuple(row))
        return tuple(table)

    def structure(self, field: str, keys: frozenset[str]) -> list[list[dict[str, object]]]:
        """Periods x tiers of tier objects, each holding only ``keys`` (and a ``rate``)."""
        periods = self.raw(field)
        if not isinstance(periods, list) or not periods:
            raise self.error(field, "expected a non-empty list of periods")
        result = []
        for p, tiers in enumerate(periods):
            if not isinstance(tiers, list) or not tiers:
                raise self.error(f"{field}[{p}]", "expected a non-empty list of tiers")
            for t, tier in enumerate(tiers):
                where = f"{field}[{p}][{t}]"
                if not isinstance(tier, Mapping):
                    raise self.error(where, "expected a tier object")
                unknown = sorted(set(tier) - keys)
                if unknown:
                    raise self.error(f"{where}.{unknown[0]}", "is not a tier field gridfare "
                                     f"prices (known: {', '.join(sorted(keys))})")
                if tier.get("rate") is None:
                    raise self.error(f"{where}.rate", "is required")
            result.append([dict(tier) for tier in tiers])
        return result

    def finish(self) -> None:
        """Refuse every field nobody read that is not descriptive or neutral."""
        for field in sorted(set(self._data) - self._read - DESCRIPTIVE):
            value = self._data[field]
            if value is None:  # exports carry explicit nulls; a null prices nothing
                continue
            neutral = NEUTRAL.get(field)
            if neutral is not None and neutral(value):
                continue
            if neutral is not None:
                why = _WHY.get(field, "gridfare does not price it")
                raise self.error(field, f"{value!r} is not supported ({why})")
            raise self.error(field, "unknown or unsupported URDB field; gridfare does not "
                             "price it (see docs/urdb.md)")
