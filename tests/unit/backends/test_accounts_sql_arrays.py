"""The binary ``text[]`` parameter of the set batch (``backends.accounts_sql._text_array``):
PostgreSQL's array wire format, the same bytes from the small-batch join and from the
numpy encoding of large batches."""

from __future__ import annotations

import struct

import pytest

from backends import accounts_sql


def _decode(data: bytes) -> list[str]:
    ndim, has_null, oid, length, lower = struct.unpack_from(">iiiii", data)
    assert (ndim, has_null, oid, lower) == (1, 0, 25, 1)
    out, at = [], 20
    for _ in range(length):
        (size,) = struct.unpack_from(">i", data, at)
        out.append(data[at + 4:at + 4 + size].decode())
        at += 4 + size
    assert at == len(data)
    return out


@pytest.mark.parametrize("count", [1, 5, accounts_sql.SMALL_TEXT_ARRAY,
                                   accounts_sql.SMALL_TEXT_ARRAY + 1, 3000])
def test_text_array_round_trips_and_both_encodings_agree(count, monkeypatch):
    values = [f"pay-{i}-{'é' * (i % 3)}" for i in range(count)]
    encoded = accounts_sql._text_array(values)
    assert _decode(encoded) == values
    monkeypatch.setattr(accounts_sql, "SMALL_TEXT_ARRAY", 0)  # numpy for every size
    assert accounts_sql._text_array(values) == encoded
    monkeypatch.setattr(accounts_sql, "SMALL_TEXT_ARRAY", 10**9)  # the join for every size
    assert accounts_sql._text_array(values) == encoded
