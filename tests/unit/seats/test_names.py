"""Every value that becomes part of a seats path matches a strict pattern: traversal, NUL,
absolute paths, over-long values and look-alike letters are refused, at the edge and again
where the core builds the path."""

from __future__ import annotations

import pytest

from gridfare.errors import ConfigError, InvalidInput, InvalidName
from gridfare.seats.migration import Migration, TrainDateMove
from gridfare.seats.names import (
    MAX_CENTRE_ID,
    MAX_MIGRATION_ID,
    check_centre_id,
    check_migration_id,
    check_root,
    check_text,
)
from gridfare.seats.store import SeatsConfig, SeatsRoot

ESCAPES = [
    "../escape",
    "../../escape",
    "..",
    ".",
    "a/b",
    "/abs",
    "/etc/passwd",
    "a\\b",
    "a\x00b",
    "\x00",
    "",
    " ",
    "A ",
    "A\n",
    "-lead",
    "_lead",
    "a.json",
    "\u0410",  # Cyrillic capital A, looks like A
    "\uff21",  # fullwidth A
    "A\u200b",  # zero-width space
    "\ud800",
    "é",
    7,
    None,
    ["A"],
]


@pytest.mark.parametrize("value", ESCAPES)
def test_ids_that_could_escape_or_mislead_are_refused(value):
    with pytest.raises(InvalidName):
        check_centre_id(value)
    with pytest.raises(InvalidName):
        check_migration_id(value)


def test_ids_are_bounded_and_plain_ones_pass():
    assert check_centre_id("A") == "A" and check_centre_id("north-2_b") == "north-2_b"
    assert check_migration_id("m20261001T120000-ab12cd") == "m20261001T120000-ab12cd"
    check_centre_id("C" * MAX_CENTRE_ID)
    check_migration_id("m" * MAX_MIGRATION_ID)
    with pytest.raises(InvalidName):
        check_centre_id("C" * (MAX_CENTRE_ID + 1))
    with pytest.raises(InvalidName):
        check_migration_id("m" * (MAX_MIGRATION_ID + 1))


@pytest.mark.parametrize("bad", ["a\x00b", "x/../y", "../up", "", "a\ud800", "a\nb",
                                 "x/" + "n" * 256, "r" * 1025])
def test_a_seats_root_that_climbs_or_cannot_be_a_path_is_refused(bad):
    with pytest.raises(InvalidName):
        check_root(bad)
    with pytest.raises(InvalidName):
        SeatsRoot(bad)


def test_a_plain_root_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_root("seats") == tmp_path / "seats"
    assert SeatsRoot(tmp_path / "s").path == tmp_path / "s"


@pytest.mark.parametrize("value", [*ESCAPES[:3], "a/b", "/abs", "a\x00b", "\uff21", "A\n"])
def test_the_core_checks_again_where_it_builds_a_path(tmp_path, value):
    root = SeatsRoot(tmp_path)
    with pytest.raises(InvalidName):
        root.centre_dir(value)
    with pytest.raises(InvalidName):
        root.migration_path(value)
    with pytest.raises(InvalidName):
        Migration(value, "G%", [TrainDateMove("G1@2026-10-01", "A", "B")])
    with pytest.raises(ConfigError, match="centres"):
        SeatsConfig((value,), value)
    assert list(tmp_path.iterdir()) == []  # nothing was written anywhere


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "a\x00", "tab\there", "nl\n",
                                   "\u200bzero-width", "", "x" * 129, 5, b"bytes"])
def test_text_that_cannot_be_stored_or_answered_is_refused(value):
    with pytest.raises(InvalidInput):
        check_text(value, "request_id")


def test_text_allows_any_printable_unicode():
    assert check_text("北京南", "station") == "北京南"
    assert check_text("r-1 / ok", "request_id") == "r-1 / ok"
