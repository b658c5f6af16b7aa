"""The reloader's file-watching layer: turns file-system noise into "reload now" batches.

Theory of operation: `devserve.watchplan` scans the watched directories, filters paths and plans
the OS watches; `devserve.contentindex` compares each touched file's final content with what it
held before; `devserve.mounts` decides whether to poll and `devserve.poller` polls. This module
runs the loop that ties them together:

**Batch.** The OS watcher (`devserve.inotify` on Linux, reporting a set as soon as its files
are complete; `watchfiles.awatch` elsewhere, whose loop wakes every ``step`` ms and reports
a set once one step passed without a new event) groups a burst (``step`` = quiet period,
``debounce`` = max grouping), so a `git checkout` of 200 files is one raw set and therefore
one `ChangeBatch`. The OS watcher runs with a short step (`FAST_STEP_MS`) and the quiet
period (``delay_ms``) is applied here, to bursts only: a raw set naming one
watched file (an editor's save) is handled at once; one naming several (a checkout, a
formatter, "save all") waits until ``delay_ms`` pass with no new set, and the sets are
merged into one batch. The polling watcher keeps ``step = delay_ms`` (each step of it is
a scan of the tree).

**Compare.** The touched files are hashed to drop writes that left the content as it was: on
the event loop for an ordinary save (a few small files, no polling; the hop to a thread and
back cost 1.5-5 ms of every reload), in a thread for anything bigger.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchfiles import Change

from devserve.contentindex import (
    ContentIndex,
    Observation,
    build_index,
    observe,
    reconcile,
    significant_changes,
)
from devserve.errors import ConfigError
from devserve.gitignore import GitIgnore
from devserve.inotify import EventsLost, inotify_changes
from devserve.mounts import PollingDecision, decide_polling
from devserve.poller import RawChanges, poll_changes
from devserve.watchplan import PathFilter, TreeScan, WatchPlan, plan_watch_roots, scan_tree

DEBOUNCE_MS = 1600
#: The OS watcher's quiet step (ms): watchfiles reports a one-file save 1-2 steps after it
#: is written (2 ms costs it about 0.4% of a core more than 5 ms while idle, measured);
#: inotify waits one only for a file still open for writing or just gone.
FAST_STEP_MS = 2
STOP_GRACE_S = 2.0
MAX_WATCHER_RESTARTS = 3
#: Up to this many changed files, this many bytes in all, are hashed on the event loop.
INLINE_MAX_FILES = 8
INLINE_MAX_BYTES = 256 * 1024


class AwatchFunction(Protocol):
    """The slice of `watchfiles.awatch` devserve uses; tests pass a scripted fake."""

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
        """Watch `paths`, yielding sets of (change, absolute path) per burst."""


@dataclass(frozen=True)
class WatchSettings:
    """What to watch and how.

    Attributes:
        dirs: directories watched (recursively, minus ignored directories).
        includes: globs a file's name or root-relative path must match to count.
        excludes: extra globs (on names, relative paths or directory names) to ignore.
        delay_ms: quiet period in milliseconds a burst must end with before it is reported.
        force_polling: True/False forces polling on/off; None detects it from the mounts.
        extra_files: files always watched whatever the globs and ignores say (env file,
            pyproject.toml, lockfiles); touching one sets `ChangeBatch.dependencies_changed`.
    """

    dirs: tuple[Path, ...]
    includes: tuple[str, ...] = ("*.py",)
    excludes: tuple[str, ...] = ()
    delay_ms: int = 50
    force_polling: bool | None = None
    extra_files: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not self.dirs:
            problems.append("watch: at least one directory must be watched")
        if not self.includes:
            problems.append("watch: includes must hold at least one glob")
        if not 1 <= self.delay_ms <= DEBOUNCE_MS:
            problems.append(f"watch: delay_ms must be within 1..{DEBOUNCE_MS}, got {self.delay_ms}")
        if problems:
            raise ConfigError(problems)


# --- batches and the watch loop ------------------------------------------------------------


@dataclass(frozen=True)
class ChangeBatch:
    """One reason to reload.

    Attributes:
        paths: changed paths, sorted; relative to the first root holding them when possible.
        dependencies_changed: an extra file (env file, pyproject.toml, lockfile) changed.
        raw_count: how many raw watcher events the burst held (before filtering).
    """

    paths: tuple[str, ...]
    dependencies_changed: bool
    raw_count: int

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("ChangeBatch needs at least one path")
        if list(self.paths) != sorted(self.paths):
            raise ValueError("ChangeBatch.paths must be sorted")
        if self.raw_count < 0:
            raise ValueError(f"ChangeBatch.raw_count must be >= 0, got {self.raw_count}")


def make_batch(
    significant: Iterable[str], path_filter: PathFilter, *, raw_count: int
) -> ChangeBatch:
    """Build a `ChangeBatch` from absolute paths (`significant` must not be empty)."""
    shown = set()
    is_dependency = False
    for path in significant:
        is_dependency = is_dependency or path in path_filter.extra_files
        located = path_filter.locate(path)
        shown.add(located[1].replace("/", os.sep) if located else path)
    return ChangeBatch(tuple(sorted(shown)), is_dependency, raw_count)


def _vanished_dirs(raw: RawChanges, index: ContentIndex) -> set[str]:
    """Indexed files inside deleted or moved-away directories (no event names them)."""
    gone = tuple(
        path.rstrip(os.sep) + os.sep
        for change, path in raw
        if change == Change.deleted and index.get(path) is None
    )
    return {path for path in index.paths() if path.startswith(gone)} if gone else set()


async def _wait_for(event: asyncio.Event) -> None:
    await event.wait()


class _WatchLoop:
    """One `watch_changes` call: the current scan, plan, index and watchfiles generator."""

    def __init__(
        self,
        settings: WatchSettings,
        awatch: AwatchFunction,
        polling: PollingDecision,
        on_watching: Callable[[WatchPlan], None] | None,
    ) -> None:
        self._settings, self._awatch, self._polling = settings, awatch, polling
        self._on_watching = on_watching
        roots = tuple(str(directory.resolve()) for directory in settings.dirs)
        extra = frozenset(str(path.resolve()) for path in settings.extra_files)
        blank = tuple(GitIgnore() for _ in roots)
        self.base_filter = PathFilter(roots, settings.includes, settings.excludes, extra, blank)
        self.scan = TreeScan((), (), False, False, False, self.base_filter)
        self.index = ContentIndex()
        self.plan = WatchPlan((), is_recursive=True)
        self._changes: AsyncIterator[RawChanges] | None = None
        self._pending: asyncio.Future[RawChanges] | None = None
        self._watcher_stop = asyncio.Event()
        self._must_rescan = False
        self._failures = 0

    async def start(self) -> None:
        """Start watchfiles on a plan made from `self.scan`; returns once the OS watches exist."""
        scan = self.scan
        self.plan = plan_watch_roots(
            self.base_filter.roots, scan.dirs, has_ignored_dirs=scan.has_ignored_dirs,
            extra_files=sorted(self.base_filter.extra_files), is_dir_capped=scan.is_dir_capped,
        )  # fmt: skip
        self._watcher_stop = asyncio.Event()
        self._changes = self._awatch(
            *self.plan.paths, watch_filter=None, debounce=DEBOUNCE_MS,
            step=self.step_ms, stop_event=self._watcher_stop,
            force_polling=self._polling.should_poll, recursive=self.plan.is_recursive,
        )  # fmt: skip
        self._pending = asyncio.ensure_future(anext(self._changes))
        # One loop turn runs the generator up to its first wait: RustNotify then exists.
        await asyncio.sleep(0)
        if self._on_watching is not None:
            self._on_watching(self.plan)

    @property
    def step_ms(self) -> int:
        """The step watchfiles runs with: `FAST_STEP_MS`, or ``delay_ms`` when polling."""
        delay_ms = self._settings.delay_ms
        return delay_ms if self._polling.should_poll else min(delay_ms, FAST_STEP_MS)

    def is_burst(self, raw: RawChanges) -> bool:
        """Whether `raw` names more than one watched path (so more may be on the way)."""
        path_filter = self.scan.path_filter
        return len({path for change, path in raw if path_filter(change, path)}) > 1

    async def rest_of_burst(self, raw: RawChanges, stop_event: asyncio.Event) -> RawChanges:
        """`raw` and the sets after it until ``delay_ms`` pass without one (one step did)."""
        quiet_s = (self._settings.delay_ms - self.step_ms) / 1000
        merged = set(raw)
        while quiet_s > 0 and not stop_event.is_set():
            more = await self.next_raw(stop_event, timeout_s=quiet_s)
            if not more:  # quiet (or stopped, or a watcher restart pending): it is over
                break
            merged |= more
        return merged

    async def stop(self) -> None:
        """Stop the watchfiles generator, waiting at most `STOP_GRACE_S`."""
        self._watcher_stop.set()
        pending, changes = self._pending, self._changes
        self._pending = self._changes = None
        if pending is None:
            return
        if not pending.done():
            await asyncio.wait({pending}, timeout=STOP_GRACE_S)
        if not pending.done():
            pending.cancel()
        elif not pending.cancelled() and pending.exception() is None and changes is not None:
            await _close(changes)

    async def next_raw(
        self, stop_event: asyncio.Event, timeout_s: float | None = None
    ) -> RawChanges | None:
        """Wait for the next raw set; None once `stop_event` is set or the watcher ended.

        With `timeout_s`, an empty set when none came in time (the wait goes on next call).
        """
        assert self._pending is not None, "start() first"  # noqa: S101 - internal invariant
        stopper = asyncio.ensure_future(_wait_for(stop_event))
        waiters: set[asyncio.Future[RawChanges] | asyncio.Task[None]] = {self._pending, stopper}
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not self._pending.done():
            return set() if timeout_s is not None and not stop_event.is_set() else None
        try:
            raw = self._pending.result()
        except StopAsyncIteration:
            return None
        except (FileNotFoundError, EventsLost):  # a planned directory vanished; events lost
            self._failures += 1
            if self._failures > MAX_WATCHER_RESTARTS:
                raise
            self._must_rescan = True
            return set()
        self._failures = 0
        assert self._changes is not None  # noqa: S101 - set together with _pending
        self._pending = asyncio.ensure_future(anext(self._changes))
        return raw

    def needs_rescan(self, raw: RawChanges) -> bool:
        """Tell whether the plan or the ignore rules are out of date after `raw`."""
        if self._must_rescan:
            return True
        for change, path in raw:
            located = self.base_filter.locate(path)
            if located is None:
                continue
            if located[1].rpartition("/")[2] == ".gitignore":
                return True
            if change != Change.added or self.scan.is_dir_capped or not os.path.isdir(path):
                continue
            if self.scan.path_filter.is_ignored_dir(path) == self.plan.is_recursive:
                return True  # an ignored dir under a recursive watch, or a new kept dir
        return False

    async def rescan(self) -> set[str]:
        """Re-walk, re-plan and restart the watcher; return files the index is stale about.

        The walk is repeated once the new watcher runs, so that files written while switching
        are compared with the index; if the directories changed meanwhile, it re-plans again.
        """
        self._must_rescan = False
        await self.stop()
        fresh = await asyncio.to_thread(scan_tree, self.base_filter)
        for _ in range(MAX_WATCHER_RESTARTS):
            self.scan = fresh
            await self.start()
            fresh = await asyncio.to_thread(scan_tree, self.base_filter)
            if set(fresh.dirs) == set(self.scan.dirs):
                break
            await self.stop()
        self.scan = fresh
        stale = reconcile(fresh.files, self.index)
        if not fresh.is_file_capped:
            scanned = {path for path, _, _ in fresh.files}
            missing = [path for path in self.index.paths() if path not in scanned]
            stale.update(path for path in missing if fresh.path_filter(Change.deleted, path))
            # Newly ignored files (an edited .gitignore) leave the index instead of counting.
            self.index.record(Observation(path, None) for path in missing if path not in stale)
        return stale

    async def handle(self, raw: RawChanges) -> ChangeBatch | None:
        """Turn one raw set into a batch, or None if nothing significant changed."""
        candidates = await self.rescan() if self.needs_rescan(raw) else set()
        path_filter = self.scan.path_filter
        candidates |= {path for change, path in raw if path_filter(change, path)}
        candidates |= _vanished_dirs(raw, self.index)
        paths = sorted(candidates)
        if self._polling.should_poll or not is_small_read(paths):
            observations = await asyncio.to_thread(observe, paths)
        else:  # a save or two: reading here beats the hop to a thread and back
            observations = observe(paths)
        significant = significant_changes(observations, self.index)
        self.index.record(observations)
        if not significant:
            return None
        return make_batch(significant, self.scan.path_filter, raw_count=len(raw))


def is_small_read(paths: list[str]) -> bool:
    """Whether hashing `paths` is quick enough for the event loop (a few small local files)."""
    if len(paths) > INLINE_MAX_FILES:
        return False
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            continue  # gone or unreadable: observe() records that without reading
    return total <= INLINE_MAX_BYTES


async def _close(changes: AsyncIterator[RawChanges]) -> None:
    """Close an async generator (watchfiles.awatch is one); plain iterators need nothing."""
    aclose = getattr(changes, "aclose", None)
    if aclose is not None:
        await aclose()


async def watch_changes(
    settings: WatchSettings,
    *,
    stop_event: asyncio.Event,
    awatch: AwatchFunction | None = None,
    polling: PollingDecision | None = None,
    on_watching: Callable[[WatchPlan], None] | None = None,
) -> AsyncIterator[ChangeBatch]:
    """Yield one `ChangeBatch` per burst of significant changes until `stop_event` is set.

    Cancelling or closing the iteration stops the watcher too; `stop_event` is never set by it.

    Args:
        settings: what to watch.
        stop_event: set it to end the iteration promptly.
        awatch: the change source; None picks `watchfiles.awatch`, or `poll_changes` when
            polling. Tests pass a scripted fake.
        polling: a decision already made (e.g. logged) by the caller; detected when None.
        on_watching: called with the plan each time the OS watches are in place (at start and
            after each re-plan), e.g. to log "watching 12 directories" or, in tests, to know
            that edits from now on will be seen.

    Yields:
        Batches, each holding at least one path whose content really changed.
    """
    if polling is None:
        polling = decide_polling(settings)
    if awatch is None:
        awatch = poll_changes if polling.should_poll else inotify_changes
    loop = _WatchLoop(settings, awatch, polling, on_watching)
    loop.scan = await asyncio.to_thread(scan_tree, loop.base_filter)
    loop.index = await asyncio.to_thread(build_index, loop.scan)
    await loop.start()
    try:
        while (raw := await loop.next_raw(stop_event)) is not None:
            if loop.is_burst(raw):
                raw = await loop.rest_of_burst(raw, stop_event)
            batch = await loop.handle(raw)
            if batch is not None:
                yield batch
    finally:
        await loop.stop()
