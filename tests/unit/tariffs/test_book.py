from __future__ import annotations

import pytest

from gridfare.errors import TariffError, UnknownTariff
from gridfare.tariffs import TariffBook


def test_unknown_code_names_it_and_lists_known_codes(book):
    with pytest.raises(UnknownTariff) as info:
        book["cn-xx-nothing"]
    message = str(info.value)
    assert "'cn-xx-nothing'" in message
    assert "cn-bj-residential-monthly" in message and "cn-zj-residential-tou" in message


def test_mapping_behaviour(book):
    assert "cn-bj-residential-monthly" in book
    assert "cn-xx-nothing" not in book
    assert book.get("cn-xx-nothing") is None
    assert list(book) == list(book.codes) == sorted(book.codes)
    assert len(book) == len(book.codes)
    assert book["cn-bj-commercial-tou"].code == "cn-bj-commercial-tou"


def test_duplicate_codes_are_refused(book):
    tariff = book["cn-bj-commercial-tou"]
    with pytest.raises(TariffError, match="appears twice"):
        TariffBook([tariff, tariff])


def test_empty_book_says_so():
    with pytest.raises(UnknownTariff, match="known codes: none"):
        TariffBook([])["x"]
