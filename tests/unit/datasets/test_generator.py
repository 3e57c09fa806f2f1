"""The seeded synthetic city: determinism, sizes, mix, clean TOU splits, dirty data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datasets.datacentre import MANIFEST, DataCentre, periods_before
from datasets.generator import (
    DIRTY_KINDS,
    UNKNOWN_TARIFF,
    generate_city,
    generate_section,
    section_ids,
    section_sizes,
)
from datasets.schemas import ACCOUNTS, READINGS, USAGE_HISTORY
from gridfare.errors import InvalidInput

PERIOD = "2026-07"


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("city")
    calls: list[tuple[int, int]] = []
    summary = generate_city(
        DataCentre(root, create=True),
        accounts=6_000,
        sections=12,
        period=PERIOD,
        seed=7,
        progress=lambda done, total: calls.append((done, total)),
    )
    return root, summary, calls


def _all(dc: DataCentre, read) -> pa.Table:
    return pa.concat_tables([read(section) for section in dc.all_sections()])


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST  # the manifest: the same for every city
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate_city(
            DataCentre(tmp_path / name, create=True),
            accounts=2_000,
            sections=10,
            period=PERIOD,
            seed=seed,
        )
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert len(a) == 40  # 10 sections x (accounts, readings, history, generator state)
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a)


def test_section_is_independent_of_order() -> None:
    one = generate_section(3, "S00004", 50, 101, PERIOD, seed=9)
    generate_section(0, "S00001", 70, 1, PERIOD, seed=9)
    two = generate_section(3, "S00004", 50, 101, PERIOD, seed=9)
    for x, y in zip(one, two, strict=True):
        assert x.equals(y)
    accounts, readings, history = one  # unpacks as three tables
    assert accounts.schema == ACCOUNTS
    assert readings.schema == READINGS
    assert history.schema == USAGE_HISTORY


def test_sizes_sum_exactly_and_are_skewed() -> None:
    sizes = section_sizes(200_000, 400, seed=3)
    assert sizes.sum() == 200_000
    assert sizes.min() >= 1
    assert sizes.max() > 2 * np.median(sizes)  # skewed, not uniform
    assert section_sizes(5, 5, seed=3).tolist() == [1] * 5
    with pytest.raises(InvalidInput):
        section_sizes(3, 4, seed=3)


def test_section_ids_are_zero_padded() -> None:
    assert section_ids(3) == ["S00001", "S00002", "S00003"]
    assert section_ids(100_000)[-1] == "S100000"
    assert section_ids(100_000)[0] == "S000001"


def test_city_summary_and_accounts(city) -> None:
    root, summary, calls = city
    dc = DataCentre(root)
    assert calls == [(i, 12) for i in range(1, 13)]
    assert summary.accounts == 6_000
    assert len(summary.files) == 36
    assert summary.bytes_written == sum(Path(f).stat().st_size for f in summary.files)
    accounts = _all(dc, dc.read_accounts)
    assert accounts.num_rows == 6_000
    assert accounts["account_id"].to_pylist() == list(range(1, 6_001))  # contiguous
    assert dc.all_sections() == section_ids(12)
    assert dc.sections(PERIOD) == section_ids(12)
    assert summary.active == pc.sum(accounts["active"]).as_py()
    assert "dirty" in summary.describe() and "6,000" in summary.describe()
    assert 0.97 < summary.active / 6_000 < 0.999


def test_mix_is_roughly_right(city) -> None:
    _, summary, _ = city
    share = {code: count / summary.accounts for code, count in summary.by_tariff.items()}
    assert share["cn-bj-residential-monthly"] == pytest.approx(0.55, abs=0.03)
    assert share["cn-bj-residential-annual"] == pytest.approx(0.25, abs=0.03)
    assert share["cn-zj-residential-tou"] == pytest.approx(0.08, abs=0.02)
    assert share["cn-bj-commercial-tou"] == pytest.approx(0.09, abs=0.02)
    assert share["cn-bj-industrial-two-part"] == pytest.approx(0.03, abs=0.01)
    assert 0 < share[UNKNOWN_TARIFF] < 0.005


def test_kinds_capacity_and_power_factor_standard(city) -> None:
    root, _, _ = city
    dc = DataCentre(root)
    accounts = _all(dc, dc.read_accounts).to_pandas()
    residential = accounts[accounts.customer_kind == "residential"]
    commercial = accounts[accounts.customer_kind == "commercial"]
    industrial = accounts[accounts.customer_kind == "industrial"]
    assert residential.capacity_kva.isna().all() and residential.pf_standard.isna().all()
    assert commercial.capacity_kva.between(100, 630).all()
    assert (commercial.pf_standard == 0.85).all()
    assert industrial.capacity_kva.between(315, 5000).all()
    assert industrial.capacity_kva.nunique() > 3
    assert (industrial.pf_standard == 0.90).all()


def _units(column: pa.ChunkedArray) -> np.ndarray:
    return np.rint(pc.fill_null(column, 0.0).to_numpy() * 100).astype(np.int64)


def test_registers_have_two_decimals_that_round_trip(city) -> None:
    root, _, _ = city
    dc = DataCentre(root)
    readings = _all(dc, lambda s: dc.read_readings(PERIOD, s))
    for name in ("prev_register", "cur_register", "peak_kwh", "valley_kwh", "reactive_kvarh"):
        values = pc.drop_null(readings[name]).to_numpy()
        assert (np.rint(values * 100) / 100 == values).all(), name
        assert all(len(repr(float(v)).split(".")[1]) <= 2 for v in values[:2000]), name
    history = _all(dc, dc.read_usage_history)["kwh"].to_numpy()
    assert (np.rint(history * 100) / 100 == history).all()
    dates = readings["reading_date"].to_pylist()
    assert {d.strftime("%Y-%m") for d in dates} == {PERIOD}


def test_tou_splits_sum_exactly_on_clean_rows(city) -> None:
    root, _, _ = city
    dc = DataCentre(root)
    readings = _all(dc, lambda s: dc.read_readings(PERIOD, s))
    accounts = _all(dc, dc.read_accounts)
    tariff = dict(
        zip(accounts["account_id"].to_pylist(), accounts["tariff_code"].to_pylist(), strict=True)
    )
    advance = _units(readings["cur_register"]) - _units(readings["prev_register"])
    split = sum(_units(readings[c]) for c in ("critical_kwh", "peak_kwh", "flat_kwh", "valley_kwh"))
    metered = pc.is_valid(readings["peak_kwh"]).to_numpy(zero_copy_only=False)
    ok = (split == advance) | (split == -advance)  # a rollback swaps prev and cur
    mismatches = int((metered & ~ok).sum())
    assert metered.sum() > 900
    assert 0 < mismatches < 0.01 * metered.sum()  # only the seeded tou_split_mismatch rows
    # Zhejiang residential TOU meters peak and valley only; commercial has critical in July.
    ids = readings["account_id"].to_pylist()
    zj = np.array([tariff[i] == "cn-zj-residential-tou" for i in ids])
    commercial = np.array([tariff[i] == "cn-bj-commercial-tou" for i in ids])
    critical = pc.is_valid(readings["critical_kwh"]).to_numpy(zero_copy_only=False)
    assert not critical[zj].any() and metered[zj].all()
    assert (_units(readings["critical_kwh"])[commercial] > 0).mean() > 0.9


def test_industrial_demand_and_power_factor(city) -> None:
    root, _, _ = city
    dc = DataCentre(root)
    accounts = _all(dc, dc.read_accounts).to_pandas().set_index("account_id")
    readings = _all(dc, lambda s: dc.read_readings(PERIOD, s)).to_pandas()
    readings = readings.join(accounts[["customer_kind"]], on="account_id")
    industrial = readings[readings.customer_kind == "industrial"]
    assert industrial.max_demand_kw.notna().all()
    assert industrial.multiplier.between(40, 600).all()
    energy = industrial.cur_register - industrial.prev_register
    pf = energy / np.hypot(energy, industrial.reactive_kvarh)
    pf = pf[energy > 0]
    assert ((pf > 0.84) & (pf < 0.99)).mean() > 0.8
    assert pf.min() < 0.85 and pf.min() > 0.55
    kwh = (energy * industrial.multiplier).median()
    assert 50_000 < kwh < 400_000
    residential = readings[readings.customer_kind == "residential"]
    assert (residential.multiplier == 1).all()
    assert residential.reactive_kvarh.isna().all() and residential.max_demand_kw.isna().all()


def test_dirty_data_is_present_and_counted(city) -> None:
    root, summary, _ = city
    dc = DataCentre(root)
    assert set(summary.dirty) == set(DIRTY_KINDS)
    assert all(count > 0 for count in summary.dirty.values()), summary.dirty
    assert 0.002 < summary.dirty_total / summary.accounts < 0.01
    readings = _all(dc, lambda s: dc.read_readings(PERIOD, s)).to_pandas()
    accounts = _all(dc, dc.read_accounts).to_pandas()
    prev, cur = readings.prev_register, readings.cur_register
    assert ((cur < 0) | (prev < 0)).sum() == summary.dirty["negative_register"]
    assert ((cur < prev) & (cur >= 0)).sum() == summary.dirty["register_rollback"]
    assert (cur == prev).sum() >= summary.dirty["zero_read"]
    replaced = readings.groupby("account_id").size()
    assert (replaced == 2).sum() == summary.dirty["meter_replacement"]
    second = readings[readings.meter_point_id % 10 == 2]
    assert (second.prev_register == 0).all()
    active = set(accounts[accounts.active].account_id)
    missing = active - set(readings.account_id)
    assert len(missing) == summary.dirty["missing_reading"]
    assert (accounts.tariff_code == UNKNOWN_TARIFF).sum() == summary.dirty["unknown_tariff"]
    assert set(readings.account_id) <= active  # inactive accounts have no reading


def test_history_shape(city) -> None:
    root, summary, _ = city
    dc = DataCentre(root)
    history = _all(dc, dc.read_usage_history).to_pandas()
    accounts = _all(dc, dc.read_accounts).to_pandas()
    assert summary.history_rows == len(history)
    assert set(history.period) == set(periods_before(PERIOD, 12))
    per_account = history.groupby("account_id").size()
    assert per_account.max() == 12
    assert (per_account == 12).mean() > 0.95  # a few accounts opened within the year
    assert set(per_account.index) == set(accounts[accounts.active].account_id)
    assert not history.duplicated(["account_id", "period"]).any()
    assert (history.kwh > 0).all()
    kinds = accounts.set_index("account_id").customer_kind
    median = history.join(kinds, on="account_id").groupby("customer_kind").kwh.median()
    assert 100 < median["residential"] < 300
    assert 1_000 < median["commercial"] < 5_000
    assert 50_000 < median["industrial"] < 300_000
    # read_history gives the same rows for a section with no bills yet
    section = dc.all_sections()[0]
    assert dc.read_history(section, PERIOD).equals(dc.read_usage_history(section))


def test_bad_arguments_are_invalid_input(tmp_path: Path) -> None:
    dc = DataCentre(tmp_path)
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        generate_city(dc, accounts=10, sections=2, period="2026-7", seed=1)
    with pytest.raises(InvalidInput, match="sections"):
        generate_city(dc, accounts=1, sections=2, period=PERIOD, seed=1)
    with pytest.raises(InvalidInput, match="seed"):
        generate_city(dc, accounts=10, sections=2, period=PERIOD, seed=-1)
