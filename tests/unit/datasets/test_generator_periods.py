"""A generated city month after month: spans, continuation, determinism and refusals."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datasets.datacentre import MANIFEST, DataCentre
from datasets.generator import (
    MAX_ACCOUNTS,
    continue_city,
    generate_city,
    parse_span,
    span_periods,
)
from datasets.schemas import ACCOUNTS, GENERATOR_STATE
from gridfare.cli import main
from gridfare.errors import DataCentreNotEmpty, InvalidInput, NotADataCentre

FIRST, LAST = "2026-11", "2027-03"  # crosses a year
CITY = {"accounts": 6_000, "sections": 8, "seed": 4}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


@pytest.fixture(scope="module")
def span(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("span") / "dc"
    generate_city(DataCentre(str(root), create=True), period=FIRST, through=LAST, **CITY)
    return root


def _all(root: Path, dataset: str, period: str | None = None) -> pa.Table:
    centre = DataCentre(str(root))
    return centre.dataset(dataset, period).to_table()


def test_a_span_is_the_first_period_continued_month_by_month(span, tmp_path):
    stepwise = tmp_path / "stepwise"
    generate_city(DataCentre(str(stepwise), create=True), period=FIRST, **CITY)
    alone = _files(stepwise)
    continue_city(DataCentre(str(stepwise)))  # one period: the next
    continue_city(DataCentre(str(stepwise)), through=LAST)  # the rest in one go
    assert _files(stepwise) == _files(span)
    # The first period of a span is that period generated alone (accounts and state are
    # the city after its last period).
    first = {name: data for name, data in alone.items()
             if not name.startswith(("accounts/", "generator_state/"))}
    assert first == {name: data for name, data in _files(span).items() if name in first}
    again = tmp_path / "again"
    generate_city(DataCentre(str(again), create=True), period=FIRST, through=LAST, **CITY)
    assert _files(again) == _files(span)


def test_registers_go_on_from_the_last_reading(span):
    periods = span_periods(FIRST, LAST)
    for before, after in itertools.pairwise(periods):
        old = _all(span, "readings", before).to_pandas()
        new = _all(span, "readings", after).to_pandas()
        clean = old[(old.cur_register >= old.prev_register) & (old.prev_register >= 0)]
        joined = clean.merge(new, on=["account_id", "meter_point_id"], suffixes=("", "_next"))
        # (a row next month may be spoiled in its turn: a rollback swaps its registers)
        joined = joined[(joined.cur_register_next >= joined.prev_register_next)
                        & (joined.prev_register_next >= 0)]
        assert len(joined) > 0.95 * len(new)
        np.testing.assert_array_equal(joined.prev_register_next, joined.cur_register)
        # A replaced meter: two rows, and next month only the new one, from its reading.
        twice = old.groupby("account_id").meter_point_id.max()[
            old.groupby("account_id").size() == 2]
        assert len(twice) > 0
        later = new.set_index("account_id").meter_point_id
        assert all(later[a] == m for a, m in twice.items() if a in later.index)


def test_accounts_open_and_close(span):
    accounts = _all(span, "accounts").to_pandas()
    assert _all(span, "accounts").schema == ACCOUNTS
    assert accounts.account_id.is_unique
    new = accounts[accounts.account_id > MAX_ACCOUNTS]
    assert 10 <= len(new) <= 100  # 0.12 % of 6,000 a month, 4 months
    last = _all(span, "readings", LAST).to_pandas()
    read_last = set(last.account_id)
    for row in new.itertuples():
        opened = f"{row.opened_on.year:04d}-{row.opened_on.month:02d}"
        assert FIRST < opened <= LAST
        first = _all(span, "readings", opened).to_pandas()
        assert row.account_id in set(first.account_id) or not row.active
        assert float(first[first.account_id == row.account_id].prev_register.min()) == 0.0
    state = _all(span, "generator_state")
    assert state.schema == GENERATOR_STATE
    first_active = set(pc.filter(state["account_id"], state["active"]).to_pylist())
    closed = set(accounts[~accounts.active].account_id)
    assert len(closed & set(range(1, CITY["accounts"] + 1))) > 60  # ~1 % + 0.1 %/month
    assert not closed & read_last
    assert set(state["period"].to_pylist()) == {LAST} and first_active


def test_refusals_name_the_rule_and_write_nothing(span, tmp_path):
    with pytest.raises(InvalidInput, match="ends before it starts"):
        parse_span("2027-01..2026-01")
    with pytest.raises(InvalidInput, match="ends before it starts"):
        generate_city(DataCentre(str(tmp_path / "x"), create=True), period=LAST,
                      through=FIRST, **CITY)
    with pytest.raises(NotADataCentre, match="no data centre"):
        continue_city(DataCentre(str(tmp_path / "nowhere")))
    with pytest.raises(InvalidInput, match="no generated city"):
        continue_city(DataCentre(str(tmp_path / "empty"), create=True))
    copy = tmp_path / "copy"
    shutil.copytree(span, copy)
    before = _files(copy)
    with pytest.raises(DataCentreNotEmpty, match=f"already holds readings for {LAST}"):
        continue_city(DataCentre(str(copy)), period=LAST)
    with pytest.raises(InvalidInput, match="continues into 2027-04, not 2027-06"):
        continue_city(DataCentre(str(copy)), period="2027-06")
    with pytest.raises(InvalidInput, match="ends before it starts"):
        continue_city(DataCentre(str(copy)), through="2027-01")
    shutil.rmtree(copy / "generator_state" / "section=S00003")
    with pytest.raises(InvalidInput, match=r"S00003 .* has no generator state"):
        continue_city(DataCentre(str(copy)))
    del before["generator_state/section=S00003/part-0.parquet"]
    assert _files(copy) == before


def test_an_interrupted_continuation_is_finished_by_running_it_again(span, tmp_path):
    done, broken = tmp_path / "done", tmp_path / "broken"
    shutil.copytree(span, done)
    shutil.copytree(span, broken)
    continue_city(DataCentre(str(done)), through="2027-05")
    continue_city(DataCentre(str(broken)), through="2027-05")
    # As if stopped: one section before any write, one after its readings but before its
    # state, one after its first month only.
    for name in ("readings/period=2027-04/section=S00002", "readings/period=2027-05/section=S00002",
                 "readings/period=2027-05/section=S00006"):
        shutil.rmtree(broken / name)
    for section in ("S00002", "S00005"):
        shutil.copy(span / f"generator_state/section={section}/part-0.parquet",
                    broken / f"generator_state/section={section}/part-0.parquet")
        shutil.copy(span / f"accounts/section={section}/part-0.parquet",
                    broken / f"accounts/section={section}/part-0.parquet")
    shutil.copy(span / "generator_state/section=S00006/part-0.parquet",
                broken / "generator_state/section=S00006/part-0.parquet")
    assert _files(broken) != _files(done)
    continue_city(DataCentre(str(broken)), through="2027-05")
    assert _files(broken) == _files(done)


def test_the_command_generates_a_span_and_continues_it(tmp_path, capsys):
    out = str(tmp_path / "dc")
    assert main(["generate", "--accounts", "900", "--sections", "3", "--periods",
                 "2026-12..2027-01", "--seed", "2", "--out", out]) == 0
    assert "for 2026-12..2027-01" in capsys.readouterr().out
    assert main(["generate", "--continue", "--out", out]) == 0
    assert "for 2027-02" in capsys.readouterr().out
    assert DataCentre(out).periods() == ["2026-12", "2027-01", "2027-02"]
    for args, code, words in (
        (["--continue", "--period", "2027-01"], 3, "already holds readings for 2027-01"),
        (["--continue", "--seed", "2"], 2, "--seed: taken from the city"),
        (["--periods", "2027-02..2026-01"], 2, "ends before it starts"),
    ):
        assert main(["generate", "--out", out, *args]) == code
        err = capsys.readouterr().err
        assert words in err and "\n" not in err.strip()
    assert main(["generate", "--continue", "--out", str(tmp_path / "none")]) == 3
    assert "holds no data centre" in capsys.readouterr().err
