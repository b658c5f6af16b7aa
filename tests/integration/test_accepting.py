"""devserve.stepaside.Accepting over a real loopback listener: hold, resume, close."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from devserve.stepaside import Accepting

WAIT_S = 3.0


class Counting(asyncio.Protocol):
    """Counts the connections this process accepted."""

    accepted: asyncio.Queue[None]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.accepted.put_nowait(None)
        transport.close()


def run(test: Callable[[socket.socket, asyncio.Queue[None]], Awaitable[None]]) -> None:
    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        accepted: asyncio.Queue[None] = asyncio.Queue()
        Counting.accepted = accepted
        try:
            await asyncio.wait_for(test(listener, accepted), 15)
        finally:
            listener.close()

    asyncio.run(main())


def accepting_on(listener: socket.socket) -> Accepting:
    async def start() -> list[asyncio.Server]:
        loop = asyncio.get_running_loop()
        return [await loop.create_server(Counting, sock=listener.dup())]

    return Accepting(start)  # type: ignore[arg-type]


async def connect(listener: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*listener.getsockname()[:2])


async def assert_not_accepted(accepted: asyncio.Queue[None], seconds: float) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(accepted.get(), seconds)


def test_a_held_worker_accepts_again_when_the_hold_ends() -> None:
    async def scenario(listener: socket.socket, accepted: asyncio.Queue[None]) -> None:
        accepting = accepting_on(listener)
        await accepting.open()
        accepting.hold(0.5)
        assert accepting.is_held
        _, writer = await connect(listener)  # completes: the kernel's backlog holds it
        await assert_not_accepted(accepted, 0.3)
        await asyncio.wait_for(accepted.get(), WAIT_S)  # the hold ended: accepted now
        assert not accepting.is_held
        writer.close()
        accepting.close()

    run(scenario)


def test_holding_again_extends_the_hold() -> None:
    async def scenario(listener: socket.socket, accepted: asyncio.Queue[None]) -> None:
        accepting = accepting_on(listener)
        await accepting.open()
        accepting.hold(0.3)
        await asyncio.sleep(0.2)  # part of the first hold passes (what the test is about)
        accepting.hold(0.5)
        _, writer = await connect(listener)
        await assert_not_accepted(accepted, 0.4)  # past the first hold's end
        await asyncio.wait_for(accepted.get(), WAIT_S)
        writer.close()
        accepting.close()

    run(scenario)


def test_closing_during_a_hold_never_accepts_again() -> None:
    async def scenario(listener: socket.socket, accepted: asyncio.Queue[None]) -> None:
        accepting = accepting_on(listener)
        await accepting.open()
        accepting.hold(0.2)
        accepting.close()
        assert not accepting.is_held
        _, writer = await connect(listener)
        await assert_not_accepted(accepted, 0.5)
        accepting.hold(0.1)  # after close: nothing happens
        await assert_not_accepted(accepted, 0.3)
        writer.close()

    run(scenario)


def test_a_hold_after_the_last_one_ended_holds_again() -> None:
    async def scenario(listener: socket.socket, accepted: asyncio.Queue[None]) -> None:
        accepting = accepting_on(listener)
        await accepting.open()
        accepting.hold(0.01)
        await asyncio.sleep(0.05)  # the hold ends; reopening runs
        accepting.hold(0.5)
        _, writer = await connect(listener)
        await assert_not_accepted(accepted, 0.3)
        await asyncio.wait_for(accepted.get(), WAIT_S)
        writer.close()
        accepting.close()

    run(scenario)


def test_a_failed_reopen_is_tried_again() -> None:
    async def scenario(listener: socket.socket, accepted: asyncio.Queue[None]) -> None:
        attempts: list[int] = []
        inner = accepting_on(listener)

        async def flaky() -> list[asyncio.Server]:
            attempts.append(1)
            if len(attempts) == 2:
                raise OSError(24, "Too many open files")
            return await inner._start()  # type: ignore[return-value]

        accepting = Accepting(flaky)  # type: ignore[arg-type]
        await accepting.open()
        accepting.hold(0.05)
        _, writer = await connect(listener)
        await asyncio.wait_for(accepted.get(), WAIT_S)  # accepted after the retry
        assert len(attempts) == 3
        writer.close()
        accepting.close()

    run(scenario)
