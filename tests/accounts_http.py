"""A small HTTP client for the accounts service in tests: JSON in and out, and a retry of
5xx answers and broken connections with the same body (so the same idempotency key)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tests.accounts_helpers import LoadThreads, remove_dir, start_store, stop_store, store_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def haproxy_processors(retry_s: float | None = None) -> Iterator[tuple]:
    """A store and its processors in HAProxy mode (the shipped ingress) on the session
    cluster, ``(url, port, store, client)``; ``retry_s`` for both the store's client and
    the processors (None: their defaults). Serve is stopped after, and waited for, so the
    next module's ``serve.start`` is a new one."""
    from services.accounts import ProcessorConfig, start_processors
    from services.haproxy import stop_serve

    retry = {} if retry_s is None else {"retry_s": retry_s}
    root = store_dir()
    store = root / "store"
    port = free_port()
    try:
        client = start_store(store, **retry)
        # HeadOnly: the session's Ray nodes share 127.0.0.1, and each node's HAProxy would
        # bind the same port. One transaction in flight per replica, so that a burst
        # queues behind it and is coalesced
        url = start_processors(str(store), processors=1, spares=1, port=port,
                               config=ProcessorConfig(in_flight=1, max_batch=64),
                               haproxy=True, haproxy_drain_s=1.0, proxy_location="HeadOnly",
                               **retry)
        yield url, port, str(store), client
        client.close()
    finally:
        stop_serve(port)
        stop_store(store)
        remove_dir(root)


def call(url: str, method: str, path: str, body=None, raw: bytes | None = None,
         timeout: float = 30.0) -> tuple[int, object]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                        else None)
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"error": "NotJSON", "message": text.decode(errors="replace")}


def call_until_answered(url, method, path, body=None, deadline_s: float = 60.0):
    """Retry 5xx and connection errors with the same request until a 2xx/4xx answer."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            status, answer = call(url, method, path, body)
            if status < 500:
                return status, answer
        except (OSError, urllib.error.URLError) as exc:
            status, answer = 599, {"error": type(exc).__name__}
        if time.monotonic() > deadline:
            return status, answer
        time.sleep(0.05)


class HttpPaymentLoad(LoadThreads):
    """Threads paying 1 fen into their own accounts over HTTP with unique keys; a request
    is retried with its key until answered, and counted failed if never answered."""

    join_s = 90.0

    def __init__(self, url: str, accounts: list[int]) -> None:
        self.url = url
        self.acked: dict[int, list[str]] = {a: [] for a in accounts}
        self.failed: list[str] = []
        self.retried = 0
        self._threads_for(accounts)

    def _run(self, account: int) -> None:
        n = 0
        while not self._stop.is_set():
            key = f"http-{account}-{n}"
            status, answer = call_until_answered(
                self.url, "POST", f"/accounts/{account}/payments",
                {"amount_fen": 1, "key": key})
            if status == 200:
                self.acked[account].append(key)
                self.retried += bool(answer.get("replayed"))
            else:
                self.failed.append(f"{key}: {status} {answer}")
            n += 1

    def count(self) -> int:
        return sum(len(v) for v in self.acked.values())
