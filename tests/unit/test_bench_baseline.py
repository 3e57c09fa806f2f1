"""The benchmark's DuckDB baseline (bench/_duckdb_bills.py) computes the kernel's bills.

A small generated city is billed month after month by the kernel (``bill_one_section``, the
runner's unit of work, writing its bills so that later months read them as history); the
single DuckDB query over the same Parquet must give the same bills, line by line and to the
fen, and the same audit exceptions. The city is widened beyond the generator's tariff mix so
that every component is priced: some industrial accounts bill by demand with a capacity
floor, some residential ones carry a tariff with two tiers, a fixed and a minimum charge.
"""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench._duckdb_bills import bills_sql, exceptions_sql, parquet_sources
from datasets.datacentre import DataCentre
from datasets.generator import generate_city, generate_section, section_ids, section_sizes
from datasets.schemas import CHARGE_LINES
from gridfare.billing.runner import bill_one_section
from gridfare.tariffs import load_tariff_book
from gridfare.tariffs.loader import default_directory

ACCOUNTS, SECTIONS, SEED = 5_000, 8, 5
# July and August have critical-peak prices; October does not and reads both as history.
PERIODS = ("2026-07", "2026-08", "2026-10")

EXTRA_TARIFF = """
code = "test-two-tier-minimum"
name = "Two tiers, a fixed and a minimum charge (test)"
customer_kind = "residential"

[[components]]
kind = "tiered"
basis = "monthly"
edges_kwh = ["150"]
prices = ["0.4883", "0.5883"]

[[components]]
kind = "fixed"
amount = "3.50"

[[components]]
kind = "minimum"
amount = "85"
"""


@pytest.fixture(scope="module")
def billed(tmp_path_factory):
    """The city, its tariff book, and the kernel's bills and exceptions for each period."""
    base = tmp_path_factory.mktemp("baseline")
    tariffs = base / "tariffs"
    tariffs.mkdir()
    for entry in default_directory().iterdir():
        if entry.name.endswith(".toml"):
            (tariffs / entry.name).write_bytes(entry.read_bytes())
    (tariffs / "test-two-tier-minimum.toml").write_text(EXTRA_TARIFF)
    book = load_tariff_book(tariffs)

    centre = DataCentre(str(base / "dc"), create=True)
    generate_city(centre, accounts=ACCOUNTS, sections=SECTIONS, period=PERIODS[0], seed=SEED)
    first = 1
    for index, (section, size) in enumerate(
        zip(section_ids(SECTIONS), section_sizes(ACCOUNTS, SECTIONS, SEED).tolist(),
            strict=True)
    ):
        accounts = centre.read_accounts(section)
        codes = np.array(accounts["tariff_code"].to_pylist(), dtype=object)
        every_other = np.arange(len(codes)) % 2 == 0
        codes[(codes == "cn-bj-industrial-two-part") & every_other] = "cn-bj-industrial-demand"
        codes[(codes == "cn-bj-residential-monthly") & (np.arange(len(codes)) % 5 == 0)] = (
            "test-two-tier-minimum")
        accounts = accounts.set_column(accounts.schema.get_field_index("tariff_code"),
                                       "tariff_code", pa.array(codes, pa.string()))
        centre.write_accounts(section, accounts)
        for period in PERIODS[1:]:
            later = generate_section(index, section, size, first, period, SEED)
            centre.write_readings(period, section, later.readings)
        first += size

    kernel = {}
    for period in PERIODS:
        for section in centre.sections(period):
            outcome = bill_one_section(centre, book, period, section, run_id="test")
            assert outcome.status == "done", outcome.error
        kernel[period] = (
            pa.concat_tables(centre.read_bills(period, s) for s in centre.sections(period)),
            pa.concat_tables(centre.read_exceptions(period, s)
                             for s in centre.sections(period)),
        )
    yield centre, book, kernel
    shutil.rmtree(base, ignore_errors=True)


def _arrow(relation) -> pa.Table:
    result = relation.arrow()
    return result.read_all() if hasattr(result, "read_all") else result


@pytest.mark.parametrize("period", PERIODS)
def test_the_single_query_bills_like_the_kernel(billed, period):
    centre, book, kernel = billed
    ours, _ = kernel[period]
    sql = bills_sql(book, period, parquet_sources(centre, period))
    theirs = _arrow(duckdb.connect().sql(sql))

    key = ["section_id", "account_id"]
    ours = ours.drop(["run_id"]).sort_by([(k, "ascending") for k in key])
    theirs = theirs.sort_by([(k, "ascending") for k in key])
    assert theirs.column_names == ours.column_names
    assert ours.num_rows > 0.9 * ACCOUNTS
    billed_by = {name: list(zip(*(t[k].to_pylist() for k in key), strict=True))
                 for name, t in (("kernel", ours), ("baseline", theirs))}
    assert billed_by["baseline"] == billed_by["kernel"], "different accounts billed"
    for column in ours.column_names:
        ours_col, theirs_col = ours[column].to_pylist(), theirs[column].to_pylist()
        differ = [(ours["account_id"][i].as_py(), a, b)
                  for i, (a, b) in enumerate(zip(ours_col, theirs_col, strict=True)) if a != b]
        assert not differ, f"{column}: {len(differ)} bills differ, e.g. {differ[:3]}"


@pytest.mark.parametrize("period", PERIODS)
def test_the_baseline_finds_the_same_audit_exceptions(billed, period):
    centre, book, kernel = billed
    _, exceptions = kernel[period]
    theirs = _arrow(duckdb.connect().sql(
        exceptions_sql(book, period, parquet_sources(centre, period))))

    def rows(table: pa.Table) -> set[tuple]:
        return set(zip(*(table[c].to_pylist() for c in ("section_id", "account_id", "rule")),
                       strict=True))

    assert exceptions.num_rows > 0
    assert rows(theirs) == rows(exceptions)


def test_the_city_exercises_every_charge_line_and_history(billed):
    """Guards the comparison above: every line is non-zero somewhere, adjustments go both
    ways, the demand floor binds, and annual tiers read earlier months' bills."""
    centre, _, kernel = billed
    bills = pa.concat_tables(kernel[p][0] for p in PERIODS)
    for line in CHARGE_LINES:
        assert pc.max(bills[line]).as_py() > 0, line
    assert pc.min(bills["pf_adjust_fen"]).as_py() < 0
    tariffs = set(bills["tariff_code"].to_pylist())
    assert {"cn-bj-industrial-demand", "test-two-tier-minimum"} <= tariffs
    history = centre.read_history(centre.sections(PERIODS[-1])[0], PERIODS[-1])
    assert set(PERIODS[:2]) <= set(history["period"].to_pylist())
