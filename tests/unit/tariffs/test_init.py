from __future__ import annotations

import gridfare.tariffs as tariffs


def test_public_names():
    assert tariffs.__all__ == sorted(tariffs.__all__)
    assert set(tariffs.__all__) == {
        "AnnualBill",
        "MonthBill",
        "UrdbTariff",
        "bill_hourly",
        "load_urdb",
        "Quote",
        "Tariff",
        "TariffBook",
        "TariffFiles",
        "Usage",
        "load_tariff",
        "load_tariff_book",
        "quote",
        "read_tariff_files",
    }
    for name in tariffs.__all__:
        assert hasattr(tariffs, name)
