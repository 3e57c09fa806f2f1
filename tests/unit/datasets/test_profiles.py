"""Hourly profiles: the deterministic generator and the Parquet file, checked on read."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets.profiles import PROFILES, generate_profiles, read_profiles, write_profiles
from gridfare.errors import ProfileError
from gridfare.tariffs.hourly import profiles_wh


def test_the_generator_is_deterministic_and_each_profile_stands_alone():
    ids, load = generate_profiles(6, 2028, seed=3)
    assert load.shape == (6, 8784) and load.dtype == np.int32 and (load >= 0).all()
    again_ids, again = generate_profiles(2, 2028, seed=3, start=4)
    assert again_ids == ids[4:] and (again == load[4:]).all()
    assert ids[4].startswith("biz-") and load[4].mean() > 5 * load[0].mean()


def test_a_profiles_file_round_trips_exactly(tmp_path):
    ids, load = generate_profiles(3, 2026)
    write_profiles(str(tmp_path / "p.parquet"), ids, load)
    read_ids, rows = read_profiles(str(tmp_path / "p.parquet"))
    assert read_ids == ids and (profiles_wh(ids, rows, 2026, "p") == load).all()


def test_a_bad_profile_is_named(tmp_path):
    rows = [np.ones(8760).tolist(), [1.0] * 100]
    pq.write_table(pa.table({"profile_id": ["ok", "short"], "kwh": rows}, schema=PROFILES),
                   tmp_path / "p.parquet")
    with pytest.raises(ProfileError,
                       match=r"p\.parquet: profile short: 100 hourly values, expected 8760"):
        profiles_wh(*read_profiles(str(tmp_path / "p.parquet")), 2026, "p.parquet")
