"""Linux's inotify, read on the event loop: file changes the moment they are complete.

`watchfiles.awatch` runs its OS watcher in a thread and looks at what it gathered every
``step`` ms, reporting a set once one step passed without a new event: a save is seen
1.5 steps late on average (4.3 ms at a 2 ms step, measured), and the look-every-step loop
wakes the supervisor 500 times a second while nothing happens (about 1% of a core).
`inotify_changes` has the same signature and yields the same sets, but reads the inotify
descriptor when the kernel says it is readable: nothing runs while nothing changes, and a
set is reported 1 ms after its last event once every file in it is *complete* (its last
event is a close-after-write, a rename into place, or an attribute change): the 1 ms keeps
the files of one checkout or formatter run in one set. A set still holding a file that is
open for writing, or one that just disappeared (an editor's rename-and-write dance), waits
for one quiet ``step`` as watchfiles would; a set grows for at most ``debounce`` ms.

Recursive plans get a watch per directory (inotify does not recurse); a directory created
or moved in later gets its watches at once and its files are reported as added, so a file
written before the watch existed is not missed. Non-recursive plans (devserve's way of never
watching an ignored directory) watch exactly the directories given; a plan path that is a
file is watched through its parent directory, for that name only. Where inotify cannot be
used (not Linux, no instance or watch left: ``fs.inotify.max_user_watches``), the sets come
from `watchfiles.awatch` instead. An overflowed event queue, or a new directory with no
watch left for it, raises `EventsLost`: the caller re-scans the tree and starts again
(falling back to watchfiles if inotify still cannot do it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import struct
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Literal

import watchfiles
from watchfiles import Change

from devserve.poller import RawChanges

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = 0o2000000
#: What a watched directory reports.
DIR_MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
    | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)  # fmt: skip
#: Events after which a file is complete: a set holding only complete files is reported
#: after `SETTLED_QUIET_MS` without a new event (a checkout writes its files well within
#: that of each other, so they stay one set), one holding others after a whole step. A
#: writer descheduled for longer in mid-burst (a machine busy on every core) splits it,
#: as a watchfiles step boundary could: the later files then make a second reload.
SETTLED = IN_CLOSE_WRITE | IN_MOVED_TO | IN_ATTRIB
SETTLED_QUIET_MS = 1
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)
_READ_SIZE = 256 * 1024
_MAX_READS = 64


class EventsLost(Exception):
    """Some changes cannot be reported: the kernel's queue overflowed, or no watch is left."""


def is_available() -> bool:
    """Whether this platform has inotify (Linux)."""
    return sys.platform.startswith("linux")


def change_of(mask: int) -> Change:
    """The watchfiles `Change` an inotify event's `mask` stands for."""
    if mask & (IN_CREATE | IN_MOVED_TO):
        return Change.added
    if mask & (IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF):
        return Change.deleted
    return Change.modified


def parse_events(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(watch descriptor, mask, name) for each event in a buffer read from inotify."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        name = data[start : start + length].rstrip(b"\0")
        offset = start + length
        yield wd, mask, os.fsdecode(name)


class Inotify:
    """One inotify instance and its watches (directory paths by watch descriptor)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            _raise_errno()
        self.dirs: dict[int, str] = {}
        self.only: dict[int, set[str]] = {}  # watch -> the only names wanted (file paths)

    def watch_dir(self, path: str, names: set[str] | None = None) -> int:
        """Watch directory `path` (for `names` only, if given); return its descriptor.

        Raises:
            FileNotFoundError: it vanished; OSError: out of watches (ENOSPC) and the like.
        """
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), DIR_MASK))
        if wd < 0:
            _raise_errno(path)
        if names is None:
            self.only.pop(wd, None)
        elif wd not in self.dirs or wd in self.only:
            self.only.setdefault(wd, set()).update(names)
        self.dirs[wd] = path
        return wd

    def watch_tree(self, root: str) -> list[str]:
        """Watch `root` and every directory below it (no symlinks); return the files found."""
        files: list[str] = []
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                self.watch_dir(directory)
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue  # gone meanwhile
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    files.append(entry.path)
        return files

    def forget_tree(self, path: str) -> None:
        """Drop the watches of `path` and every directory below it (moved away)."""
        below = path.rstrip(os.sep) + os.sep
        for wd, directory in list(self.dirs.items()):
            if directory == path or directory.startswith(below):
                self._libc.inotify_rm_watch(self.fd, wd)
                del self.dirs[wd]
                self.only.pop(wd, None)

    def read(self) -> list[tuple[int, str]]:
        """Every event waiting now, as (mask, path); [] if there is none."""
        data = b""
        for _ in range(_MAX_READS):
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            data += chunk
        events = []
        for wd, mask, name in parse_events(data):
            if mask & IN_Q_OVERFLOW:
                raise EventsLost("inotify's event queue overflowed")
            directory = self.dirs.get(wd)
            if mask & IN_IGNORED:  # the watch is gone (its directory was deleted)
                self.dirs.pop(wd, None)
                self.only.pop(wd, None)
                continue
            if directory is None or (wd in self.only and name not in self.only[wd]):
                continue
            path = os.path.join(directory, name) if name else directory
            if mask & IN_ISDIR and mask & IN_MOVED_FROM:
                self.forget_tree(path)  # its watches would report it under this old path
            events.append((mask, path))
        return events

    def close(self) -> None:
        """Release the instance and all its watches."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _raise_errno(path: str | None = None) -> None:
    code = ctypes.get_errno()
    if code == errno.ENOENT:
        raise FileNotFoundError(code, os.strerror(code), path)
    raise OSError(code, os.strerror(code), path)


class _Burst:
    """The events of one burst: each path's change, and whether it is complete yet."""

    def __init__(self) -> None:
        self.changes: RawChanges = set()
        self.open: set[str] = set()  # paths whose last event leaves them incomplete

    def add(self, mask: int, path: str) -> None:
        self.changes.add((change_of(mask), path))
        if mask & SETTLED or mask & IN_ISDIR:
            self.open.discard(path)
        else:
            self.open.add(path)

    @property
    def is_settled(self) -> bool:
        return bool(self.changes) and not self.open


def _setup(paths: tuple[str, ...], recursive: bool) -> Inotify:
    watcher = Inotify()
    try:
        for path in paths:
            if recursive and os.path.isdir(path):
                watcher.watch_tree(path)
            elif os.path.isdir(path):
                watcher.watch_dir(path)
            elif os.path.exists(path):  # a file: through its directory, for its name only
                watcher.watch_dir(os.path.dirname(path), {os.path.basename(path)})
            else:  # as watchfiles does: the caller re-plans
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
    except BaseException:
        watcher.close()
        raise
    return watcher


def _watch_new(watcher: Inotify, path: str) -> list[str]:
    """Watch a directory that appeared, and below it; the files it already holds."""
    try:
        return watcher.watch_tree(path)
    except OSError as exc:  # out of watches: the caller re-plans, and falls back if need be
        msg = f"cannot watch {path}: {exc}"
        raise EventsLost(msg) from exc


async def _first(
    readable: asyncio.Event, stopping: asyncio.Task[Literal[True]], timeout_s: float | None
) -> bool:
    """Wait until inotify is readable (True), or stop / `timeout_s` (False)."""
    if readable.is_set():
        return not stopping.done()
    waiter = asyncio.ensure_future(readable.wait())
    try:
        await asyncio.wait({waiter, stopping}, timeout=timeout_s, return_when="FIRST_COMPLETED")
    finally:
        waiter.cancel()
    return readable.is_set() and not stopping.done()


async def inotify_changes(
    *paths: str,
    watch_filter: None,
    debounce: int,
    step: int,
    stop_event: asyncio.Event,
    force_polling: bool,
    recursive: bool,
) -> AsyncIterator[RawChanges]:
    """Yield sets of (change, absolute path) per burst, as `watchfiles.awatch` does.

    Raises:
        FileNotFoundError: a directory of `paths` vanished before its watch existed.
        EventsLost: the kernel dropped events (the caller should re-scan).
    """
    try:
        watcher = _setup(paths, recursive) if is_available() and not force_polling else None
    except FileNotFoundError:
        raise
    except OSError:  # no inotify instance or watch left: watchfiles reports what it can
        watcher = None
    if watcher is None:
        async for raw in watchfiles.awatch(
            *paths, watch_filter=watch_filter, debounce=debounce, step=step,
            stop_event=stop_event, force_polling=force_polling, recursive=recursive,
        ):  # fmt: skip
            yield raw
        return
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(watcher.fd, readable.set)
    stopping = asyncio.ensure_future(stop_event.wait())
    try:
        while await _first(readable, stopping, None):
            burst = _Burst()
            deadline = time.monotonic() + debounce / 1000
            while True:
                readable.clear()
                for mask, path in watcher.read():
                    burst.add(mask, path)
                    if recursive and mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                        burst.changes.update((Change.added, f) for f in _watch_new(watcher, path))
                quiet_ms = min(step, SETTLED_QUIET_MS) if burst.is_settled else step
                quiet_s = min(quiet_ms / 1000, deadline - time.monotonic())
                if quiet_s <= 0 or not await _first(readable, stopping, quiet_s):
                    break  # quiet long enough (or the longest burst): report what there is
            if burst.changes:
                yield burst.changes
    finally:
        stopping.cancel()
        loop.remove_reader(watcher.fd)
        watcher.close()
