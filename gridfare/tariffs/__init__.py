"""Tariffs as data: load, validate and price Chinese utility tariffs with exact integer money.

``load_tariff_book()`` reads the tariff files; ``Tariff.charge(usage)`` prices a whole
section at once (one int64 fen array per charge line); ``quote()`` prices one account by
calling the same ``charge`` on a one-row ``Usage``.
"""

from __future__ import annotations

from gridfare.tariffs.book import TariffBook
from gridfare.tariffs.loader import TariffFiles, load_tariff, load_tariff_book, read_tariff_files
from gridfare.tariffs.quote import Quote, quote
from gridfare.tariffs.tariff import Tariff
from gridfare.tariffs.usage import Usage

__all__ = [
    "Quote",
    "Tariff",
    "TariffBook",
    "TariffFiles",
    "Usage",
    "load_tariff",
    "load_tariff_book",
    "quote",
    "read_tariff_files",
]
