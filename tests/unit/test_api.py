"""The analyst API over a small generated and billed data centre."""

from __future__ import annotations

import threading

import pytest

import gridfare
from datasets.datacentre import DataCentre
from datasets.generator import generate_city

PERIOD = "2026-10"


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("api"))
    generate_city(DataCentre(root, create=True), accounts=2_000, sections=8, period=PERIOD,
                  seed=9)
    client = gridfare.connect(root)
    client.run_billing(PERIOD)
    return client


def test_bills_and_exceptions_are_relations(dc):
    bills = dc.bills(PERIOD)
    assert bills.aggregate("count(*)").fetchall()[0][0] > 1_500
    one = dc.bills(PERIOD, sections=["S00001"]).to_arrow_table()
    assert set(one["section_id"].to_pylist()) == {"S00001"}
    assert len(dc.bills(PERIOD).df()) == bills.aggregate("count(*)").fetchall()[0][0]
    exceptions = dc.exceptions(PERIOD)
    assert exceptions.aggregate("count(*)").fetchall()[0][0] == dc.runs()[-1].exceptions > 0
    assert exceptions.columns == ["account_id", "period", "section_id", "rule", "detail",
                                  "run_id"]
    some = dc.exceptions(PERIOD, sections=["S00002"]).to_arrow_table()
    assert set(some["section_id"].to_pylist()) == {"S00002"}


def test_summary_totals_match_the_runs(dc):
    summary = dc.summary(PERIOD)
    run = dc.runs()[-1]
    assert sum(row[3] for row in summary.by_tariff) == run.total_fen
    assert sum(row[1] for row in summary.by_section) == run.billed
    assert summary.distribution["p50"] <= summary.distribution["p90"]
    assert "by tariff" in summary.render()


def test_reads_work_while_a_run_is_writing(dc):
    errors = []
    done = threading.Event()

    def read_until_done():
        while not done.is_set():
            try:
                dc.bills(PERIOD).aggregate("sum(total_fen)").fetchall()
                dc.exceptions(PERIOD).aggregate("count(*)").fetchall()
                dc.runs()
            except Exception as exc:  # any failure is what the test looks for
                errors.append(exc)
                return

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        dc.run_billing(PERIOD)
    finally:
        done.set()
        reader.join()
    assert errors == []


def test_bad_period_is_refused(dc):
    with pytest.raises(gridfare.InvalidInput, match="YYYY-MM"):
        dc.bills("October")
