"""``gridfare tariff import-urdb`` and ``gridfare tariff bill``: outputs, one-line errors."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from gridfare.cli import main

SAMPLE = str(files("datasets") / "samples" / "urdb" / "sample-export.json")
GS2 = "66a0f3c1e9b2a4d3c8f1a003"


@pytest.fixture
def load_csv(tmp_path):
    def write(values, header: str | None = "kwh", name: str = "load.csv") -> str:
        path = tmp_path / name
        lines = ([header] if header else []) + [str(v) for v in values]
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    return write


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("gridfare: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_import_lists_every_rate_and_writes_one_file_each(capsys, tmp_path):
    out = tmp_path / "rates"
    assert main(["tariff", "import-urdb", SAMPLE, "--out", str(out)]) == 0
    assert "5 rates accepted" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir())[0] == "66a0f3c1e9b2a4d3c8f1a001.json"
    assert main(["tariff", "import-urdb", str(out / f"{GS2}.json"), "--json"]) == 0
    (rate,) = json.loads(capsys.readouterr().out)
    assert rate["components"] == ["urdb_energy", "urdb_demand", "urdb_flat_demand",
                                  "urdb_fixed", "urdb_minimum"]


def test_import_refuses_the_whole_export_and_writes_nothing(capsys, tmp_path):
    export = json.loads(Path(SAMPLE).read_text())
    export["items"][3]["coincidentratestructure"] = [[{"rate": 2}]]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    out = tmp_path / "rates"
    assert main(["tariff", "import-urdb", str(path), "--out", str(out)]) == 2
    assert "record 66a0f3c1e9b2a4d3c8f1a004: coincidentratestructure" in _error(capsys)
    assert not out.exists()


def test_malformed_json_is_one_line(capsys, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"items": [')
    assert main(["tariff", "import-urdb", str(path)]) == 2
    assert "broken.json: not valid JSON" in _error(capsys)


def test_bill_prints_twelve_months_in_major_units(capsys, load_csv):
    values = [Decimal("1.25")] * 8760
    assert main(["tariff", "bill", "--urdb", SAMPLE, "--label", GS2, "--load",
                 load_csv(values, header=None), "--year", "2026", "--json"]) == 0
    bill = json.loads(capsys.readouterr().out)
    assert len(bill["months"]) == 12 and bill["months"][0]["fixed"] == "45.50"
    total = sum(Decimal(m["total"]) for m in bill["months"])
    assert Decimal(bill["total"]) == total
    assert main(["tariff", "bill", "--urdb", SAMPLE, "--label", GS2, "--load",
                 load_csv(values), "--year", "2026"]) == 0
    assert f"annual total {bill['total']} USD" in capsys.readouterr().out


def test_bill_a_cn_tariff_on_the_same_profile(capsys, load_csv):
    assert main(["tariff", "bill", "--cn", "cn-bj-commercial-tou", "--load",
                 load_csv(["1.5"] * 8760), "--year", "2026", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["currency"] == "CNY"
    assert main(["tariff", "bill", "--cn", "cn-bj-industrial-two-part", "--capacity-kva",
                 "800", "--tou-hours", ",".join(["valley"] * 8 + ["peak"] * 12 + ["flat"] * 4),
                 "--load", load_csv(["100"] * 8760), "--year", "2026", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["months"][0]["demand"] == "24000.00"


@pytest.mark.parametrize(("values", "year", "words"), [
    (["1"] * 8759, 2026, "8759 hourly values, expected 8760 for 2026"),
    (["1"] * 8760, 2028, "expected 8784 for 2028 (a leap year)"),
    (["1"] * 100 + ["-0.5"] + ["1"] * 8659, 2026, "hour 100: load -0.5 kWh is negative"),
    (["1"] * 7 + ["nan"] + ["1"] * 8752, 2026, "hour 7: load 'nan' is not a finite number"),
    (["1"] * 7 + ["1,2"] + ["1"] * 8752, 2026, "hour 7: '1,2': expected one kWh value"),
])
def test_bad_load_is_one_line_naming_the_file_and_rule(capsys, load_csv, values, year, words):
    path = load_csv(values)
    assert main(["tariff", "bill", "--urdb", SAMPLE, "--label", GS2, "--load", path,
                 "--year", str(year)]) == 2
    err = _error(capsys)
    assert path in err and words in err


def test_several_rates_need_a_label(capsys, load_csv):
    assert main(["tariff", "bill", "--urdb", SAMPLE, "--load", load_csv(np.ones(8760)),
                 "--year", "2026"]) == 2
    assert "holds 5 rates; choose one with --label" in _error(capsys)
