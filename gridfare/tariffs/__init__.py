"""Tariffs as data: load, validate and price Chinese utility tariffs with exact integer money.

``load_tariff_book()`` reads the tariff files; ``Tariff.charge(usage)`` prices a whole
section at once (one int64 fen array per charge line); ``quote()`` prices one account by
calling the same ``charge`` on a one-row ``Usage``. ``load_urdb()`` translates OpenEI URDB
rate records; ``bill_hourly()`` bills a year of hourly load under either kind (docs/urdb.md).
"""

from __future__ import annotations

from gridfare.tariffs.book import TariffBook
from gridfare.tariffs.hourly_bill import AnnualBill, MonthBill, bill_hourly
from gridfare.tariffs.loader import TariffFiles, load_tariff, load_tariff_book, read_tariff_files
from gridfare.tariffs.quote import Quote, quote
from gridfare.tariffs.tariff import Tariff
from gridfare.tariffs.urdb import UrdbTariff, load_urdb
from gridfare.tariffs.usage import Usage

__all__ = [
    "AnnualBill",
    "MonthBill",
    "Quote",
    "Tariff",
    "TariffBook",
    "TariffFiles",
    "UrdbTariff",
    "Usage",
    "bill_hourly",
    "load_tariff",
    "load_tariff_book",
    "load_urdb",
    "quote",
    "read_tariff_files",
]
