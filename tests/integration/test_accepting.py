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


async def serve(listener: socket.socket) -> asyncio.Server:
    return await asyncio.get_running_loop().create_server(Counting, sock=listener.dup())


def accepting_on(listener: socket.socket) -> Accepting:
    return Accepting([lambda: serve(listener)])


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

        async def flaky() -> asyncio.Server:
            attempts.append(1)
            if len(attempts) == 2:  # the first reopen fails
                raise OSError(24, "Too many open files")
            return await serve(listener)

        accepting = Accepting([flaky])
        await accepting.open()
        accepting.hold(0.05)
        _, writer = await connect(listener)
        await asyncio.wait_for(accepted.get(), WAIT_S)  # accepted after the retry
        assert len(attempts) == 3
        writer.close()
        accepting.close()

    run(scenario)


class PausableAcceptor:
    """Records what `Accepting` asks of a TLS-style acceptor."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def close(self) -> None:
        self.calls.append("close")


def test_a_pausable_acceptor_is_paused_not_closed() -> None:
    # Closing a TLS acceptor drops the connections still in their handshake: a hold must not.
    async def scenario(listener: socket.socket, accepted: asyncio.Queue[None]) -> None:
        tls = PausableAcceptor()
        started: list[str] = []

        async def start_tls() -> PausableAcceptor:
            started.append("tls")
            return tls

        accepting = Accepting([start_tls, lambda: serve(listener)])
        await accepting.open()
        accepting.hold(0.05)
        assert tls.calls == ["pause"]
        _, writer = await connect(listener)
        await asyncio.wait_for(accepted.get(), WAIT_S)  # the plain listener was restarted
        assert tls.calls == ["pause", "resume"]
        assert started == ["tls"]  # started once: resumed, not made again
        accepting.close()
        assert tls.calls == ["pause", "resume", "close"]
        writer.close()

    run(scenario)
