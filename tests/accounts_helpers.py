"""Start and end an accounts store on the session cluster (tests share these)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path


def store_dir() -> Path:
    """A fresh directory for a store, outside pytest's own temp tree: PostgreSQL runs as an
    unprivileged user that must traverse the path, and every pytest session on the machine
    resets /tmp/pytest-of-<user> to 0700."""
    return Path(tempfile.mkdtemp(prefix="gridfare-store-"))


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def start_store(root, retry_s: float = 20.0, **config):
    from actors.accounts_client import AccountsClient

    return AccountsClient.start(str(root), retry_s=retry_s, **config)


def stop_store(root) -> None:
    from actors.accounts_client import remove_store

    remove_store(str(root))


@contextmanager
def running_store(**config):
    """A store started in a fresh directory; closed, stopped and removed afterwards."""
    root = store_dir()
    try:
        client = start_store(root / "store", **config)
        yield client
        client.close()
    finally:
        stop_store(root / "store")
        remove_dir(root)


def wait_for(condition, timeout_s: float = 60.0, every_s: float = 0.2, what: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")


class LoadThreads:
    """A steady write load: one thread per worker, each running ``_run(worker)`` until
    the ``with`` block that started them ends."""

    join_s = 60.0

    def _threads_for(self, workers) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(w,), daemon=True)
                         for w in workers]

    def _run(self, worker) -> None:
        raise NotImplementedError

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(self.join_s)


class PaymentLoad(LoadThreads):
    """Writers paying into their own accounts with unique keys until stopped; each keeps
    the keys whose payment was acknowledged, and the errors it saw."""

    def __init__(self, client, accounts: list[int], amount_fen: int = 1) -> None:
        self.client = client
        self.accounts = accounts
        self.amount_fen = amount_fen
        self.acked: dict[int, list[str]] = {a: [] for a in accounts}
        self.errors: list[str] = []
        self._threads_for(accounts)

    def _run(self, account: int) -> None:
        n = 0
        while not self._stop.is_set():
            key = f"load-{account}-{n}"
            try:
                self.client.payment(account, self.amount_fen, key)
                self.acked[account].append(key)
            except Exception as exc:
                self.errors.append(f"{key}: {type(exc).__name__}: {exc}")
            n += 1

    def count(self) -> int:
        return sum(len(keys) for keys in self.acked.values())
