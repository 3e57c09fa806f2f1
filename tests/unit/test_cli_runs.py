"""`gridfare bill` and its readers, in process: a run's options reach the run, refusals
are one line with the table's exit code and write nothing, missing files are visible."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from datasets.catalog import Catalog
from datasets.datacentre import DataCentre
from datasets.generator import generate_city
from gridfare.cli import main
from gridfare.errors import (
    ClusterUnavailable,
    GridfareError,
    InvalidInput,
    NothingToBill,
    TariffError,
)
from gridfare.exit_codes import EXIT_CODES

PERIOD = "2026-10"
SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples" / "tariffs"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cli-city")
    generate_city(DataCentre(str(root), create=True), accounts=1_500, sections=6,
                  period=PERIOD, seed=3)
    return str(root)


@pytest.fixture
def city(template, tmp_path) -> str:
    return str(shutil.copytree(template, tmp_path / "dc"))


@pytest.fixture
def dearer(tmp_path) -> str:
    """The sample book with residential monthly tier 1 at 0.9883 instead of 0.4883."""
    book = shutil.copytree(SAMPLES, tmp_path / "dearer")
    path = book / "cn-bj-residential-monthly.toml"
    path.write_text(path.read_text().replace('"0.4883"', '"0.9883"'))
    return str(book)


def run_id_of(out: str) -> str:
    return out.split()[1].rstrip(":")


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gridfare: error: "), err
    assert "Traceback" not in err
    return err


def runs(city: str) -> list:
    path = Path(city, "catalog.duckdb")
    return Catalog(path).runs() if path.exists() else []


def total(city: str, run_id: str) -> int:
    return Catalog(DataCentre(city).catalog_path).run(run_id).total_fen


def test_tariffs_reach_every_run_and_a_broken_book_sticks_to_none(city, dearer, tmp_path,
                                                                 capsys):
    assert main(["bill", "--datacentre", city, "--period", PERIOD]) == 0
    plain = run_id_of(capsys.readouterr().out)
    assert main(["bill", "--datacentre", city, "--period", PERIOD, "--tariffs", dearer]) == 0
    dear = run_id_of(capsys.readouterr().out)
    assert total(city, dear) > total(city, plain)
    broken = shutil.copytree(dearer, tmp_path / "broken")
    (broken / "cn-bj-residential-monthly.toml").write_text("code = 'cn-bj-other'\n")
    before = runs(city)
    code = main(["bill", "--datacentre", city, "--period", PERIOD, "--tariffs", str(broken)])
    assert code == EXIT_CODES[GridfareError]
    assert "cn-bj-residential-monthly.toml" in one_line_error(capsys, code)
    assert runs(city) == before  # refused before the run was recorded
    assert main(["bill", "--datacentre", city, "--period", PERIOD]) == 0
    again = run_id_of(capsys.readouterr().out)
    assert total(city, again) == total(city, plain)


def test_a_resume_keeps_its_period_and_its_book(city, dearer, capsys):
    centre = DataCentre(city)
    readings = Path(centre.path("readings", period=PERIOD, section="S00002"))
    good = readings.read_bytes()
    readings.write_bytes(b"not parquet")
    assert main(["bill", "--datacentre", city, "--period", PERIOD, "--tariffs", dearer]) == 1
    run = run_id_of(capsys.readouterr().out)
    readings.write_bytes(good)
    # Another period: refused, and nothing is filed under it.
    code = main(["bill", "--datacentre", city, "--resume", run, "--period", "2026-11"])
    assert code == 2 and "a resume keeps its run's period" in one_line_error(capsys, code)
    assert not Path(city, "bills", "period=2026-11").exists()
    # Another book: refused.
    code = main(["bill", "--datacentre", city, "--resume", run, "--tariffs", str(SAMPLES)])
    assert code == 2 and "prices with its run's book" in one_line_error(capsys, code)
    # No --period, no --tariffs: the run's own, so S00002 is priced as its run-mates were.
    assert main(["bill", "--datacentre", city, "--resume", run]) == 0
    capsys.readouterr()
    assert Catalog(centre.catalog_path).run(run).status == "done"
    assert main(["bill", "--datacentre", city, "--period", PERIOD, "--sections", "S00002",
                 "--tariffs", dearer]) == 0
    fresh = centre.read_bills(PERIOD, "S00002").drop(["run_id"])
    assert main(["bill", "--datacentre", city, "--resume", run]) == 0
    assert fresh.equals(centre.read_bills(PERIOD, "S00002").drop(["run_id"]))


def test_a_period_without_readings_is_refused_not_a_done_run(city, capsys):
    code = main(["bill", "--datacentre", city, "--period", "2026-11"])
    assert code == EXIT_CODES[GridfareError]
    assert "2026-11: the data centre has no readings" in one_line_error(capsys, code)
    assert runs(city) == []
    assert issubclass(NothingToBill, InvalidInput)


@pytest.mark.parametrize("argv, words", [
    (["--sections", "S9*"], "'S9*'"),
    (["--sections", "../S00001"], "section '../S00001'"),
    (["--resume", "../../etc"], "run '../../etc'"),
    (["--resume", "2026-10-20261101T080000-0a0b0c"], "is not in the catalog"),
    (["--period", "2026-13"], "2026-13"),
    (["--tariffs", "/nonexistent"], "/nonexistent"),
])
def test_refusals_name_what_was_refused_and_write_nothing(city, capsys, argv, words):
    files = sorted(p for p in Path(city).rglob("*") if p.name != "catalog.duckdb")
    period = [] if "--period" in argv or "--resume" in argv else ["--period", PERIOD]
    code = main(["bill", "--datacentre", city, *period, *argv])
    assert code in EXIT_CODES.values() and code != 0
    assert words in one_line_error(capsys, code)
    assert sorted(p for p in Path(city).rglob("*") if p.name != "catalog.duckdb") == files
    assert runs(city) == []


def test_a_section_whose_readings_file_is_gone_gets_missing_readings(city, capsys):
    centre = DataCentre(city)
    Path(centre.path("readings", period=PERIOD, section="S00003")).unlink()
    active = pc.sum(centre.read_accounts("S00003")["active"]).as_py()
    assert main(["bill", "--datacentre", city, "--period", PERIOD]) == 0
    run = run_id_of(capsys.readouterr().out)
    catalog = Catalog(centre.catalog_path)
    assert catalog.run(run).sections_total == 6
    missing = catalog.exceptions(PERIOD, ["S00003"])
    assert missing.num_rows == active > 100
    assert set(missing["rule"].to_pylist()) == {"missing_reading"}
    assert centre.read_bills(PERIOD, "S00003").num_rows == 0


@pytest.mark.parametrize("command", [
    ["gridfare", "bill", "--datacentre", "{city}", "--period", PERIOD, "--cluster",
     "127.0.0.1:1"],
    ["gridfare", "bill", "--datacentre", "{city}", "--period", PERIOD, "--cluster", "x:y"],
    ["rayjobs.billing", "--datacentre", "{city}", "--period", PERIOD, "--address",
     "127.0.0.1:1"],
])
def test_an_unreachable_cluster_fails_in_seconds_in_one_line(city, command):
    # A fresh process: this one may be in the test session's cluster, which attach keeps.
    module = "gridfare.cli" if command[0] == "gridfare" else "rayjobs.billing"
    argv = [part.format(city=city) for part in command[1:]]
    done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode in (EXIT_CODES[ClusterUnavailable], EXIT_CODES[GridfareError])
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "127.0.0.1:1" in done.stderr or "x:y" in done.stderr
    assert runs(city) == []


def test_usage_errors_are_one_line(capsys):
    for argv in (["bill"], ["bill", "--datacentre"], ["nope"], ["bill", "--datacentre", "x",
                                                                  "--sections"]):
        code = main(argv)
        assert code == 2
        one_line_error(capsys, code)


def test_a_closed_pipe_is_no_traceback(city, capsys):
    assert main(["bill", "--datacentre", city, "--period", PERIOD]) == 0
    capsys.readouterr()
    for command in (["summary", "--datacentre", city, "--period", PERIOD],
                    ["runs", "--datacentre", city], ["tariff", "list"]):
        proc = subprocess.Popen([sys.executable, "-m", "gridfare.cli", *command],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # the reader is gone before the first line is written
        err = proc.stderr.read().decode()
        assert proc.wait(60) == 141 and err == "", err


def test_errors_are_mapped_by_class():
    from gridfare.errors import ClusterUnavailable, DataCentreError, DataCentreFull, ForeignData
    from gridfare.exit_codes import exit_code

    assert exit_code(TariffError("x")) == 2
    assert exit_code(ForeignData("x")) == exit_code(DataCentreError("x")) == 3
    assert exit_code(DataCentreFull("x")) == 4
    assert exit_code(ClusterUnavailable("x")) == 5


def test_the_api_refuses_an_unreachable_cluster_in_seconds(city):
    code = ("import gridfare\n"
            f"dc = gridfare.connect({city!r})\n"
            "try:\n"
            "    dc.run_billing('2026-10', cluster='127.0.0.1:1')\n"
            "except gridfare.ClusterUnavailable as exc:\n"
            "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # bounds the wait: Ray's own retries took minutes
    assert "no Ray cluster answers at 127.0.0.1:1" in done.stdout
    assert runs(city) == []


@pytest.mark.parametrize("sections", ["S00001", ["../S00001"], ["S00001' OR '1'='1"]])
def test_the_api_checks_section_ids_at_the_edge(city, sections):
    import gridfare

    dc = gridfare.connect(city)
    for read in (dc.bills, dc.exceptions):
        with pytest.raises(InvalidInput, match="section"):
            read(PERIOD, sections=sections)
