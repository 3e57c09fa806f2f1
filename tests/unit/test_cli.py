"""The `gridfare` command: outputs, one-line errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gridfare.cli import main


def test_quote_prints_lines_and_total(capsys):
    assert main(["tariff", "quote", "cn-bj-residential-monthly", "--kwh", "500", "--json"]) == 0
    quote = json.loads(capsys.readouterr().out)
    assert quote["total"] == "282.15"
    assert quote["lines"] == {"tier1": "117.19", "tier2": "86.13", "tier3": "78.83"}


def test_unknown_tariff_is_one_line_and_exit_2(capsys):
    assert main(["tariff", "quote", "cn-nowhere", "--kwh", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gridfare: error:") and "cn-nowhere" in err and "\n" not in err


@pytest.mark.parametrize("args, words", [
    (["--kwh", "-5"], "kwh"),
    (["--kwh", "100", "--peak-kwh", "60", "--flat-kwh", "10", "--valley-kwh", "10"], "100"),
])
def test_bad_quote_inputs_name_the_rule(capsys, args, words):
    code = "cn-bj-commercial-tou" if "--peak-kwh" in args else "cn-bj-residential-monthly"
    assert main(["tariff", "quote", code, *args]) == 2
    assert words in capsys.readouterr().err


def test_generate_bill_runs_summary(tmp_path, capsys):
    out = str(tmp_path / "dc")
    assert main(["generate", "--accounts", "1500", "--sections", "6", "--period", "2026-10",
                 "--seed", "3", "--out", out]) == 0
    assert "generated 1,500 accounts" in capsys.readouterr().out
    assert main(["bill", "--datacentre", out, "--period", "2026-10"]) == 0
    billed = capsys.readouterr().out
    assert "6 sections" in billed
    run_id = billed.split()[1].rstrip(":")
    assert main(["status", run_id, "--datacentre", out, "--sections"]) == 0
    status = capsys.readouterr().out
    assert "done: 6 done, 0 failed, 0 pending of 6" in status
    assert status.count(" done ") >= 6
    assert main(["runs", "--datacentre", out]) == 0
    assert "done" in capsys.readouterr().out
    assert main(["summary", "--datacentre", out, "--period", "2026-10"]) == 0
    assert "by tariff" in capsys.readouterr().out


def test_bill_on_a_missing_data_centre_is_a_clear_error(tmp_path, capsys):
    assert main(["bill", "--datacentre", str(tmp_path / "nope"), "--period", "2026-10"]) == 3
    assert "nope" in capsys.readouterr().err


def test_quote_answers_fast_without_importing_ray():
    code = ("import sys, gridfare.cli as c; c.main(['tariff','quote',"
            "'cn-bj-residential-monthly','--kwh','500']); "
            "assert 'ray' not in sys.modules and 'duckdb' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
