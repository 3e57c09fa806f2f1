"""The embedded store's directory: its configuration, the coordinator's record, and one
home per replica. Every file is replaced atomically (write, fsync, rename, fsync the
directory), so a crash leaves the old record or the new one, never half of one.

    <root>/store.json               StoreConfig, written when the store is created
    <root>/coordinator.json         CoordinatorRecord: epoch, primary, phase
    <root>/replicas/<name>/         replica.json (its port and upstream), pgdata/, postgres.log
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from gridfare.errors import ConfigError, StoreError
from gridfare.store.config import StoreConfig
from gridfare.store.failover import CoordinatorRecord

__all__ = ["StoreRoot", "write_json"]


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"{path}: cannot write: {exc}") from exc


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read: {exc}") from exc


class StoreRoot:
    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root).resolve()

    @property
    def suffix(self) -> str:
        """Names this store's actors apart from another store's on the same cluster."""
        return hashlib.sha256(str(self.path).encode()).hexdigest()[:10]

    def config(self) -> StoreConfig | None:
        data = _read_json(self.path / "store.json")
        if data is None:
            return None
        try:
            return StoreConfig.from_mapping(data)
        except TypeError as exc:
            raise ConfigError(f"{self.path / 'store.json'}: {exc}") from exc

    def write_config(self, config: StoreConfig) -> None:
        write_json(self.path / "store.json", config.to_dict())

    def record(self) -> CoordinatorRecord | None:
        data = _read_json(self.path / "coordinator.json")
        return None if data is None else CoordinatorRecord.from_dict(data)

    def write_record(self, record: CoordinatorRecord) -> None:
        write_json(self.path / "coordinator.json", record.to_dict())

    def replica_home(self, name: str) -> Path:
        return self.path / "replicas" / name

    def replica_state(self, name: str) -> dict:
        return _read_json(self.replica_home(name) / "replica.json") or {}

    def write_replica_state(self, name: str, state: dict) -> None:
        write_json(self.replica_home(name) / "replica.json", state)
