"""devserve.inotify on tmp_path: what is reported, and when (Linux; every wait bounded).

"When" is proven with a long quiet step: with ``step`` at 30 s, a set that arrives within
the test's few seconds was reported because it was complete, not because a step passed.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from watchfiles import Change

from devserve import inotify
from devserve.inotify import EventsLost, Inotify, inotify_changes, parse_events
from devserve.poller import RawChanges

pytestmark = pytest.mark.skipif(not inotify.is_available(), reason="Linux only")

LONG_STEP_MS = 30_000
WAIT_S = 3.0


class Changes:
    """A running `inotify_changes` whose sets land in a queue."""

    def __init__(self) -> None:
        self.sets: asyncio.Queue[RawChanges] = asyncio.Queue()

    async def next(self) -> RawChanges:
        return await asyncio.wait_for(self.sets.get(), WAIT_S)

    async def assert_none_within(self, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.sets.get(), seconds)


@asynccontextmanager
async def changes(
    *paths: Path, recursive: bool = True, step_ms: int = LONG_STEP_MS
) -> AsyncIterator[Changes]:
    state, stop = Changes(), asyncio.Event()
    source = inotify_changes(
        *(str(p) for p in paths), watch_filter=None, debounce=60_000, step=step_ms,
        stop_event=stop, force_polling=False, recursive=recursive,
    )  # fmt: skip

    async def consume() -> None:
        async for raw in source:
            state.sets.put_nowait(raw)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)  # the generator sets its watches up to its first wait
    try:
        yield state
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_complete_write_is_reported_at_once(tmp_path: Path) -> None:
    target = tmp_path / "main.py"
    target.write_text("v = 1\n")

    async def scenario() -> None:
        async with changes(tmp_path) as seen:
            target.write_text("v = 2\n")  # open, truncate, write, close
            assert await seen.next() == {(Change.modified, str(target))}

    run(scenario)


def test_files_written_back_to_back_are_one_set(tmp_path: Path) -> None:
    # A checkout or a formatter: each file is complete on its own, but they are one change.
    paths = [tmp_path / f"mod{index:03d}.py" for index in range(30)]

    async def scenario() -> None:
        # Another process writes, as git or a formatter would (no GIL shared with the reader).
        script = "import sys\nfor p in sys.argv[1:]:\n    open(p, 'w').write('VALUE = 2\\n')"
        async with changes(tmp_path) as seen:
            writer = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, *(str(p) for p in paths)
            )
            assert await asyncio.wait_for(writer.wait(), WAIT_S) == 0
            assert {p for _, p in await seen.next()} == {str(p) for p in paths}

    run(scenario)


def test_a_file_still_open_for_writing_waits_until_it_is_closed(tmp_path: Path) -> None:
    target = tmp_path / "main.py"

    async def scenario() -> None:
        async with changes(tmp_path) as seen:
            with target.open("w") as file:
                file.write("half")
                file.flush()
                await seen.assert_none_within(0.3)
                file.write(" done\n")
            assert await seen.next() == {
                (Change.added, str(target)),
                (Change.modified, str(target)),
            }

    run(scenario)


def test_a_file_still_open_is_reported_after_one_quiet_step(tmp_path: Path) -> None:
    target = tmp_path / "log.py"

    async def scenario() -> None:
        async with changes(tmp_path, step_ms=20) as seen:
            with target.open("w") as file:
                file.write("x")
                file.flush()
                assert (Change.added, str(target)) in await seen.next()

    run(scenario)


def test_an_editors_rename_dance_is_one_set(tmp_path: Path) -> None:
    target, backup = tmp_path / "main.py", tmp_path / "main.py~"
    target.write_text("v = 1\n")

    async def scenario() -> None:
        async with changes(tmp_path) as seen:
            target.rename(backup)  # the file is gone for a moment: no set yet
            await seen.assert_none_within(0.3)
            target.write_text("v = 2\n")
            raw = await seen.next()
            assert (Change.added, str(target)) in raw
            assert (Change.deleted, str(target)) in raw

    run(scenario)


def test_a_new_directory_is_watched_and_its_early_files_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with changes(tmp_path, step_ms=20) as seen:
            package = tmp_path / "pkg" / "sub"
            package.mkdir(parents=True)
            (package / "early.py").write_text("x = 1\n")  # may land before the watch
            found: RawChanges = set()
            while (Change.added, str(package / "early.py")) not in found:
                found |= await seen.next()
            (package / "later.py").write_text("y = 1\n")
            while (Change.modified, str(package / "later.py")) not in found:
                found |= await seen.next()

    run(scenario)


def test_a_directory_moved_away_is_no_longer_reported(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "pkg").mkdir(parents=True)
    outside.mkdir()
    sentinel = project / "sentinel.py"

    async def scenario() -> None:
        async with changes(project) as seen:
            (project / "pkg").rename(outside / "pkg")
            assert await seen.next() == {(Change.deleted, str(project / "pkg"))}
            (outside / "pkg" / "moved.py").write_text("x = 1\n")
            sentinel.write_text("s = 1\n")
            assert await seen.next() == {
                (Change.added, str(sentinel)),
                (Change.modified, str(sentinel)),
            }

    run(scenario)


def test_a_planned_file_is_watched_for_its_name_only(tmp_path: Path) -> None:
    env, other = tmp_path / ".env", tmp_path / "other.py"
    env.write_text("A=1\n")

    async def scenario() -> None:
        async with changes(env, recursive=False) as seen:
            other.write_text("x = 1\n")
            env.write_text("A=2\n")
            assert await seen.next() == {(Change.modified, str(env))}

    run(scenario)


def test_a_non_recursive_plan_does_not_watch_subdirectories(tmp_path: Path) -> None:
    (tmp_path / "ignored").mkdir()
    sentinel = tmp_path / "main.py"

    async def scenario() -> None:
        async with changes(tmp_path, recursive=False) as seen:
            (tmp_path / "ignored" / "x.py").write_text("x = 1\n")
            sentinel.write_text("s = 1\n")
            assert await seen.next() == {
                (Change.added, str(sentinel)),
                (Change.modified, str(sentinel)),
            }

    run(scenario)


def test_a_vanished_directory_is_reported_to_the_caller(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(FileNotFoundError):
            async with changes(tmp_path / "gone", recursive=False) as seen:
                await seen.next()

    run(scenario)


def test_without_inotify_watchfiles_reports_the_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_watch_left(*_args: object) -> Inotify:
        raise OSError(28, "No space left on device")  # ENOSPC: max_user_watches reached

    monkeypatch.setattr(inotify, "_setup", no_watch_left)
    target = tmp_path / "main.py"
    target.write_text("v = 1\n")

    async def scenario() -> None:
        async with changes(tmp_path, step_ms=5) as seen:
            await asyncio.sleep(0.2)  # watchfiles' thread sets its watches up meanwhile
            target.write_text("v = 2\n")
            assert (Change.modified, str(target)) in await seen.next()

    run(scenario)


def test_an_overflowed_queue_raises_events_lost() -> None:
    watcher = Inotify()
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.close(watcher.fd)
    watcher.fd = read_fd
    try:
        os.write(write_fd, struct.pack("iIII", -1, inotify.IN_Q_OVERFLOW, 0, 0))
        with pytest.raises(EventsLost):
            watcher.read()
    finally:
        watcher.close()
        os.close(write_fd)


def test_parse_events_reads_names_and_padding() -> None:
    name = b"main.py\0\0\0\0\0\0\0\0\0"  # padded to 16 bytes, as the kernel does
    data = struct.pack("iIII", 1, inotify.IN_CLOSE_WRITE, 0, len(name)) + name
    data += struct.pack("iIII", 2, inotify.IN_DELETE_SELF, 0, 0)
    assert list(parse_events(data)) == [
        (1, inotify.IN_CLOSE_WRITE, "main.py"),
        (2, inotify.IN_DELETE_SELF, ""),
    ]


def test_change_of_maps_masks_to_watchfiles_changes() -> None:
    assert inotify.change_of(inotify.IN_CREATE) is Change.added
    assert inotify.change_of(inotify.IN_MOVED_TO | inotify.IN_ISDIR) is Change.added
    assert inotify.change_of(inotify.IN_MOVED_FROM) is Change.deleted
    assert inotify.change_of(inotify.IN_DELETE_SELF) is Change.deleted
    assert inotify.change_of(inotify.IN_CLOSE_WRITE) is Change.modified
    assert inotify.change_of(inotify.IN_ATTRIB) is Change.modified


def test_a_new_directory_beyond_the_watch_limit_raises_events_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_watch_left(_self: Inotify, path: str) -> list[str]:
        raise OSError(28, "No space left on device", path)

    async def scenario() -> None:
        with pytest.raises(EventsLost, match="cannot watch"):
            async with changes(tmp_path) as seen:
                monkeypatch.setattr(Inotify, "watch_tree", no_watch_left)
                (tmp_path / "pkg").mkdir()
                await seen.assert_none_within(0.5)

    run(scenario)
