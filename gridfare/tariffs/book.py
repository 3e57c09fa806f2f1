"""A tariff book: the tariffs in force, by code."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from gridfare.errors import TariffError, UnknownTariff
from gridfare.money import QuantityBounds
from gridfare.tariffs.bounds import bounds_of
from gridfare.tariffs.tariff import Tariff

__all__ = ["TARIFF_CODE", "TariffBook", "check_tariff_code"]

# Lowercase words joined by hyphens: a code names a file (<code>.toml), so no path can hide
# in one (no "/", "..", "\\", NUL or leading dot), and it is at most 64 characters.
TARIFF_CODE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CODE_LENGTH = 64


def check_tariff_code(code: object) -> str:
    """``code`` if it is a well-formed tariff code; else UnknownTariff naming the rule."""
    if not isinstance(code, str) or len(code) > _CODE_LENGTH or not TARIFF_CODE.fullmatch(code):
        raise UnknownTariff(f"tariff code {code!r} is not lowercase words joined by hyphens "
                            f"(at most {_CODE_LENGTH} characters)")
    return code


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
        check_tariff_code(code)
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
