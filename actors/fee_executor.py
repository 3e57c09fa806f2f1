"""CommandExecutor: takes commands from JetStream and delivers them to the terminals.

A durable push consumer (``executor-push``) with explicit acks on ``FEE_COMMANDS``: a command is
acknowledged only after a terminal took it (or after it was put on the manual-work queue),
so an executor that dies, a NATS server restart or a terminal that times out loses nothing:
the unacknowledged command is delivered again (``ack_wait``), and the terminal's
idempotency key makes a second delivery harmless. Failed deliveries are nak'ed with the
backoff of ``gridfare.feecontrol.commands.retry``; after the last attempt the command goes to
``FEE_MANUAL`` (``Nats-Msg-Id`` = its key) and is acknowledged.

The commands of one fetch go to each terminal in one call (``Terminals.deliver_many``), each
answered on its own: one actor call per command cost about a millisecond each, which for a
day's commands of 1.5 M accounts was most of the run.

The server pushes up to ``4 * batch`` unacknowledged commands to the subscription's
callback, which only queues them; the executor takes up to ``batch`` at a time. (nats-py's
pull ``fetch`` waits on each message with its own timeout: draining 100,000 commands took
17-23 s that way against 10 s pushed, with each command's answer settled in turn rather
than in a gather of tasks, in one run on the loaded machine.) The consumer was the pull
consumer ``executor`` before; that one, if a data root still has it, can be deleted.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import ray
from ray.util.metrics import Counter

from backends.nats import COMMANDS, MANUAL, connect, ensure_streams, publish
from gridfare.feecontrol.commands import Verdict, retry

DURABLE = "executor-push"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class CommandExecutor:
    def __init__(self, url: str, terminals: list, attempts: int = 4, backoff_s: float = 0.5,
                 timeout_s: float = 2.0, batch: int = 1024) -> None:
        self._url = url
        self._terminals = terminals
        self._attempts, self._backoff_s = attempts, backoff_s
        self._timeout_s, self._batch = timeout_s, batch
        self._task: asyncio.Task | None = None
        self._stats = {"delivered": 0, "duplicates": 0, "retries": 0, "manual": 0}
        self._sent = Counter("gridfare_fee_commands_delivered",
                             description="commands taken by terminals, by outcome",
                             tag_keys=("outcome",))

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stats(self) -> dict[str, int]:
        return dict(self._stats)

    async def pending(self) -> int:
        """Commands not yet acknowledged (waiting or in flight)."""
        nc = await connect(self._url)
        try:
            info = await nc.jetstream().consumer_info(COMMANDS, DURABLE)
            return int(info.num_pending + info.num_ack_pending)
        finally:
            await nc.close()

    async def _run(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await connect(self._url, name="gridfare-fee-executor")
        js = nc.jetstream()
        await ensure_streams(js)
        config = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT,
                                ack_wait=max(self._timeout_s * 3, 5.0),
                                max_deliver=-1, max_ack_pending=4 * self._batch)
        waiting: list = []
        ready = asyncio.Event()

        async def take(message) -> None:  # the subscription's callback: keep it short
            waiting.append(message)
            ready.set()

        subscription = None
        while True:
            try:
                if subscription is None:
                    subscription = await js.subscribe(
                        "feecontrol.cmd.>", durable=DURABLE, stream=COMMANDS, cb=take,
                        manual_ack=True, config=config)
                await asyncio.wait_for(ready.wait(), 1)
            except asyncio.CancelledError:
                raise
            except Exception:  # nothing came within the second, or a server restarting
                await asyncio.sleep(0.01 if subscription is not None else 0.1)
                continue
            messages = waiting[:self._batch]
            del waiting[:len(messages)]
            if not waiting:
                ready.clear()
            await self._deliver(js, messages)

    async def _deliver(self, js: Any, messages: list) -> None:
        """Each terminal's share of ``messages`` in one call; then ack, retry or move each."""
        shares: dict[int, list[tuple[Any, dict]]] = {}
        for message in messages:
            command = json.loads(message.data)
            index = int(command["account_id"]) % len(self._terminals)
            shares.setdefault(index, []).append((message, command))

        async def one(index: int, share: list[tuple[Any, dict]]) -> None:
            try:
                answers = await asyncio.wait_for(self._terminals[index].deliver_many.remote(
                    [command for _, command in share]), self._timeout_s)
            except Exception:  # the call itself failed or timed out: every one is retried
                answers = ["failed"] * len(share)
            for (message, command), answer in zip(share, answers, strict=True):
                await self._settle(js, message, command, answer)

        await asyncio.gather(*(one(index, share) for index, share in shares.items()))

    async def _settle(self, js: Any, message: Any, command: dict, answer: str) -> None:
        if answer not in ("applied", "duplicate"):
            verdict, delay = retry(message.metadata.num_delivered, self._attempts,
                                   self._backoff_s)
            try:
                if verdict is Verdict.MANUAL:
                    await publish(js, f"feecontrol.manual.{command['action']}",
                                  [(command["idempotency_key"], command)])
                    await message.ack()
                    self._count("manual")
                else:
                    await message.nak(delay=delay)
                    self._count("retries")
            except Exception:
                pass  # unacknowledged: redelivered after ack_wait
            return
        try:
            await message.ack()
        except Exception:
            return  # redelivered later; the terminal answers it as a duplicate
        self._count("delivered" if answer == "applied" else "duplicates")

    def _count(self, outcome: str) -> None:
        self._stats[outcome] += 1
        self._sent.inc(1, tags={"outcome": outcome})


async def wait_drained(executor, timeout_s: float = 60.0) -> None:
    """Until every published command is acknowledged (a terminal's or the manual queue's)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await executor.pending.remote() == 0:
                return
        except Exception:
            pass  # the consumer may not exist yet, or NATS is restarting
        await asyncio.sleep(0.2)
    raise TimeoutError(f"commands not drained in {timeout_s} s")


__all__ = ["DURABLE", "MANUAL", "CommandExecutor", "wait_drained"]
