"""A seeded synthetic city: accounts, one period of meter readings, and legacy usage history.

``generate_city`` streams section by section (it never holds more than one section's
tables), so it scales to tens of millions of accounts in bounded memory. Each section is a
pure function of ``(seed, section_index)`` (its generator is
``numpy.random.default_rng([seed, section_index])``), so output does not depend on the order
sections are made in, and the same seed gives byte-identical files.

The mix is roughly a northern Chinese city: 88 % residential (monthly tiers, annual tiers,
Zhejiang-style peak/valley), 9 % commercial TOU, 3 % industrial two-part; ~1 % of accounts
inactive. Registers hold whole 0.01 kWh units. About 0.5 % of accounts carry one kind of
dirty data (see ``DIRTY_KINDS``), for the audit to find.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from datasets.datacentre import (
    DATASETS,
    MANIFEST,
    DataCentre,
    check_period,
    periods_before,
    shift_period,
)
from datasets.schemas import ACCOUNTS, READINGS, USAGE_HISTORY
from gridfare.errors import DataCentreError, DataCentreNotEmpty, InvalidInput

__all__ = [
    "DIRTY_KINDS",
    "MAX_ACCOUNTS",
    "TARIFF_MIX",
    "UNKNOWN_TARIFF",
    "GeneratedSection",
    "GenerationSummary",
    "check_city",
    "generate_city",
    "generate_section",
    "section_ids",
    "section_sizes",
]

# (customer_kind, tariff_code, share of all accounts)
TARIFF_MIX: tuple[tuple[str, str, float], ...] = (
    ("residential", "cn-bj-residential-monthly", 0.55),
    ("residential", "cn-bj-residential-annual", 0.25),
    ("residential", "cn-zj-residential-tou", 0.08),
    ("commercial", "cn-bj-commercial-tou", 0.09),
    ("industrial", "cn-bj-industrial-two-part", 0.03),
)
UNKNOWN_TARIFF = "cn-xx-unknown"

# Dirty kinds and their share of all accounts (tou_split_mismatch: of all, hitting TOU ones).
DIRTY_KINDS: tuple[str, ...] = (
    "register_rollback",
    "meter_replacement",
    "zero_read",
    "spike",
    "missing_reading",
    "negative_register",
    "tou_split_mismatch",
    "unknown_tariff",
)
_DIRTY_RATES = np.array([0.0008, 0.0008, 0.0008, 0.0007, 0.0005, 0.0004, 0.0005, 0.0005])
INACTIVE_SHARE = 0.01
# Account ids run 1..accounts and meter point ids to accounts * 10 + 2 in int64; a billion
# accounts is beyond any province (and any machine's memory for one run).
MAX_ACCOUNTS = 10**9

_KINDS = ("residential", "commercial", "industrial")
_CODES = np.array([code for _, code, _ in TARIFF_MIX] + [UNKNOWN_TARIFF], dtype=object)
_KIND_OF_CODE = np.array([_KINDS.index(kind) for kind, _, _ in TARIFF_MIX])
_MIX_EDGES = np.cumsum([share for _, _, share in TARIFF_MIX])
_ZJ_TOU, _COMMERCIAL, _INDUSTRIAL = 2, 3, 4  # indices into TARIFF_MIX
_TOU_SHARE = sum(share for _, code, share in TARIFF_MIX if "tou" in code or "two-part" in code)

# Typical monthly kWh (after the multiplier) and the spread of the lognormal around it.
_LEVEL_KWH = np.array([180.0, 2_500.0, 150_000.0])
_LEVEL_SIGMA = np.array([0.55, 0.7, 0.8])
# Seasonal factor by class and calendar month: summer cooling and winter heating peaks.
_SEASON = np.array(
    [
        [1.20, 1.10, 0.95, 0.85, 0.90, 1.10, 1.35, 1.35, 1.00, 0.85, 0.95, 1.15],
        [1.05, 0.95, 0.95, 0.95, 1.00, 1.10, 1.25, 1.25, 1.05, 0.95, 0.95, 1.05],
        [0.95, 0.90, 1.00, 1.00, 1.00, 1.05, 1.05, 1.05, 1.00, 1.00, 1.00, 1.00],
    ]
)
_COMMERCIAL_CT = np.array([20, 30, 40, 50, 60, 80])
_INDUSTRIAL_CT_PT = np.array([40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600])
_COMMERCIAL_KVA = np.array([100, 125, 160, 200, 250, 315, 400, 500, 630])
_INDUSTRIAL_KVA = np.array(
    [315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000]
)
_OPENED_FROM = (dt.date(1995, 1, 1) - dt.date(1970, 1, 1)).days
_HOURS_PER_MONTH = 720.0


@dataclass(frozen=True)
class GeneratedSection:
    """One section's tables; unpacks as ``accounts, readings, history``."""

    accounts: pa.Table
    readings: pa.Table
    history: pa.Table
    dirty: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[pa.Table]:
        return iter((self.accounts, self.readings, self.history))


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate_city`` wrote."""

    uri: str
    period: str
    seed: int
    accounts: int
    sections: int
    active: int
    readings_rows: int
    history_rows: int
    by_tariff: dict[str, int]
    dirty: dict[str, int]
    files: tuple[str, ...]
    bytes_written: int

    @property
    def dirty_total(self) -> int:
        """Accounts carrying some kind of dirty data."""
        return sum(self.dirty.values())

    def describe(self) -> str:
        """A few lines for a person: sizes, the tariff mix and the dirty data seeded."""
        mix = ", ".join(f"{code} {count:,}" for code, count in self.by_tariff.items() if count)
        dirty = ", ".join(f"{kind} {count:,}" for kind, count in self.dirty.items())
        return "\n".join(
            [
                f"  accounts {self.accounts:,} ({self.active:,} active) in {self.sections:,} "
                f"sections; readings {self.readings_rows:,}; history {self.history_rows:,} rows",
                f"  tariffs: {mix}",
                f"  dirty ({self.dirty_total:,} accounts): {dirty}",
                f"  {len(self.files):,} files, {self.bytes_written / 1e6:,.1f} MB",
            ]
        )


def section_ids(sections: int) -> list[str]:
    """``S00001`` .. zero-padded to width 5 (wider if there are more than 99,999)."""
    width = max(5, len(str(sections)))
    return [f"S{i:0{width}d}" for i in range(1, sections + 1)]


def section_sizes(accounts: int, sections: int, seed: int) -> np.ndarray:
    """Skewed (lognormal) section sizes, every one >= 1, summing exactly to ``accounts``."""
    if sections < 1 or accounts < sections:
        raise InvalidInput(f"generator: need 1 <= sections <= accounts, got {sections}, {accounts}")
    rng = np.random.default_rng([seed, 2**32 - 1, 0x5EC7])
    weights = rng.lognormal(mean=0.0, sigma=0.6, size=sections)
    spare = accounts - sections
    exact = weights / weights.sum() * spare
    sizes = np.floor(exact).astype(np.int64)
    short = spare - int(sizes.sum())
    if short:
        # Largest remainders get the leftover accounts (stable order: deterministic).
        order = np.argsort(-(exact - sizes), kind="stable")
        sizes[order[:short]] += 1
    return sizes + 1


def generate_city(
    datacentre: DataCentre,
    *,
    accounts: int,
    sections: int,
    period: str,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    replace: bool = False,
) -> GenerationSummary:
    """Generate a city into ``datacentre``: per section its accounts, its readings for
    ``period`` and its 12 months of legacy usage history. ``progress(done, total)`` is
    called after each section. The same arguments give identical files.

    A data centre that already holds data is refused (DataCentreNotEmpty: two cities would
    mix) unless ``replace``: the new city is then generated beside it and swapped in by two
    renames, so a failed generate leaves the old city as it was. Either way a root holding
    anything that is not a data centre's is refused, never replaced.
    """
    check_city(accounts=accounts, sections=sections, period=period, seed=seed)
    held = _held(datacentre)
    if not held:
        return _generate(datacentre, accounts, sections, period, seed, progress)
    if not replace:
        raise DataCentreNotEmpty(
            f"generate: data centre {datacentre.uri} already holds {', '.join(held)}; "
            "generating into it would mix two cities: pass --replace (replace=True) to "
            "replace it, or choose an empty directory")
    return _replace(datacentre, accounts, sections, period, seed, progress)


def check_city(*, accounts: int, sections: int, period: str, seed: int) -> None:
    """Refuse arguments no city can be made of, before anything is created."""
    check_period(period)
    for name, value, most in (("accounts", accounts, MAX_ACCOUNTS),
                              ("sections", sections, MAX_ACCOUNTS),
                              ("seed", seed, 2**63 - 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidInput(f"generator: {name} {value!r} is not an integer")
        if not (0 if name == "seed" else 1) <= value <= most:
            raise InvalidInput(f"generator: {name} {value} is not in "
                               f"{0 if name == 'seed' else 1}..{most:,}")
    if sections > accounts:
        raise InvalidInput(f"generator: need 1 <= sections <= accounts, got {sections}, "
                           f"{accounts}")


def _held(datacentre: DataCentre) -> list[str]:
    """The data centre's entries under its root; refuses a root that holds other things."""
    if not datacentre.exists():
        return []
    selector = pafs.FileSelector(datacentre.root, allow_not_found=True)
    try:
        names = sorted(info.base_name for info in datacentre.filesystem.get_file_info(selector))
    except (OSError, pa.ArrowException) as exc:
        raise DataCentreError(f"generate: cannot list {datacentre.uri}: {exc}") from exc
    foreign = [name for name in names if name not in DATASETS and name != MANIFEST
               and not name.startswith(("catalog", "."))]
    if foreign:
        raise DataCentreNotEmpty(
            f"generate: {datacentre.uri} holds {', '.join(foreign[:3])}, which is not part of "
            "a data centre: refusing to generate into it (choose an empty directory)")
    # The manifest alone (written when the data centre is created) holds no city.
    return [name for name in names if not name.startswith(".") and name != MANIFEST]


def _replace(datacentre: DataCentre, accounts: int, sections: int, period: str, seed: int,
             progress: Callable[[int, int], None] | None) -> GenerationSummary:
    fs, root = datacentre.filesystem, datacentre.root
    token = uuid.uuid4().hex[:12]
    staging, retired = f"{root}.generating-{token}", f"{root}.replaced-{token}"
    try:
        staged = DataCentre(staging, filesystem=fs, create=True)
        summary = _generate(staged, accounts, sections, period, seed, progress)
        fs.move(root, retired)
        fs.move(staging, root)
    except BaseException:
        with contextlib.suppress(OSError, pa.ArrowException):
            fs.delete_dir(staging)
        raise
    with contextlib.suppress(OSError, pa.ArrowException):
        fs.delete_dir(retired)
    files = tuple(root + name[len(staging):] for name in summary.files)
    return dataclasses.replace(summary, uri=datacentre.uri, files=files)


def _generate(datacentre: DataCentre, accounts: int, sections: int, period: str, seed: int,
              progress: Callable[[int, int], None] | None) -> GenerationSummary:
    sizes = section_sizes(accounts, sections, seed)
    ids = section_ids(sections)
    by_tariff = dict.fromkeys([*_CODES], 0)
    dirty = dict.fromkeys(DIRTY_KINDS, 0)
    files: list[str] = []
    written = active = readings_rows = history_rows = 0
    first = 1
    for index, (section, size) in enumerate(zip(ids, sizes.tolist(), strict=True)):
        result = generate_section(index, section, size, first, period, seed)
        first += size
        written += datacentre.write_accounts(section, result.accounts)
        written += datacentre.write_readings(period, section, result.readings)
        written += datacentre.write_history(section, result.history)
        files += [
            datacentre.path("accounts", section=section),
            datacentre.path("readings", period=period, section=section),
            datacentre.path("usage_history", section=section),
        ]
        codes, counts = np.unique(
            result.accounts["tariff_code"].to_numpy(zero_copy_only=False), return_counts=True
        )
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            by_tariff[code] += count
        for kind, count in result.dirty.items():
            dirty[kind] += count
        active += result.accounts["active"].to_numpy(zero_copy_only=False).sum()
        readings_rows += result.readings.num_rows
        history_rows += result.history.num_rows
        if progress is not None:
            progress(index + 1, sections)
    return GenerationSummary(
        uri=datacentre.uri,
        period=period,
        seed=seed,
        accounts=accounts,
        sections=sections,
        active=int(active),
        readings_rows=readings_rows,
        history_rows=history_rows,
        by_tariff=by_tariff,
        dirty=dirty,
        files=tuple(files),
        bytes_written=written,
    )


def generate_section(
    section_index: int,
    section_id: str,
    n_accounts: int,
    first_account_id: int,
    period: str,
    seed: int,
) -> GeneratedSection:
    """One section's ``accounts, readings, history`` tables: a pure function of its
    arguments (random draws from ``default_rng([seed, section_index])``)."""
    check_period(period)
    if n_accounts < 1:
        raise InvalidInput(f"generator: section {section_id} needs at least one account")
    rng = np.random.default_rng([seed, section_index])
    n = n_accounts
    year, month = int(period[:4]), int(period[5:])
    period_start = (dt.date(year, month, 1) - dt.date(1970, 1, 1)).days

    # --- accounts -------------------------------------------------------------------
    account_id = np.arange(first_account_id, first_account_id + n, dtype=np.int64)
    code = np.searchsorted(_MIX_EDGES, rng.random(n) * _MIX_EDGES[-1], side="right")
    kind = _KIND_OF_CODE[code]
    commercial, industrial = code == _COMMERCIAL, code == _INDUSTRIAL
    active = rng.random(n) >= INACTIVE_SHARE
    opened = rng.integers(_OPENED_FROM, period_start, size=n)
    level = _LEVEL_KWH[kind] * np.exp(_LEVEL_SIGMA[kind] * rng.standard_normal(n))
    load_factor = rng.uniform(0.35, 0.75, size=n)
    utilisation = rng.uniform(0.45, 0.85, size=n)
    usual_kw = level * _SEASON[kind].max(axis=1) / (_HOURS_PER_MONTH * load_factor)
    bump = rng.integers(0, 4, size=n)  # some customers contract well above their load
    capacity = np.where(
        industrial,
        _standard_size(usual_kw / utilisation, _INDUSTRIAL_KVA, bump // 2),
        _standard_size(usual_kw / utilisation, _COMMERCIAL_KVA, bump),
    ).astype(np.float64)
    multiplier = np.ones(n, dtype=np.int64)
    ct = rng.random(n) < 0.3
    multiplier = np.where(commercial & ct, rng.choice(_COMMERCIAL_CT, size=n), multiplier)
    multiplier = np.where(industrial, rng.choice(_INDUSTRIAL_CT_PT, size=n), multiplier)

    # --- dirty kinds: at most one per account --------------------------------------
    tou = (code == _ZJ_TOU) | commercial | industrial
    rates = _DIRTY_RATES.copy()
    tou_slot = DIRTY_KINDS.index("tou_split_mismatch")
    rates[tou_slot] /= _TOU_SHARE  # only TOU accounts can carry it
    draw = np.searchsorted(np.cumsum(rates), rng.random(n), side="right")
    dirty = np.where(draw < len(DIRTY_KINDS), draw, -1)
    needs_reading = dirty != DIRTY_KINDS.index("unknown_tariff")
    dirty[needs_reading & ~active] = -1
    dirty[(dirty == tou_slot) & ~tou] = -1
    is_dirty = {name: dirty == slot for slot, name in enumerate(DIRTY_KINDS)}
    tariff = np.where(is_dirty["unknown_tariff"], len(_CODES) - 1, code)

    # --- this period's energy, per account, in register units (0.01, before multiplier)
    noise = np.exp(0.08 * rng.standard_normal(n))
    energy = level * _SEASON[kind, month - 1] * noise
    advance = np.maximum(1, np.rint(energy * 100 / multiplier)).astype(np.int64)
    advance = np.where(is_dirty["spike"], advance * 20, advance)
    advance = np.where(is_dirty["zero_read"], 0, advance)
    prev = rng.integers(0, 20_000_000, size=n)
    demand_kw = advance * multiplier / 100 / (_HOURS_PER_MONTH * load_factor)
    demand = np.rint(demand_kw * 100 / multiplier).astype(np.int64)
    power_factor = np.where(
        rng.random(n) < 0.9, rng.uniform(0.85, 0.98, size=n), rng.uniform(0.6, 0.85, size=n)
    )
    reactive = np.rint(advance * np.sqrt(1 / power_factor**2 - 1)).astype(np.int64)
    replaced_share = rng.uniform(0.2, 0.8, size=n)
    peak_share = np.where(code == _ZJ_TOU, rng.uniform(0.5, 0.7, n), rng.uniform(0.3, 0.4, n))
    flat_share = rng.uniform(0.3, 0.4, n)
    critical_share = np.where(commercial & (month in (7, 8)), rng.uniform(0.04, 0.08, n), 0.0)
    day = rng.integers(1, calendar.monthrange(year, month)[1] + 1, size=n)
    tou_extra = rng.integers(1, 50, size=n)

    # --- readings rows: one per meter; a replaced meter gives a second row -------------
    has_row = active & ~is_dirty["missing_reading"]
    base = np.flatnonzero(has_row)
    extra = np.flatnonzero(has_row & is_dirty["meter_replacement"])
    owner = np.concatenate([base, extra])
    second = np.concatenate([np.zeros(len(base), bool), np.ones(len(extra), bool)])
    order = np.lexsort((second, owner))
    owner, second = owner[order], second[order]
    replaced = is_dirty["meter_replacement"][owner]
    first_part = np.floor(advance[owner] * replaced_share[owner]).astype(np.int64)
    row_advance = np.where(
        replaced, np.where(second, advance[owner] - first_part, first_part), advance[owner]
    )
    row_prev = np.where(second, 0, prev[owner])
    row_cur = row_prev + row_advance
    row_reactive = np.where(
        replaced & (advance[owner] > 0),
        reactive[owner] * row_advance // np.maximum(advance[owner], 1),
        reactive[owner],
    )
    row_tou = tou[owner]
    critical = np.floor(row_advance * critical_share[owner]).astype(np.int64)
    rest = 1.0 - critical_share[owner]
    peak = np.floor(row_advance * peak_share[owner] * rest).astype(np.int64)
    flat = np.where(
        code[owner] == _ZJ_TOU, 0, np.floor(row_advance * flat_share[owner] * rest)
    ).astype(np.int64)
    valley = row_advance - critical - peak - flat

    primary = ~second
    rollback = primary & is_dirty["register_rollback"][owner]
    row_prev, row_cur = np.where(rollback, row_cur, row_prev), np.where(rollback, row_prev, row_cur)
    row_cur = np.where(primary & is_dirty["negative_register"][owner], -row_cur - 1, row_cur)
    peak = np.where(primary & is_dirty["tou_split_mismatch"][owner], peak + tou_extra[owner], peak)

    counts = {name: int(mask.sum()) for name, mask in is_dirty.items()}

    row_kind_ci = commercial[owner] | industrial[owner]
    readings = pa.Table.from_arrays(
        [
            pa.array(account_id[owner]),
            pa.array(account_id[owner] * 10 + 1 + second),
            _repeat(period, len(owner)),
            pa.array((period_start + day[owner] - 1).astype(np.int32), pa.date32()),
            pa.array(row_prev / 100),
            pa.array(row_cur / 100),
            pa.array(multiplier[owner].astype(np.int32)),
            pa.array(critical / 100, mask=~row_kind_ci),
            pa.array(peak / 100, mask=~row_tou),
            pa.array(flat / 100, mask=~row_kind_ci),
            pa.array(valley / 100, mask=~row_tou),
            pa.array(demand[owner] / 100, mask=~industrial[owner]),
            pa.array(row_reactive / 100, mask=~row_kind_ci),
        ],
        schema=READINGS,
    )

    accounts = pa.Table.from_arrays(
        [
            pa.array(account_id),
            _repeat(section_id, n),
            pa.array(np.array(_KINDS, dtype=object)[kind], pa.string()),
            pa.array(_CODES[tariff], pa.string()),
            pa.array(capacity, mask=~(commercial | industrial)),
            pa.array(np.where(industrial, 0.90, 0.85), mask=~(commercial | industrial)),
            pa.array(active),
            pa.array(opened.astype(np.int32), pa.date32()),
        ],
        schema=ACCOUNTS,
    )
    history = _history(rng, account_id, kind, level, active, opened, period)
    return GeneratedSection(accounts, readings, history, counts)


def _history(
    rng: np.random.Generator,
    account_id: np.ndarray,
    kind: np.ndarray,
    level: np.ndarray,
    active: np.ndarray,
    opened: np.ndarray,
    period: str,
) -> pa.Table:
    """The 12 billed months before ``period`` of each active account open by then."""
    months = periods_before(period, 12)
    month_index = np.array([int(p[5:]) - 1 for p in months])
    next_start = np.array(
        [
            (dt.date.fromisoformat(shift_period(p, 1) + "-01") - dt.date(1970, 1, 1)).days
            for p in months
        ]
    )
    n = len(account_id)
    noise = np.exp(0.1 * rng.standard_normal((n, 12)))
    kwh = np.rint(level[:, None] * _SEASON[kind][:, month_index] * noise * 100).astype(np.int64)
    keep = active[:, None] & (opened[:, None] < next_start[None, :])
    rows, cols = np.nonzero(keep)
    return pa.Table.from_arrays(
        [
            pa.array(account_id[rows]),
            pa.array(np.array(months, dtype=object)[cols], pa.string()),
            pa.array(kwh[rows, cols] / 100),
        ],
        schema=USAGE_HISTORY,
    )


def _standard_size(needed: np.ndarray, sizes: np.ndarray, bump: np.ndarray) -> np.ndarray:
    """The standard size ``bump`` steps above the smallest >= ``needed`` (capped at the top)."""
    index = np.minimum(np.searchsorted(sizes, needed, side="left") + bump, len(sizes) - 1)
    return sizes[index]


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(np.zeros(n, dtype=np.int64))
