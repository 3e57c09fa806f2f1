"""Property-based fuzzing of the importer, ``generate`` over a city and ``tariff quote``.

Each example asserts: a clean import (every reject names a line and a rule of ``RULES``),
or one ``GridfareError`` line and the data centre unchanged byte for byte; never another
exception. Example counts are bounded (the whole file runs in well under a minute).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.datacentre import DataCentre
from datasets.generator import generate_city
from datasets.importer import RULES, import_readings
from gridfare.cli import main
from gridfare.errors import DataCentreNotEmpty, GridfareError
from gridfare.tariffs import load_tariff_book
from tests.unit.datasets.test_importer import HEADER, PERIOD, make_dc
from tests.unit.datasets.test_importer_edges import snapshot

FIELDS = HEADER.split(",")
BOUNDS = load_tariff_book().bounds

cell = st.one_of(
    st.sampled_from(["", "0", "1", "-1", "+15", "-0", "1.5", "1e300", "nan", "inf", "1e17",
                     "67471631579040.24", "2734", "2026-10", "2026-10-28", "2026-02-30",
                     "9" * 19, " 7 ", '"5"', '"a,b"', "\ufeff1", "０", "1_0", "0x10"]),
    st.integers(-2**63, 2**63).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)
good_row = st.builds(
    lambda a, m, prev, adv, mult: f"{a},{m},{PERIOD},2026-10-28,{prev},{prev + adv},{mult},,,,,,",
    st.integers(1, 9), st.integers(-1, 99), st.integers(0, 10**6), st.integers(0, 10**5),
    st.integers(-1, 5000))
row = st.one_of(good_row, st.lists(cell, min_size=10, max_size=15).map(",".join))
noise = st.binary(max_size=40)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    make_dc(root)  # the importer tests' accounts 1..8 and two readings
    return root / "dc"


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(st.one_of(row.map(str.encode), noise), max_size=12),
       bom=st.booleans(), crlf=st.booleans(), period=st.sampled_from([None, PERIOD]))
def test_any_csv_imports_cleanly_or_is_refused_in_one_line(template, tmp_path_factory, rows,
                                                           bom, crlf, period):
    work = tmp_path_factory.mktemp("case")
    shutil.copytree(template, work / "dc")
    centre = DataCentre(work / "dc")
    end = b"\r\n" if crlf else b"\n"
    source = work / "in.csv"
    data = (b"\xef\xbb\xbf" if bom else b"") + end.join([HEADER.encode(), *rows])
    source.write_bytes(data)
    before = snapshot(work / "dc")
    try:
        summary = import_readings(centre, source, period=period, bounds=BOUNDS)
    except GridfareError as exc:
        assert "\n" not in str(exc)
        assert snapshot(work / "dc") == before
        return
    rejects = pacsv.read_csv(summary.rejects_path,
                             convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    assert set(rejects["rule"].to_pylist()) <= set(RULES)
    lines = rejects["line"].to_pylist()
    assert all(2 <= line <= data.count(b"\n") + 1 for line in lines)
    assert len(set(lines)) == len(lines)
    assert summary.loaded + summary.rejected == summary.rows
    for section in centre.sections(PERIOD):  # what was merged holds the rules
        stored = centre.read_readings(PERIOD, section)
        assert min(stored["meter_point_id"].to_pylist()) >= 1
        assert min(stored["multiplier"].to_pylist()) >= 1


BASE_ROW = ["1", "11", PERIOD, "2026-10-28", "1", "2", "1", "", "", "", "", "", ""]
parquet_column = st.one_of(
    st.lists(st.integers(-2**63, 2**63 - 1), min_size=3, max_size=3).map(
        lambda v: pa.array(v, pa.int64())),
    st.lists(st.integers(0, 2**64 - 1), min_size=3, max_size=3).map(
        lambda v: pa.array(v, pa.uint64())),
    st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.just(-0.0), min_size=3,
             max_size=3).map(lambda v: pa.array(v, pa.float64())),
    st.lists(st.text(max_size=6) | st.none(), min_size=3, max_size=3).map(
        lambda v: pa.array(v, pa.string())),
    st.lists(st.binary(max_size=6), min_size=3, max_size=3).map(
        lambda v: pa.array(v, pa.binary())),
    st.just(pa.array([None, None, None], pa.null())),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(columns=st.dictionaries(st.sampled_from(FIELDS), parquet_column, max_size=len(FIELDS)),
       base=st.sampled_from([BASE_ROW, None]))
def test_any_parquet_imports_cleanly_or_is_refused_in_one_line(template, tmp_path_factory,
                                                               columns, base):
    work = tmp_path_factory.mktemp("case")
    shutil.copytree(template, work / "dc")
    centre = DataCentre(work / "dc")
    table = {name: pa.array([value or None] * 3, pa.string())
             for name, value in zip(FIELDS, base or [], strict=False)}
    table.update(columns)
    source = work / "in.parquet"
    pq.write_table(pa.table(table) if table else pa.table({"x": [1]}), source)
    before = snapshot(work / "dc")
    try:
        summary = import_readings(centre, source, period=PERIOD, bounds=BOUNDS)
    except GridfareError as exc:
        assert "\n" not in str(exc)
        assert snapshot(work / "dc") == before
        return
    assert summary.loaded + summary.rejected == summary.rows == 3


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.sampled_from(["cn-bj-residential-monthly", "cn-bj-industrial-demand",
                             "cn-bj-commercial-tou", "../../etc/passwd", "CN", ""]),
       flags=st.dictionaries(
           st.sampled_from(["--kwh", "--peak-kwh", "--flat-kwh", "--valley-kwh",
                            "--critical-kwh", "--max-demand-kw", "--capacity-kva",
                            "--power-factor", "--pf-standard", "--ytd-kwh", "--month"]),
           cell, max_size=6))
def test_any_quote_arguments_give_a_quote_or_one_line(code, flags):
    argv = ["tariff", "quote", code, f"--kwh={flags.pop('--kwh', '100')}"]
    for flag, value in flags.items():
        argv.append(f"{flag}={value}")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse: its own usage line and exit 2
            status = exc.code
    if status == 0:
        assert "total" in out.getvalue() and "-" not in out.getvalue().split("total")[1]
    else:
        assert status == 2 and "Traceback" not in err.getvalue()
        last = err.getvalue().rstrip("\n").splitlines()[-1]
        assert last.startswith(("gridfare: error: ", "gridfare tariff quote: error: "))
        if last.startswith("gridfare: error: "):  # ours: exactly one line
            assert err.getvalue().count("\n") == 1


def test_generate_over_a_city_is_refused_and_replace_swaps_whole(tmp_path):
    root = tmp_path / "city"
    generate_city(DataCentre(root, create=True), accounts=300, sections=3, period=PERIOD,
                  seed=1)
    first = snapshot(root)
    with pytest.raises(DataCentreNotEmpty, match="--replace"):
        generate_city(DataCentre(root), accounts=200, sections=2, period=PERIOD, seed=2)
    assert snapshot(root) == first

    def fail(done, total):
        if done == 2:
            raise GridfareError("the disk went away")

    with pytest.raises(GridfareError, match="went away"):
        generate_city(DataCentre(root), accounts=200, sections=2, period="2026-11", seed=2,
                      replace=True, progress=fail)
    assert snapshot(root) == first  # a failed replace leaves the old city whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city"]
    generate_city(DataCentre(root), accounts=200, sections=2, period="2026-11", seed=2,
                  replace=True)
    assert DataCentre(root).periods() == ["2026-11"]
    assert len(DataCentre(root).all_sections()) == 2
    (root / "notes.txt").write_text("mine")
    with pytest.raises(DataCentreNotEmpty, match="not part of a data centre"):
        generate_city(DataCentre(root), accounts=200, sections=2, period=PERIOD, seed=2,
                      replace=True)
