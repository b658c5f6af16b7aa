"""Tests of `devserve.watch`: batches, settings and the watch loop.

The last section drives `watch_changes` with a scripted `awatch` (real files in tmp_path, no OS
watcher) to check batching, content de-duplication and re-planning.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from watchfiles import Change

from devserve.errors import ConfigError
from devserve.mounts import PollingDecision
from devserve.poller import RawChanges
from devserve.watch import (
    FAST_STEP_MS,
    INLINE_MAX_BYTES,
    INLINE_MAX_FILES,
    ChangeBatch,
    WatchSettings,
    is_small_read,
    make_batch,
    watch_changes,
)
from devserve.watchplan import PathFilter

ROOT = os.path.join(os.sep, "proj")


def p(rel: str) -> str:
    return os.path.join(ROOT, *rel.split("/"))


def make_filter(**kwargs: object) -> PathFilter:
    return PathFilter((ROOT,), **kwargs)  # type: ignore[arg-type]


# --- batches and settings ------------------------------------------------------------------


def test_make_batch_relativises_sorts_and_flags_dependencies() -> None:
    env = os.path.join(os.sep, "etc", ".env")
    path_filter = make_filter(extra_files=frozenset({env, p("uv.lock")}))
    batch = make_batch([p("pkg/b.py"), p("a.py")], path_filter, raw_count=5)
    assert batch == ChangeBatch((os.path.join("a.py"), os.path.join("pkg", "b.py")), False, 5)
    assert make_batch([p("uv.lock")], path_filter, raw_count=1).dependencies_changed
    assert make_batch([env], path_filter, raw_count=1).paths == (env,)


def test_batch_and_settings_validate() -> None:
    with pytest.raises(ValueError, match="at least one path"):
        ChangeBatch((), False, 0)
    with pytest.raises(ValueError, match="sorted"):
        ChangeBatch(("b", "a"), False, 2)
    with pytest.raises(ValueError, match="raw_count"):
        ChangeBatch(("a",), False, -1)
    with pytest.raises(ConfigError) as caught:
        WatchSettings(dirs=(), includes=(), delay_ms=0)
    assert len(caught.value.problems) == 3


# --- the loop, driven by a scripted awatch --------------------------------------------------


Step = Callable[[], RawChanges]


class ScriptedAwatch:
    """A fake `watchfiles.awatch`: each call plays the next script; records its arguments.

    A script step is a callable run when the step is reached (after start-up), returning the
    raw changes to yield, so it can touch files first.
    """

    def __init__(self, scripts: list[list[Step]]) -> None:
        self.scripts: Iterator[list[Step]] = iter(scripts)
        self.calls: list[tuple[tuple[str, ...], bool]] = []
        self.steps: list[int] = []

    def __call__(
        self,
        *paths: str,
        watch_filter: None,
        debounce: int,
        step: int,
        stop_event: asyncio.Event,
        force_polling: bool,
        recursive: bool,
    ) -> AsyncIterator[RawChanges]:
        self.calls.append((paths, recursive))
        self.steps.append(step)
        return self._play(next(self.scripts, []), stop_event)

    async def _play(self, script: list[Step], stop: asyncio.Event) -> AsyncIterator[RawChanges]:
        for step in script:
            yield step()
        await stop.wait()


def collect(
    settings: WatchSettings, fake: ScriptedAwatch, *, want: int, should_poll: bool = False
) -> list[ChangeBatch]:
    async def run() -> list[ChangeBatch]:
        stop = asyncio.Event()
        batches: list[ChangeBatch] = []

        async def consume() -> None:
            async for batch in watch_changes(
                settings,
                stop_event=stop,
                awatch=fake,
                polling=PollingDecision(should_poll, "test"),
            ):
                batches.append(batch)
                if len(batches) == want:
                    stop.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait({task}, timeout=0.5)  # a wrong count shows up as a bad assert below
        stop.set()
        await asyncio.wait_for(task, timeout=2)
        return batches

    return asyncio.run(run())


def write(path: Path, text: str, raw: RawChanges) -> Step:
    def step() -> RawChanges:
        path.write_text(text)
        return raw

    return step


def test_loop_yields_only_content_changes(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / ".venv").mkdir()
    same, edited = root / "same.py", root / "edited.py"
    same.write_text("x = 1\n")
    edited.write_text("x = 1\n")
    touched = {(Change.modified, str(same)), (Change.modified, str(edited))}
    script = [
        write(same, "x = 1\n", {(Change.modified, str(same))}),  # identical rewrite: nothing
        write(edited, "x = 2\n", touched | {(Change.added, "/elsewhere/nope.py")}),
    ]
    fake = ScriptedAwatch([script])
    batches = collect(WatchSettings(dirs=(root,)), fake, want=1)
    assert batches == [ChangeBatch(("edited.py",), False, 3)]
    assert fake.calls == [((str(root),), False)]  # .venv exists: kept dirs, flat


def test_loop_replans_when_a_directory_appears(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "node_modules").mkdir()
    new_dir = root / "pkg"

    def create_package() -> RawChanges:
        new_dir.mkdir()
        (new_dir / "mod.py").write_text("y = 1\n")  # no event: pkg was not watched yet
        return {(Change.added, str(new_dir))}

    fake = ScriptedAwatch([[create_package]])
    batches = collect(WatchSettings(dirs=(root,)), fake, want=1)
    assert batches == [ChangeBatch((os.path.join("pkg", "mod.py"),), False, 1)]
    assert fake.calls[-1] == ((str(root), str(new_dir)), False)


def test_loop_reports_files_of_a_removed_directory_and_dependencies(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "pkg").mkdir()
    (root / "pkg" / "a.py").write_text("a = 1\n")
    lock = root / "uv.lock"
    lock.write_text("v1\n")

    def remove_package() -> RawChanges:
        (root / "pkg" / "a.py").unlink()
        (root / "pkg").rmdir()
        return {(Change.deleted, str(root / "pkg"))}  # a move-away names only the directory

    script = [remove_package, write(lock, "v2\n", {(Change.modified, str(lock))})]
    settings = WatchSettings(dirs=(root,), extra_files=(lock,))
    batches = collect(settings, ScriptedAwatch([script]), want=2)
    assert batches == [
        ChangeBatch((os.path.join("pkg", "a.py"),), False, 1),
        ChangeBatch(("uv.lock",), True, 1),
    ]


def test_loop_reloads_gitignore_rules_when_gitignore_changes(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    secret, other, ignore = root / "secret.py", root / "other.py", root / ".gitignore"
    for path in (secret, other):
        path.write_text("v = 1\n")
    touched = {(Change.modified, str(secret)), (Change.modified, str(other))}

    def edit_both() -> RawChanges:
        secret.write_text("v = 2\n")
        other.write_text("v = 2\n")
        return touched

    fake = ScriptedAwatch(
        [[write(ignore, "secret.py\n", {(Change.added, str(ignore))})], [edit_both]]
    )
    batches = collect(WatchSettings(dirs=(root,)), fake, want=2)  # a 2nd batch would be wrong
    # The fake edits both files as the restarted watcher starts, so the post-restart scan
    # catches other.py in the .gitignore batch; secret.py is ignored from then on.
    assert [batch.paths for batch in batches] == [("other.py",)]
    assert len(fake.calls) == 2


def test_the_os_watcher_steps_fast_while_polling_steps_by_the_delay(tmp_path: Path) -> None:
    target = tmp_path / "a.py"
    target.write_text("a = 1\n")
    for should_poll, expected in ((False, FAST_STEP_MS), (True, 40)):
        fake = ScriptedAwatch(
            [[write(target, f"a = {expected}\n", {(Change.modified, str(target))})]]
        )
        settings = WatchSettings(dirs=(tmp_path,), delay_ms=40)
        assert len(collect(settings, fake, want=1, should_poll=should_poll)) == 1
        assert fake.steps == [expected]
    fake = ScriptedAwatch([[]])
    collect(WatchSettings(dirs=(tmp_path,), delay_ms=1), fake, want=1)
    assert fake.steps == [1]  # never slower than the quiet period asked for


def test_a_burst_waits_for_its_quiet_period_and_is_one_batch(tmp_path: Path) -> None:
    a, b, c = (tmp_path.resolve() / name for name in ("a.py", "b.py", "c.py"))
    for path in (a, b, c):
        path.write_text("x = 1\n")

    def save_two() -> RawChanges:
        a.write_text("x = 2\n")
        b.write_text("x = 2\n")
        return {(Change.modified, str(a)), (Change.modified, str(b))}

    # The third file comes in a later raw set, within the quiet period: same batch.
    script = [save_two, write(c, "x = 2\n", {(Change.modified, str(c))})]
    settings = WatchSettings(dirs=(tmp_path,), delay_ms=200)
    batches = collect(settings, ScriptedAwatch([script]), want=1)
    assert batches == [ChangeBatch(("a.py", "b.py", "c.py"), False, 3)]


def test_a_one_file_save_is_not_held_back_for_the_quiet_period(tmp_path: Path) -> None:
    a, b = tmp_path.resolve() / "a.py", tmp_path.resolve() / "b.py"
    for path in (a, b):
        path.write_text("x = 1\n")
    # Each raw set names one watched file (the editor's temp file is not watched): each is
    # reported at once, though the quiet period (1.6 s) is longer than collect() waits.
    first = {(Change.modified, str(a)), (Change.added, str(tmp_path / "a.py.tmp123"))}
    script = [write(a, "x = 2\n", first), write(b, "x = 2\n", {(Change.modified, str(b))})]
    settings = WatchSettings(dirs=(tmp_path,), delay_ms=1600)
    batches = collect(settings, ScriptedAwatch([script]), want=2)
    assert [batch.paths for batch in batches] == [("a.py",), ("b.py",)]


def test_a_few_small_files_are_hashed_inline_bigger_bursts_in_a_thread(tmp_path: Path) -> None:
    small = [tmp_path / f"m{i}.py" for i in range(INLINE_MAX_FILES + 1)]
    for path in small:
        path.write_text("x = 1\n")
    names = [str(path) for path in small]
    assert is_small_read(names[:INLINE_MAX_FILES])
    assert not is_small_read(names)  # too many files
    assert is_small_read([str(tmp_path / "gone.py")])  # a deletion reads nothing
    big = tmp_path / "data.py"
    big.write_bytes(b"#" * (INLINE_MAX_BYTES + 1))
    assert not is_small_read([str(big)])
