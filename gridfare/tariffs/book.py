"""A tariff book: the tariffs in force, by code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from gridfare.errors import TariffError, UnknownTariff
from gridfare.money import QuantityBounds
from gridfare.tariffs.bounds import bounds_of
from gridfare.tariffs.tariff import Tariff

__all__ = ["TariffBook"]


class TariffBook(Mapping[str, Tariff]):
    """Read-only mapping code -> Tariff; an unknown code raises UnknownTariff, not KeyError."""

    def __init__(self, tariffs: Iterable[Tariff]) -> None:
        self._tariffs: dict[str, Tariff] = {}
        for tariff in tariffs:
            if tariff.code in self._tariffs:
                raise TariffError(f"tariff book: code {tariff.code!r} appears twice")
            self._tariffs[tariff.code] = tariff

    @property
    def bounds(self) -> QuantityBounds:
        """The largest quantities every tariff of the book prices exactly in int64 fen."""
        return bounds_of(self._tariffs.values())

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(sorted(self._tariffs))

    def __getitem__(self, code: str) -> Tariff:
        try:
            return self._tariffs[code]
        except KeyError:
            known = ", ".join(self.codes) or "none"
            raise UnknownTariff(f"unknown tariff code {code!r}; known codes: {known}") from None

    def __contains__(self, code: object) -> bool:
        return code in self._tariffs

    def get(self, code: str, default: Tariff | None = None) -> Tariff | None:  # type: ignore[override]
        return self._tariffs.get(code, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.codes)

    def __len__(self) -> int:
        return len(self._tariffs)

    def __repr__(self) -> str:
        return f"TariffBook({list(self.codes)})"
