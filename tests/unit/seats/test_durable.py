"""The one durable-line implementation shared by the centre log, the directory log and the
migration journals."""

from __future__ import annotations

import pytest

from gridfare.errors import WalCorrupt
from gridfare.seats.durable import (
    LineLog,
    atomic_write,
    crc_line,
    parse_line,
    read_lines,
    read_log,
)


def test_a_line_round_trips_and_a_changed_byte_is_caught():
    line = crc_line({"b": 1, "a": "x"})
    assert line.endswith(b"\n") and line.index(b'"a"') < line.index(b'"b"')  # sorted
    assert parse_line(line) == {"a": "x", "b": 1}
    with pytest.raises(ValueError, match="CRC"):
        parse_line(line.replace(b'"x"', b'"y"'))
    with pytest.raises(ValueError):
        parse_line(b"[1]")


def test_a_torn_last_line_is_dropped_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "d" / "log.jsonl"
    log, records = LineLog.open(path, dict, "test log")
    assert records == []
    log.append([crc_line({"n": 1}), crc_line({"n": 2})])
    log.close()
    path.write_bytes(path.read_bytes() + b'{"n": 3, "cr')  # a crash mid-append
    assert read_log(path, dict, "test log")[0] == [{"n": 1}, {"n": 2}]
    log, records = LineLog.open(path, dict, "test log")
    assert records == [{"n": 1}, {"n": 2}]
    log.append([crc_line({"n": 3})])
    log.close()
    assert read_log(path, dict, "test log")[0] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_bad_line_before_the_last_is_corruption():
    data = crc_line({"n": 1}).replace(b"1", b"7", 1) + crc_line({"n": 2})
    with pytest.raises(WalCorrupt, match="line 1 of 2 is corrupt"):
        read_lines(data, dict, "log")
    records, valid, torn = read_lines(crc_line({"n": 1}) + b"\x00" * 8 + b"\n", dict, "log")
    assert records == [{"n": 1}] and torn and valid == len(crc_line({"n": 1}))


def test_an_atomic_write_replaces_whole(tmp_path):
    path = tmp_path / "f.json"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two" and not (tmp_path / "f.json.tmp").exists()
