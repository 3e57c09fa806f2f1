"""``gridfare generate``, ``import readings`` and ``tariff quote`` at their edges: one line,
exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv

from gridfare.cli import main
from tests.unit.datasets.test_importer import HEADER, make_dc
from tests.unit.datasets.test_importer_edges import snapshot


def one_line(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("gridfare: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


def test_quote_of_1e17_kwh_is_one_line_never_a_negative_energy(capsys):
    assert main(["tariff", "quote", "cn-bj-residential-monthly", "--kwh", "1e17"]) == 2
    one_line(capsys, "kwh", "int64")
    assert main(["tariff", "quote", "../../etc/passwd", "--kwh", "1"]) == 2
    one_line(capsys, "lowercase words")


def test_import_refuses_rejects_equal_to_the_source_and_bounds_by_the_book(tmp_path, capsys):
    centre = make_dc(tmp_path)
    source = tmp_path / "r.csv"
    source.write_text(f"{HEADER}\n2,21,2026-10,2026-10-28,0,67471631579040.24,2734,,,,,,\n")
    before, text = snapshot(Path(centre.root)), source.read_bytes()
    argv = ["import", "readings", str(source), "--datacentre", centre.uri]
    assert main([*argv, "--rejects", str(source)]) == 2
    one_line(capsys, "source")
    assert source.read_bytes() == text and snapshot(Path(centre.root)) == before
    assert main(argv) == 0
    rejects = pacsv.read_csv(f"{source}.rejects.csv")
    assert rejects["rule"].to_pylist() == ["out_of_range"]
    assert "multiplier 2734" in rejects["detail"][0].as_py()


def test_generate_over_a_city_needs_replace(tmp_path, capsys):
    out = str(tmp_path / "dc")
    argv = ["generate", "--accounts", "300", "--sections", "3", "--period", "2026-10",
            "--out", out]
    assert main(argv) == 0
    capsys.readouterr()
    first = snapshot(Path(out))
    assert main([*argv[:-2], "--seed", "9", "--out", out]) == 3  # DataCentreNotEmpty
    one_line(capsys, "--replace")
    assert snapshot(Path(out)) == first
    assert main([*argv, "--seed", "9", "--replace"]) == 0
    assert snapshot(Path(out)) != first
    assert main(["generate", "--accounts", "1" + "0" * 20, "--sections", "1", "--period",
                 "2026-10", "--out", str(tmp_path / "never")]) == 2
    one_line(capsys, "accounts")
    assert not (tmp_path / "never").exists()
