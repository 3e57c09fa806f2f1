"""Pure parts of the seats client and CLI: the placement plan, the store, offline commands."""

from __future__ import annotations

import argparse
from datetime import date
from fractions import Fraction

import pytest

from gridfare.errors import ConfigError, StaleVersion
from gridfare.seats.migration import Migration, TrainDateMove
from gridfare.seats.plan import placement_plan, trains_by_centre
from gridfare.seats.store import SeatsConfig, SeatsRoot
from gridfare.seats.train import TrainDate


def test_plan_moves_towards_the_formula_shares():
    seats = {"G1": 500, "G2": 500, "G3": 500, "D4": 300, "D5": 200}
    plan = placement_plan(dict.fromkeys(seats, "A"), seats, ["A", "B", "C"], "A")
    assert plan.targets["A"] == Fraction(65, 300)
    assert plan.seats == {"A": 2000, "B": 0, "C": 0}
    assert plan.moves and all(m.source == "A" for m in plan.moves)
    text = plan.render()
    assert "A (main)" in text and "21.67%" in text and "moves reach the target" in text


def test_plan_places_new_trains_by_the_formula():
    seats = {"G1": 500, "G2": 400}
    plan = placement_plan(dict.fromkeys(seats), seats, ["A", "B"], "A")
    assert plan.seats == {"A": 0, "B": 0}


def test_trains_by_centre_takes_the_majority_centre():
    day = date(2026, 10, 1)
    t1 = TrainDate("G1", day, ("X", "Y"), {"second": 10})
    t2 = TrainDate("G1", date(2026, 10, 2), ("X", "Y"), {"second": 10})
    current, seats = trains_by_centre({t1.key: "A", t2.key: "A"}, [t1, t2])
    assert current == {"G1": "A"} and seats == {"G1": 10}


def test_config_is_checked_and_stored_once(tmp_path):
    root = SeatsRoot(tmp_path)
    with pytest.raises(ConfigError, match="not a seats data root"):
        root.config()
    with pytest.raises(ConfigError, match="main"):
        SeatsConfig(("A", "B"), "Z")
    with pytest.raises(ConfigError, match="listed twice"):
        SeatsConfig(("A", "A"), "A")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        SeatsConfig.from_dict({"centres": ["A"], "main": "A", "colour": 1})
    config = root.init(SeatsConfig(("A", "B"), "A"))
    assert root.config() == config
    with pytest.raises(ConfigError, match="refusing a different"):
        root.init(SeatsConfig(("A", "B", "C"), "A"))


def test_migration_records_refuse_a_stale_revision(tmp_path):
    root = SeatsRoot(tmp_path)
    migration = Migration("m1", "G%", [TrainDateMove("G1@2026-10-01", "A", "B")])
    migration.advance("G1@2026-10-01")
    root.write_migration(migration, {"auto": True})
    stale = Migration("m1", "G%", [TrainDateMove("G1@2026-10-01", "A", "B")])
    with pytest.raises(StaleVersion, match="older"):
        root.write_migration(stale, {"auto": True})
    loaded, extra = root.read_migrations()["m1"]
    assert loaded.moves["G1@2026-10-01"].step == "copying" and extra == {"auto": True}
    assert root.frozen_at("A") == {"G1@2026-10-01"} and root.frozen_at("C") == set()


def test_directory_log_drops_a_torn_last_line(tmp_path):
    from gridfare.seats.directory import DirectoryRecord

    root = SeatsRoot(tmp_path)
    root.directory_log.parent.mkdir(parents=True)
    good = root.encode_directory_record(DirectoryRecord("place", "G1@2026-10-01", "A", 1))
    root.directory_log.write_bytes(good + good[:10])
    records, valid = root.read_directory()
    assert len(records) == 1 and valid == len(good)


def _run(args):
    from gridfare.cli_seats import add_seats_commands

    parser = argparse.ArgumentParser(prog="gridfare")
    add_seats_commands(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(args)
    return parsed.handler(parsed)


def test_offline_plan_and_audit_need_no_ray(tmp_path, capsys):
    assert (
        _run(
            [
                "seats",
                "plan",
                "--root",
                str(tmp_path),
                "--offline",
                "--centres",
                "A,B,C",
                "--trains",
                "50",
            ]
        )
        == 0
    )
    assert "A (main)" in capsys.readouterr().out
    SeatsRoot(tmp_path).init(SeatsConfig(("A", "B"), "A"))
    assert _run(["seats", "audit", "--root", str(tmp_path)]) == 0
    assert "audit ok" in capsys.readouterr().out
