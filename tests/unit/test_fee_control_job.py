"""The fee-control job's command line: bad arguments are one line and exit 2 (no Ray)."""

from __future__ import annotations

import pytest

from rayjobs import fee_control


@pytest.mark.parametrize("accounts", ["bogus", "pg:/srv/store", "store:"])
def test_a_bad_accounts_service_is_one_line(accounts, capsys):
    code = fee_control.main(["--datacentre", "/nowhere", "--date", "2026-11-01",
                             "--accounts", accounts])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("gridfare: error: ")


def test_a_timer_tick_falls_on_its_grid_so_a_repeated_tick_is_the_same_tick():
    import datetime as dt

    at = dt.datetime(2026, 11, 3, 21, 30, 17, tzinfo=dt.UTC).timestamp()
    assert fee_control.tick_notice(at, 60)["tick"] == "2026-11-03T21:30:00"
    assert fee_control.tick_notice(at + 40, 60)["tick"] == "2026-11-03T21:30:00"
    assert fee_control.tick_notice(at + 43, 60)["tick"] == "2026-11-03T21:31:00"
    assert fee_control.tick_notice(at, 0.2)["tick"] == "2026-11-03T21:30:17"  # 1 s at least
