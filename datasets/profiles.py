"""Hourly load profiles: a synthetic generator and the Parquet file format.

A profiles file has one row per profile: ``profile_id`` (string) and ``kwh``
(list<float64>, the year's hourly kWh at 0.001 kWh resolution, 8,760 or 8,784 values).
The generator is deterministic: the same ``n``, ``year`` and ``seed`` give the same loads,
and profile ``i`` does not depend on how many are generated.
"""

from __future__ import annotations

import calendar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gridfare.errors import ProfileError

__all__ = ["PROFILES", "generate_profiles", "read_profiles", "write_profiles"]

PROFILES = pa.schema([pa.field("profile_id", pa.string(), nullable=False),
                      pa.field("kwh", pa.list_(pa.float64()), nullable=False)])


def generate_profiles(n: int, year: int, seed: int = 7, start: int = 0
                      ) -> tuple[list[str], np.ndarray]:
    """``(ids, load)``: ``load`` is (n, hours) int32 Wh of homes and small businesses:
    a daily shape with morning and evening peaks (business hours for businesses), summer
    cooling and winter heating, quieter weekends for businesses, and noise."""
    hours = 8784 if calendar.isleap(year) else 8760
    t = np.arange(hours)
    hour = t % 24
    weekend = ((calendar.weekday(year, 1, 1) + t // 24) % 7 >= 5)
    season = np.cos(2 * np.pi * (t / hours - 0.55))  # +1 late July, -1 late January
    home = 0.6 + 0.5 * np.exp(-((hour - 7.5) ** 2) / 3) + 0.9 * np.exp(-((hour - 19) ** 2) / 5)
    shop = 0.3 + 1.2 * ((hour >= 8) & (hour < 19)) * np.where(weekend, 0.35, 1.0)
    ids, loads = [], np.empty((n, hours), dtype=np.int32)
    for k in range(n):
        i = start + k
        rng = np.random.default_rng([seed, i])
        business = i % 5 == 4
        size = rng.uniform(8, 60) if business else rng.uniform(0.4, 2.0)
        weather = 1 + rng.uniform(0.1, 0.5) * np.abs(season) + 0.1 * season
        noise = rng.gamma(8.0, 1 / 8.0, hours)
        kw = size * (shop if business else home) * weather * noise
        loads[k] = np.rint(kw * 1000)
        ids.append(f"{'biz' if business else 'home'}-{i:06d}")
    return ids, loads


def write_profiles(path: str, ids: list[str], load: np.ndarray) -> None:
    """A profiles file of ``load`` ((n, hours) integer Wh)."""
    kwh = pa.ListArray.from_arrays(
        pa.array(np.arange(0, load.size + 1, load.shape[1], dtype=np.int32)),
        pa.array((load / 1000).ravel()))
    pq.write_table(pa.Table.from_arrays([pa.array(ids, pa.string()), kwh], schema=PROFILES),
                   path)


def read_profiles(path: str) -> tuple[list[str], list[np.ndarray]]:
    """``(ids, kwh)`` of a profiles file, as stored: one float64 array a profile. The
    values are checked where they are priced (``gridfare.tariffs.hourly.profiles_wh``)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ProfileError(f"{path}: cannot read profiles file: {exc}") from exc
    for field in PROFILES:
        if field.name not in table.column_names:
            raise ProfileError(f"{path}: missing column {field.name!r}")
    ids = table["profile_id"].to_pylist()
    if len(set(ids)) != len(ids) or any(not i for i in ids):
        raise ProfileError(f"{path}: profile_id must be unique and non-empty")
    rows = [np.array(row if row is not None else [], dtype=np.float64)
            for row in table["kwh"].to_pylist()]
    return ids, rows
