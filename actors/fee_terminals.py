"""Terminals: simulated user terminals of a share of the accounts (a thin shell over
``gridfare.feecontrol.commands.TerminalLog``).

Each records every command it receives and applies it once per idempotency key. Faults are
injected per account: ``fail`` answers an error, ``slow`` answers only after the
executor's timeout (the command is applied late: the retry that follows is a duplicate).

``deliver_many`` is the head-end's bulk path: the commands of one executor fetch for this
terminal group in one call, each answered on its own (``applied``, ``duplicate``, or
``failed`` / ``late`` for the executor to retry), a late one applied after ``slow_s`` as
``deliver`` would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import ray

from gridfare.errors import FeeControlError
from gridfare.feecontrol.commands import TerminalLog


@ray.remote(num_cpus=0)
class Terminals:
    def __init__(self, slow_s: float = 5.0) -> None:
        self._log = TerminalLog()
        self._slow_s = slow_s

    async def deliver(self, command: Mapping[str, Any]) -> str:
        fault = self._log.fault(int(command["account_id"]))
        if fault == "fail":
            raise FeeControlError(f"terminal of account {command['account_id']}: refused")
        if fault == "slow":
            await asyncio.sleep(self._slow_s)
        return self._log.deliver(command).value

    async def deliver_many(self, commands: list[Mapping[str, Any]]) -> list[str]:
        answers = []
        for command in commands:
            fault = self._log.fault(int(command["account_id"]))
            if fault == "fail":
                answers.append("failed")
            elif fault == "slow":  # received now, answered (and applied) too late
                self._log.received.append(command["idempotency_key"])
                asyncio.get_running_loop().create_task(self._late(command))
                answers.append("late")
            else:
                answers.append(self._log.deliver(command).value)
        return answers

    async def _late(self, command: Mapping[str, Any]) -> None:
        await asyncio.sleep(self._slow_s)
        self._log.deliver(command)

    def inject(self, failures: Mapping[int, int] | None = None,
               delays: Mapping[int, int] | None = None) -> None:
        self._log.failures.update(failures or {})
        self._log.delays.update(delays or {})

    def applied(self) -> dict[str, dict[str, Any]]:
        return {key: dict(command) for key, command in self._log.applied.items()}

    def received(self) -> list[str]:
        return list(self._log.received)
