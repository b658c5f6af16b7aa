"""`watch_changes` against the real OS watchers on tmp_path: inotify, watchfiles/notify, polling.

Every test runs with both native watchers (devserve's inotify reader, and watchfiles, its
fallback), the `native` fixture.

Every wait is bounded with `asyncio.wait_for`. "Nothing happened" is proven with a sentinel:
after the edits that must be ignored, one real edit is made, and the next batch must hold only
that edit (an ignored edit would show up in it or in an earlier batch). Where a test must also
let a quiet period pass, it waits `QUIET_S` (the watcher's step plus a generous margin) and says so.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import watchfiles

from devserve.inotify import inotify_changes
from devserve.mounts import PollingDecision
from devserve.poller import RawChanges, poll_changes
from devserve.watch import AwatchFunction, ChangeBatch, WatchSettings, watch_changes
from devserve.watchplan import WatchPlan

DELAY_MS = 50
QUIET_S = DELAY_MS / 1000 + 0.5  # the step plus margin for the watcher thread and hashing
BATCH_TIMEOUT_S = 5.0
NATIVE: dict[str, AwatchFunction] = {"inotify": inotify_changes, "watchfiles": watchfiles.awatch}


class Watching:
    """A running `watch_changes` whose batches land in a queue."""

    native = "inotify"  # the OS watcher when not polling: a key of NATIVE (see `native`)

    def __init__(self, *, should_poll: bool) -> None:
        self.should_poll = should_poll
        self.batches: asyncio.Queue[ChangeBatch] = asyncio.Queue()
        self.plans: list[WatchPlan] = []
        self.watched: list[tuple[tuple[str, ...], bool]] = []
        self.ready = asyncio.Event()

    def record_plan(self, plan: WatchPlan) -> None:
        self.plans.append(plan)
        self.ready.set()

    def awatch(
        self,
        *paths: str,
        watch_filter: None,
        debounce: int,
        step: int,
        stop_event: asyncio.Event,
        force_polling: bool,
        recursive: bool,
    ) -> AsyncIterator[RawChanges]:
        self.watched.append((paths, recursive))
        source = poll_changes if self.should_poll else NATIVE[self.native]
        return source(
            *paths,
            watch_filter=watch_filter,
            debounce=debounce,
            step=step,
            stop_event=stop_event,
            force_polling=force_polling,
            recursive=recursive,
        )

    async def next_batch(self) -> ChangeBatch:
        return await asyncio.wait_for(self.batches.get(), BATCH_TIMEOUT_S)

    async def assert_quiet(self) -> None:
        await asyncio.sleep(QUIET_S)  # letting a quiet period pass is the point here
        assert self.batches.empty(), self.batches.get_nowait()


@asynccontextmanager
async def watching(
    root: Path, *, should_poll: bool = False, **settings: object
) -> AsyncIterator[Watching]:
    state = Watching(should_poll=should_poll)
    stop = asyncio.Event()
    config = WatchSettings(dirs=(root,), delay_ms=DELAY_MS, **settings)  # type: ignore[arg-type]

    async def consume() -> None:
        async for batch in watch_changes(
            config,
            stop_event=stop,
            awatch=state.awatch,
            polling=PollingDecision(should_poll, "test"),
            on_watching=state.record_plan,
        ):
            state.batches.put_nowait(batch)

    task = asyncio.ensure_future(consume())
    try:
        await asyncio.wait_for(state.ready.wait(), BATCH_TIMEOUT_S)
        yield state
    finally:
        stop.set()
        await asyncio.wait_for(task, BATCH_TIMEOUT_S)


@pytest.fixture(autouse=True, params=sorted(NATIVE))
def native(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test with each native watcher."""
    monkeypatch.setattr(Watching, "native", request.param)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def make_project(tmp_path: Path) -> Path:
    root = tmp_path.resolve() / "proj"
    for directory in (".venv/lib", "__pycache__", ".git/objects", "node_modules/pkg", "app"):
        (root / directory).mkdir(parents=True)
    (root / "app.py").write_text("x = 1\n")
    (root / "app" / "views.py").write_text("v = 1\n")
    (root / ".gitignore").write_text("generated/\n*.local.py\n")
    (root / "generated").mkdir()
    return root


def test_an_edit_yields_one_batch(tmp_path: Path) -> None:
    root = make_project(tmp_path)

    async def scenario() -> None:
        async with watching(root) as watch:
            (root / "app.py").write_text("x = 2\n")
            batch = await watch.next_batch()
            assert batch.paths == ("app.py",)
            assert not batch.dependencies_changed
            await watch.assert_quiet()

    run(scenario)


def test_ignored_directories_are_never_registered(tmp_path: Path) -> None:
    root = make_project(tmp_path)

    async def scenario() -> None:
        async with watching(root) as watch:
            ((paths, is_recursive),) = watch.watched
            assert not is_recursive
            assert sorted(paths) == sorted(str(root / d) for d in ("", "app"))

    run(scenario)


def test_identical_content_yields_nothing(tmp_path: Path) -> None:
    root = make_project(tmp_path)

    async def scenario() -> None:
        async with watching(root) as watch:
            (root / "app.py").write_text("x = 1\n")
            tmp = root / "app" / "views.py.tmp"  # an editor's write-rename save, same bytes
            tmp.write_text("v = 1\n")
            os.replace(tmp, root / "app" / "views.py")
            await watch.assert_quiet()
            (root / "app" / "views.py").write_text("v = 2\n")
            assert (await watch.next_batch()).paths == (os.path.join("app", "views.py"),)

    run(scenario)


def test_two_hundred_files_at_once_yield_one_batch(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    names = [f"m{i:03}.py" for i in range(200)]
    for name in names:
        (root / "app" / name).write_text("a = 1\n")

    async def scenario() -> None:
        async with watching(root) as watch:
            for name in names:
                (root / "app" / name).write_text("a = 2\n")
            batch = await watch.next_batch()
            assert batch.paths == tuple(os.path.join("app", name) for name in names)
            assert batch.raw_count >= 200
            await watch.assert_quiet()

    run(scenario)


def test_edits_in_ignored_places_yield_nothing(tmp_path: Path) -> None:
    root = make_project(tmp_path)

    async def scenario() -> None:
        async with watching(root) as watch:
            for rel in (
                ".venv/lib/site.py", "__pycache__/app.cpython-311.pyc", ".git/objects/x.py",
                "node_modules/pkg/index.py", "generated/out.py", "app/secret.local.py",
                "app/.views.py.swp", "app/views.py~", "README.md",
            ):  # fmt: skip
                (root / rel).write_text("ignored = True\n")
            (root / "app.py").write_text("x = 3\n")  # the sentinel
            assert (await watch.next_batch()).paths == ("app.py",)

    run(scenario)


@pytest.mark.parametrize("should_poll", [False, True], ids=["native", "polling"])
def test_new_files_yield_batches_even_in_new_directories(tmp_path: Path, should_poll: bool) -> None:
    root = make_project(tmp_path)

    async def scenario() -> None:
        async with watching(root, should_poll=should_poll) as watch:
            (root / "new.py").write_text("n = 1\n")
            assert (await watch.next_batch()).paths == ("new.py",)
            (root / "pkg" / "sub").mkdir(parents=True)
            (root / "pkg" / "sub" / "mod.py").write_text("m = 1\n")
            assert (await watch.next_batch()).paths == (os.path.join("pkg", "sub", "mod.py"),)
            assert str(root / "pkg" / "sub") in watch.watched[-1][0]
            (root / "pkg" / "sub" / "mod.py").write_text("m = 2\n")  # watched after the re-plan
            assert (await watch.next_batch()).paths == (os.path.join("pkg", "sub", "mod.py"),)

    run(scenario)


def test_polling_sees_a_same_size_rewrite_within_the_same_second(tmp_path: Path) -> None:
    root = make_project(tmp_path)

    async def scenario() -> None:
        async with watching(root, should_poll=True) as watch:
            for digit in "23456":  # notify's own poller misses most of these (whole seconds)
                (root / "app.py").write_text(f"x = {digit}\n")
                assert (await watch.next_batch()).paths == ("app.py",)

    run(scenario)


def test_extra_files_flag_dependencies_even_when_gitignored(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    env = root / ".env"
    (root / ".gitignore").write_text(".env\n")
    env.write_text("A=1\n")

    async def scenario() -> None:
        async with watching(root, extra_files=(env,)) as watch:
            env.write_text("A=2\n")
            batch = await watch.next_batch()
            assert batch.paths == (".env",)
            assert batch.dependencies_changed

    run(scenario)
