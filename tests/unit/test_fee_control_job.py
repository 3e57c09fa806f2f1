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
