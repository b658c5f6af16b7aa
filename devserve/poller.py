"""devserve's own polling watcher: snapshots of (size, mtime_ns), compared poll after poll.

When polling, devserve uses `poll_changes` rather than notify's poller, which compares
whole-second mtimes and so misses a second save within the same second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Iterable

from watchfiles import Change

RawChanges = set[tuple[Change, str]]

Snapshot = dict[str, tuple[bool, int, int]]


def take_snapshot(paths: Iterable[str], *, is_recursive: bool) -> Snapshot:
    """Map every entry of `paths` (and below, if recursive) to (is_dir, size, mtime_ns)."""
    found: Snapshot = {}
    stack = list(paths)
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    is_dir = stat.S_ISDIR(info.st_mode)
                    found[entry.path] = (is_dir, info.st_size, info.st_mtime_ns)
                    if is_dir and is_recursive:
                        stack.append(entry.path)
    return found


def diff_snapshots(old: Snapshot, new: Snapshot) -> RawChanges:
    """Compare two snapshots like a watcher would report them (directories never "modified")."""
    changes: RawChanges = {(Change.added, path) for path in new.keys() - old.keys()}
    changes |= {(Change.deleted, path) for path in old.keys() - new.keys()}
    for path in old.keys() & new.keys():
        if old[path] != new[path] and not new[path][0]:
            changes.add((Change.modified, path))
    return changes


async def poll_changes(
    *paths: str,
    watch_filter: None,
    debounce: int,
    step: int,
    stop_event: asyncio.Event,
    force_polling: bool,
    recursive: bool,
    poll_ms: int = 300,
) -> AsyncIterator[RawChanges]:
    """An `AwatchFunction` that polls with (size, mtime_ns).

    notify's poller compares whole-second mtimes only, so a same-second save goes unseen;
    this one compares sizes and nanosecond mtimes. It waits `poll_ms` between polls, then
    `step` ms between polls while a burst lasts (at most `debounce` ms).
    """
    del watch_filter, force_polling  # always polls; filtering is the caller's job
    # Synchronous on purpose, like RustNotify's set-up: once the first `anext` has run one
    # loop turn, the baseline exists and every later write will be seen.
    snapshot = take_snapshot(paths, is_recursive=recursive)
    wait_s = poll_ms / 1000
    changes: RawChanges = set()
    burst_ms = 0
    while not stop_event.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop_event.wait(), wait_s)
            return
        current = await asyncio.to_thread(take_snapshot, paths, is_recursive=recursive)
        fresh, snapshot = diff_snapshots(snapshot, current), current
        changes |= fresh
        burst_ms = burst_ms + step if changes else 0
        if changes and (not fresh or burst_ms >= debounce):
            yield changes
            changes = set()
        wait_s = (step if changes else poll_ms) / 1000
