"""Fee control's account state (``FEE_STATE``) in memory, keyed by account id.

The continuous mode keeps the state of every account here for the life of the job, so a
feed batch reads the rows of the accounts it touched and writes back only those: both cost
O(rows touched), not O(accounts). The same table resolves the state on disk (a base plus
the deltas written after it, see ``datasets.feed.FeeControlStore``), so the job's memory and
the files are merged by one rule: a later row of an account replaces the earlier one whole.

Columns are held as numpy arrays (values plus a validity mask for nullable ones); the
``state`` string column is dictionary-encoded, so selecting the accounts in one state is an
integer compare.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.schemas import FEE_STATE

__all__ = ["StateTable"]

# How a column is held in numpy: timestamps as int64 seconds, dates as int32 days.
_STORAGE = {pa.timestamp("s"): pa.int64(), pa.date32(): pa.int32()}


class StateTable:
    """The latest ``FEE_STATE`` row of each account; ``apply`` lays newer rows over it."""

    def __init__(self, table: pa.Table | None = None) -> None:
        table = FEE_STATE.empty_table() if table is None else table.cast(FEE_STATE)
        ids = table["account_id"].to_numpy()
        order = np.argsort(ids, kind="stable")
        if len(ids) and np.any(ids[order][1:] == ids[order][:-1]):
            # The last row of an account wins, as in ``apply``.
            keep = _last_of_each(ids)
            table = table.take(pa.array(keep))
            ids = table["account_id"].to_numpy()
            order = np.argsort(ids, kind="stable")
        table = table.take(pa.array(order))
        self._ids = ids[order]
        self._dictionary: list[str] = []
        self._values: dict[str, np.ndarray] = {}
        self._valid: dict[str, np.ndarray] = {}
        for field in FEE_STATE:
            if field.name == "account_id":
                continue
            values, valid = self._encode(field, table[field.name])
            self._values[field.name], self._valid[field.name] = values, valid

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def ids_in_state(self, state: str) -> np.ndarray:
        """The accounts whose ``state`` column is ``state``, ascending."""
        if state not in self._dictionary:
            return np.empty(0, np.int64)
        return self._ids[self._values["state"] == self._dictionary.index(state)]

    def rows(self, account_ids: np.ndarray) -> pa.Table:
        """The rows of those of ``account_ids`` that have a state, ascending by id."""
        wanted = np.unique(np.asarray(account_ids, dtype=np.int64))
        position, found = self._lookup(wanted)
        return self._table(wanted[found], position[found])

    def to_table(self) -> pa.Table:
        """Every account's row, ascending by id."""
        return self._table(self._ids, np.arange(len(self._ids)))

    def apply(self, delta: pa.Table) -> None:
        """Lay ``delta``'s rows (``FEE_STATE``) over the table: each replaces its account's
        row whole, or adds it; within ``delta`` the last row of an account wins."""
        if not delta.num_rows:
            return
        delta = delta.cast(FEE_STATE)
        ids = delta["account_id"].to_numpy()
        if len(np.unique(ids)) != len(ids):
            delta = delta.take(pa.array(_last_of_each(ids)))
            ids = delta["account_id"].to_numpy()
        position, found = self._lookup(ids)
        if not found.all():  # new accounts: empty rows inserted in order, filled below
            fresh = np.sort(ids[~found])
            at = np.searchsorted(self._ids, fresh)
            self._ids = np.insert(self._ids, at, fresh)
            for name, values in self._values.items():
                self._values[name] = np.insert(values, at, values.dtype.type(0))
                self._valid[name] = np.insert(self._valid[name], at, False)
            position, found = self._lookup(ids)
        for field in FEE_STATE:
            if field.name == "account_id":
                continue
            values, valid = self._encode(field, delta[field.name])
            self._values[field.name][position] = values
            self._valid[field.name][position] = valid

    def _lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(self._ids):
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        position = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        return position, self._ids[position] == ids

    def _encode(self, field: pa.Field, column: pa.ChunkedArray) -> tuple[np.ndarray,
                                                                         np.ndarray]:
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        valid = (np.ones(len(column), bool) if not column.null_count
                 else column.is_valid().to_numpy(zero_copy_only=False))
        if pa.types.is_string(field.type):
            encoded = column.dictionary_encode()
            words = encoded.dictionary.to_pylist()
            for word in words:
                if word not in self._dictionary:
                    self._dictionary.append(word)
            codes = np.array([self._dictionary.index(w) for w in words], np.int32)
            indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
            return (codes[indices] if len(codes) else np.zeros(len(column), np.int32)), valid
        storage = _STORAGE.get(field.type, field.type)
        values = column.cast(storage)
        if values.null_count:
            values = values.fill_null(0)
        return values.to_numpy(zero_copy_only=False).copy(), valid

    def _table(self, ids: np.ndarray, position: np.ndarray) -> pa.Table:
        columns: dict[str, pa.Array] = {"account_id": pa.array(ids, pa.int64())}
        for field in FEE_STATE:
            if field.name == "account_id":
                continue
            values = self._values[field.name][position]
            valid = self._valid[field.name][position]
            mask = None if valid.all() else ~valid
            if pa.types.is_string(field.type):
                dictionary = pa.array(self._dictionary, pa.string())
                array = pc.take(dictionary, pa.array(values, pa.int32()))
                columns[field.name] = (array if mask is None else
                                       pc.if_else(pa.array(valid), array,
                                                  pa.scalar(None, pa.string())))
                continue
            storage = _STORAGE.get(field.type, field.type)
            columns[field.name] = pa.array(values, storage, mask=mask).cast(field.type)
        return pa.table(columns, schema=FEE_STATE)


def _last_of_each(ids: np.ndarray) -> np.ndarray:
    """Row positions keeping the last row of each id, in their original order."""
    reverse = ids[::-1]
    _, first = np.unique(reverse, return_index=True)
    return np.sort(len(ids) - 1 - first)
