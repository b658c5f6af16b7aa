"""`Worker.step_aside`: when a replaced worker yields the CPU (no processes, no sockets)."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable

import pytest

from devserve import stepaside
from devserve.config import Config
from devserve.worker import Worker


def _worker_with_requests(count: int) -> tuple[Worker, list[asyncio.Event]]:
    """A Worker whose context holds `count` requests in flight, each until its event is set."""
    serving = Worker(Config(app="main:app"), [], emit=lambda _event: None)
    releases = [asyncio.Event() for _ in range(count)]
    tasks = {asyncio.ensure_future(release.wait()) for release in releases}
    serving._ctx = types.SimpleNamespace(tasks=tasks)  # type: ignore[assignment]
    return serving, releases


def test_an_idle_worker_yields_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    monkeypatch.setattr(stepaside, "yield_cpu", lambda: calls.append(None))

    async def scenario() -> None:
        serving, _ = _worker_with_requests(0)
        serving.step_aside()
        assert calls == [None]

    asyncio.run(scenario())


def test_requests_in_flight_are_answered_before_the_worker_yields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(stepaside, "yield_cpu", lambda: calls.append(None))
    monkeypatch.setattr(stepaside, "YIELD_AFTER_S", 30.0)

    async def scenario() -> None:
        serving, releases = _worker_with_requests(2)
        serving.step_aside()
        releases[0].set()
        await _settle()  # one request answered, one still in flight
        assert calls == []
        releases[1].set()
        await _settle()
        assert calls == [None]

    asyncio.run(scenario())


def test_a_request_that_never_ends_does_not_keep_the_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(stepaside, "yield_cpu", lambda: calls.append(None))
    monkeypatch.setattr(stepaside, "YIELD_AFTER_S", 0.05)

    async def scenario() -> None:
        serving, releases = _worker_with_requests(1)  # a stream: never released
        serving.step_aside()
        assert calls == []
        await asyncio.wait_for(_until(lambda: bool(calls)), 2)
        releases[0].set()

    asyncio.run(scenario())


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def _settle() -> None:
    """Let the tasks that just finished run their done callbacks (a few loop turns)."""
    for _ in range(3):
        await asyncio.sleep(0)
