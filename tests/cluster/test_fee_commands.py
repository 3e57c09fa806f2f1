"""Commands through a real NATS JetStream to simulated terminals on a real Ray cluster."""

from __future__ import annotations

import asyncio

import pytest
import ray

from actors.fee_executor import CommandExecutor, wait_drained
from actors.fee_terminals import Terminals
from backends.nats import EmbeddedNats, connect, ensure_streams, publish
from tests.fee_helpers import manual_queue, stream_messages


@pytest.fixture
def nats_server(tmp_path):
    server = EmbeddedNats.start(tmp_path)
    yield server
    server.stop()


def _publish(url: str, commands: list[dict]) -> tuple[int, int]:
    async def go():
        nc = await connect(url)
        js = nc.jetstream()
        await ensure_streams(js)
        result = await publish(js, "feecontrol.cmd.test",
                               [(c["idempotency_key"], c) for c in commands])
        await nc.close()
        return result

    return asyncio.run(go())


def _commands(n: int, action: str = "warn") -> list[dict]:
    return [{"idempotency_key": f"{action}:{i}:20261102T090000", "account_id": i,
             "action": action, "customer_kind": "residential", "balance_fen": -i,
             "run_date": "2026-11-02"} for i in range(n)]


def test_every_command_is_applied_once_despite_failures_and_timeouts(ray_cluster,
                                                                     nats_server):
    terminals = [Terminals.remote(slow_s=1.5) for _ in range(2)]
    # Account 3 refuses twice, account 4 answers too late once, account 5 never answers.
    ray.get(terminals[1].inject.remote(failures={3: 2}, delays={5: 99}))
    ray.get(terminals[0].inject.remote(delays={4: 1}))
    commands = _commands(40)
    assert _publish(nats_server.url, commands) == (40, 0)
    assert _publish(nats_server.url, commands[:10]) == (0, 10)  # a rerun: de-duplicated
    executor = CommandExecutor.remote(nats_server.url, terminals, attempts=3, backoff_s=0.1,
                                      timeout_s=0.5)
    ray.get(executor.start.remote())
    asyncio.run(wait_drained(executor, 60))
    applied = {}
    for terminal in terminals:
        applied.update(ray.get(terminal.applied.remote()))
    keys = {c["idempotency_key"] for c in commands}
    manual = {c["idempotency_key"] for c in manual_queue(nats_server.url)}
    # Account 5's terminal took the command late (applied) but never in time: manual.
    assert keys == set(applied) | manual
    assert manual == {"warn:5:20261102T090000"}
    received = [k for t in terminals for k in ray.get(t.received.remote())]
    assert set(received) == keys  # each reached its terminal (some more than once)
    assert len(stream_messages(nats_server.url)) == 40
    stats = ray.get(executor.stats.remote())
    assert stats["retries"] >= 3 and stats["manual"] == 1
    ray.kill(executor)
    for terminal in terminals:
        ray.kill(terminal)


def test_commands_survive_a_nats_restart_and_an_executor_kill(ray_cluster, nats_server):
    terminals = [Terminals.remote()]
    commands = _commands(300, "remind")
    assert _publish(nats_server.url, commands[:150]) == (150, 0)
    executor = CommandExecutor.options(max_restarts=0).remote(nats_server.url, terminals,
                                                              timeout_s=1.0)
    ray.get(executor.start.remote())
    nats_server.restart()  # a crash: JetStream recovers the stream and the consumer
    assert _publish(nats_server.url, commands) == (150, 150)
    ray.kill(executor)
    executor = CommandExecutor.remote(nats_server.url, terminals, timeout_s=1.0)
    ray.get(executor.start.remote())
    asyncio.run(wait_drained(executor, 60))
    applied = ray.get(terminals[0].applied.remote())
    assert set(applied) == {c["idempotency_key"] for c in commands}
    ray.kill(executor)
    ray.kill(terminals[0])
