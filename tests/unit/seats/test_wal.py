from __future__ import annotations

import io

import pytest

from gridfare.errors import InvalidInput, WalCorrupt
from gridfare.seats.wal import WalRecord, WalWriter, decode, encode, open_wal, read_wal

from .conftest import make_train


def sell(seq: int, rid: str = "r") -> WalRecord:
    return WalRecord(
        op="sell",
        key="G1@2026-10-01",
        seq=seq,
        request_id=f"{rid}{seq}",
        cls="second",
        seats=(1, 2),
        legs=0b11,
        from_station="Beijing",
        to_station="Jinan",
    )


def test_encode_decode_round_trip_every_op():
    train = make_train()
    records = [
        WalRecord(op="create", key=train.key, seq=0, train=train, lsn=1),
        sell(1),
        WalRecord(
            op="install",
            key=train.key,
            seq=5,
            train=train,
            orders=(("r1", "second", "Beijing", "Jinan", (1, 2), 0b11, False),),
            lsn=3,
        ),
        WalRecord(op="drop", key=train.key, seq=1, centre="B01C2", version=3, lsn=4),
    ]
    for record in records:
        line = encode(record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode(line.rstrip(b"\n")) == record


def test_a_flipped_byte_fails_the_crc():
    line = encode(sell(1)).replace(b"Jinan", b"Jinam")
    with pytest.raises(WalCorrupt, match="CRC mismatch"):
        decode(line)


def test_writer_acknowledges_only_fsynced_batches():
    buf = io.BytesIO()
    syncs = []
    writer = WalWriter(buf, batch_size=3, fsync=lambda f: syncs.append(f.tell()))
    appended = [writer.append(sell(i)) for i in (1, 2)]
    assert [r.lsn for r in appended] == [1, 2]
    assert writer.acknowledged_lsn == 0 and writer.pending == 2 and buf.getvalue() == b""
    writer.append(sell(3))  # the batch is full: written and fsynced
    assert writer.acknowledged_lsn == 3 and len(syncs) == 1 and writer.pending == 0
    writer.append(sell(4))
    assert writer.flush(fsync=False) == 3  # written to the OS, not acknowledged
    assert writer.acknowledged_lsn == 3 and writer.last_lsn == 4
    assert writer.flush() == 4 and len(syncs) == 2
    log = read_wal(buf.getvalue())
    assert [r.lsn for r in log.records] == [1, 2, 3, 4] and not log.torn


def test_bad_batch_size_is_refused():
    with pytest.raises(InvalidInput, match="batch_size"):
        WalWriter(io.BytesIO(), batch_size=0)


def _log(n: int) -> bytes:
    buf = io.BytesIO()
    writer = WalWriter(buf, fsync=lambda f: None)
    for i in range(1, n + 1):
        writer.append(sell(i))
    writer.flush()
    return buf.getvalue()


def test_torn_last_line_is_dropped():
    data = _log(3)
    torn = data + encode(sell(4))[:25]
    log = read_wal(torn)
    assert [r.lsn for r in log.records] == [1, 2, 3]
    assert log.torn and log.valid_bytes == len(data)


def test_garbled_last_complete_line_is_treated_as_torn():
    data = _log(3)
    log = read_wal(data + b"\x00\x00\x00\n")
    assert log.torn and len(log.records) == 3


def test_corruption_in_the_middle_is_refused():
    lines = _log(3).split(b"\n")
    lines[1] = lines[1].replace(b"second", b"secant")
    with pytest.raises(WalCorrupt, match="line 2 of 3 is corrupt"):
        read_wal(b"\n".join(lines))


def test_a_missing_lsn_is_refused():
    lines = _log(3).split(b"\n")
    del lines[1]
    with pytest.raises(WalCorrupt, match="lsn 3 does not follow 1"):
        read_wal(b"\n".join(lines))


def test_open_wal_cuts_a_torn_tail_and_continues(tmp_path):
    path = tmp_path / "centre.wal"
    path.write_bytes(_log(2) + b'{"lsn":3,"op":"se')
    writer, log = open_wal(path, batch_size=10)
    assert log.torn and log.last_lsn == 2
    assert writer.append(sell(3)).lsn == 3
    writer.close()
    again = read_wal(path.read_bytes())
    assert [r.lsn for r in again.records] == [1, 2, 3] and not again.torn


def test_open_wal_creates_an_empty_log(tmp_path):
    writer, log = open_wal(tmp_path / "new.wal")
    assert log.records == () and writer.acknowledged_lsn == 0
    writer.append(sell(1))
    writer.close()
    assert len(read_wal((tmp_path / "new.wal").read_bytes()).records) == 1
