"""Shared pieces of the fee-control cluster and fault tests."""

from __future__ import annotations

import asyncio
import json

from backends.nats import COMMANDS, MANUAL, connect


def stream_messages(url: str, stream: str = COMMANDS) -> list[dict]:
    """Every message stored in ``stream`` (decoded), in order."""

    async def read() -> list[dict]:
        nc = await connect(url)
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            message = await js.get_msg(stream, seq)
            out.append(json.loads(message.data))
        await nc.close()
        return out

    return asyncio.run(read())


def manual_queue(url: str) -> list[dict]:
    return stream_messages(url, MANUAL)
