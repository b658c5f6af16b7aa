"""The reloader's file-watching layer: turns file-system noise into "reload now" batches.

Theory of operation:

1. **Scan.** `scan_tree` walks each watched directory once with `os.scandir`, reading every
   `.gitignore` on the way and never descending into an ignored directory (`.venv`,
   `node_modules`, gitignored ones, ...). It returns the directories worth watching and the
   included files with their sizes and mtimes.
2. **Plan.** `plan_watch_roots` (pure) decides what the OS watcher sees. If no ignored directory
   exists anywhere, the roots are watched recursively. Otherwise *every kept directory* is
   watched non-recursively (watchfiles' ``recursive=False``), so an ignored directory is never
   registered with inotify/FSEvents and never walked by the poller. Trade-off: a directory
   created later is not watched until a re-plan. Its creation is itself an event on its
   (watched) parent, so that event triggers a rescan, a new plan and a watcher restart. The new
   watcher starts before the rescan is compared with the index, so nothing written during the
   switch is lost. Past `MAX_WATCHED_DIRS` the roots are watched recursively as a fallback.
3. **Filter.** `PathFilter` (pure) drops default-ignored directories and editor droppings,
   applies include/exclude globs and `.gitignore`, and always keeps `extra_files`.
4. **Content check.** `ContentIndex` remembers (size, mtime_ns, blake2b) per file, built at
   start-up for up to `MAX_INDEXED_FILES` files, hashing up to `STARTUP_HASH_BUDGET_BYTES`
   (files past the budget are compared by size and mtime until first seen again).
   `significant_changes` (pure) compares the *final* state of each touched file with the index,
   so an identical rewrite, a write-rename save with the same bytes or a temp file that came and
   went causes no reload.
5. **Batch.** watchfiles groups a burst (``step`` = quiet period, ``debounce`` = max grouping),
   so a `git checkout` of 200 files is one raw set and therefore one `ChangeBatch`.

Polling: native events do not arrive on network and VM-shared file systems, so with
``force_polling=None`` `decide_polling` reads `/proc/self/mountinfo` (parsed by the pure
`parse_mountinfo`) and `/proc/version`, and explains its choice in one line. When polling,
devserve uses its own `poll_changes` (sizes and nanosecond mtimes) rather than notify's poller,
which compares whole-second mtimes and so misses a second save within the same second.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import watchfiles
from watchfiles import Change

from devserve.errors import ConfigError
from devserve.gitignore import GitIgnore

DEFAULT_IGNORED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "env", "__pycache__", "node_modules", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", ".tox", ".nox", "build", "dist", "site-packages", ".idea",
     ".vscode"}
)  # fmt: skip
DEFAULT_IGNORED_FILES = (
    "*.pyc", "*.pyo", "*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", "*.tmp",
    ".DS_Store", "*___jb_tmp___", "*___jb_old___",
)  # fmt: skip
MAX_WATCHED_DIRS = 20_000
MAX_INDEXED_FILES = 20_000
STARTUP_HASH_BUDGET_BYTES = 64 * 1024 * 1024
MAX_HASHED_FILE_BYTES = 16 * 1024 * 1024
DEBOUNCE_MS = 1600
STOP_GRACE_S = 2.0
MAX_WATCHER_RESTARTS = 3

RawChanges = set[tuple[Change, str]]


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


def _matches_any(subject: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(subject, glob) for glob in globs)


@dataclass(frozen=True)
class PathFilter:
    """Decide whether a changed path matters; usable as a watchfiles ``watch_filter``.

    Attributes:
        roots: absolute watched directories; a path is judged relative to the first that holds it.
        includes: see `WatchSettings.includes`.
        excludes: see `WatchSettings.excludes`.
        extra_files: absolute paths always accepted.
        gitignores: one `GitIgnore` per root (same order); missing entries mean "no rules".
    """

    roots: tuple[str, ...]
    includes: tuple[str, ...] = ("*.py",)
    excludes: tuple[str, ...] = ()
    extra_files: frozenset[str] = frozenset()
    gitignores: tuple[GitIgnore, ...] = ()

    def locate(self, path: str) -> tuple[int, str] | None:
        """Return (root index, ``/``-separated relative path) for the first root holding `path`."""
        for index, root in enumerate(self.roots):
            prefix = root.rstrip(os.sep) + os.sep
            if path.startswith(prefix):
                return index, path[len(prefix) :].replace(os.sep, "/")
        return None

    def _gitignore(self, root_index: int) -> GitIgnore:
        return self.gitignores[root_index] if root_index < len(self.gitignores) else GitIgnore()

    def _is_excluded_dir(self, rel_dir: str) -> bool:
        name = rel_dir.rpartition("/")[2]
        return (
            name in DEFAULT_IGNORED_DIRS
            or _matches_any(name, self.excludes)
            or _matches_any(rel_dir, self.excludes)
        )

    def is_ignored_dir(self, path: str) -> bool:
        """Tell whether a directory (absolute path) must be neither watched nor walked."""
        located = self.locate(path)
        if located is None:
            return False
        root_index, rel = located
        parts = rel.split("/")
        if any(self._is_excluded_dir("/".join(parts[: i + 1])) for i in range(len(parts))):
            return True
        return self._gitignore(root_index).is_ignored(rel, is_dir=True)

    def __call__(self, change: Change, path: str) -> bool:
        """Tell whether a change to the file at `path` (absolute) counts."""
        if path in self.extra_files:
            return True
        located = self.locate(path)
        if located is None:
            return False
        root_index, rel = located
        parts = rel.split("/")
        name = parts[-1]
        if any(self._is_excluded_dir("/".join(parts[: i + 1])) for i in range(len(parts) - 1)):
            return False
        if _matches_any(name, DEFAULT_IGNORED_FILES) or _matches_any(name, self.excludes):
            return False
        if _matches_any(rel, self.excludes) or self._gitignore(root_index).is_ignored(rel):
            return False
        return _matches_any(name, self.includes) or _matches_any(rel, self.includes)


# --- polling detection -------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``, reduced to what polling detection needs."""

    mount_point: str
    fs_type: str
    source: str
    super_options: str = ""


_NO_EVENT_FILESYSTEMS = {
    "nfs": "nfs", "nfs4": "nfs", "cifs": "cifs (SMB share)", "smb3": "smb3 (SMB share)",
    "smbfs": "smbfs (SMB share)", "9p": "9p", "drvfs": "drvfs (WSL drive)",
    "fuse.sshfs": "sshfs", "vboxsf": "vboxsf (VirtualBox shared folder)",
    "virtiofs": "virtiofs (VM shared folder)", "fakeowner": "fakeowner (Docker Desktop bind mount)",
    "fuse.grpcfuse": "grpcfuse (Docker Desktop bind mount)", "osxfs": "osxfs (Docker Desktop)",
}  # fmt: skip
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_WSL_DRIVE = re.compile(r"/mnt/[a-zA-Z](/|$)")


def _unescape(field_text: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), field_text)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    r"""Parse ``/proc/self/mountinfo`` text; malformed lines are skipped.

    Line format: ``id parent major:minor root mount_point options [optional...] - fstype source
    super_options``, with spaces in paths written as ``\040``.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        tail = fields[fields.index("-", 6) + 1 :]
        if len(tail) < 2:  # noqa: PLR2004 - fstype and source are required
            continue
        options = tail[2] if len(tail) > 2 else ""  # noqa: PLR2004 - super options are optional
        mounts.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1]), options))
    return tuple(mounts)


def find_mount(path: str, mounts: Iterable[Mount]) -> Mount | None:
    """Return the mount holding `path`: the longest mount point, the later one on a tie."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/")
        is_inside = path == point or path.startswith(point + "/") or mount.mount_point == "/"
        if is_inside and (best is None or len(point) >= len(best.mount_point.rstrip("/"))):
            best = mount
    return best


def polling_reason(dirs: Iterable[str], mounts: Iterable[Mount], proc_version: str) -> str | None:
    """Explain why native events cannot be trusted for any of `dirs`, or return None.

    Args:
        dirs: absolute watched paths.
        mounts: parsed mount table.
        proc_version: contents of ``/proc/version`` (``""`` if unknown).

    Returns:
        e.g. ``"/work is on 9p (WSL drive)"``, or None when native events work.
    """
    mounts = tuple(mounts)
    is_wsl = "microsoft" in proc_version.lower()
    for path in dirs:
        mount = find_mount(path, mounts)
        fs_type = mount.fs_type if mount else ""
        kind = _NO_EVENT_FILESYSTEMS.get(fs_type)
        if kind is None and fs_type.startswith("fuse.sshfs"):
            kind = "sshfs"
        if kind == "9p" and mount and (is_wsl or "drvfs" in mount.source + mount.super_options):
            kind = "9p (WSL drive)"
        if kind is None and is_wsl and _WSL_DRIVE.match(path):
            kind = "a Windows drive under WSL"
        if kind is not None:
            return f"{path} is on {kind}"
    return None


@dataclass(frozen=True)
class PollingDecision:
    """Whether to poll, and the one-line reason (for ``"polling for changes: <reason>"``)."""

    should_poll: bool
    reason: str


def _read_text_or_empty(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def decide_polling(
    settings: WatchSettings,
    *,
    read_text: Callable[[str], str] = _read_text_or_empty,
    platform: str = sys.platform,
) -> PollingDecision:
    """Resolve ``settings.force_polling``; auto-detection only looks at Linux mount tables."""
    if settings.force_polling is not None:
        how = "on" if settings.force_polling else "off"
        return PollingDecision(settings.force_polling, f"polling forced {how}")
    if not platform.startswith("linux"):
        return PollingDecision(False, "native events")
    mounts = parse_mountinfo(read_text("/proc/self/mountinfo"))
    dirs = [str(d.absolute()) for d in settings.dirs]
    reason = polling_reason(dirs, mounts, read_text("/proc/version"))
    return PollingDecision(reason is not None, reason or "native events")


# --- content index -----------------------------------------------------------------------


@dataclass(frozen=True)
class FileState:
    """What is known of a file: size, mtime in ns, and a blake2b digest when it was hashed."""

    size: int
    mtime_ns: int
    digest: bytes | None = None


@dataclass(frozen=True)
class Observation:
    """The state of a touched path after a burst; `state` None means "no such file now"."""

    path: str
    state: FileState | None


class ContentIndex:
    """Per-file `FileState`s, owned by one watch loop.

    Attributes:
        is_complete: False when the start-up scan hit `MAX_INDEXED_FILES`: a deleted file the
            index never knew may then have been real, so it counts.
    """

    def __init__(
        self, states: Mapping[str, FileState] | None = None, *, is_complete: bool = True
    ) -> None:
        self._states = dict(states or {})
        self.is_complete = is_complete

    def get(self, path: str) -> FileState | None:
        """Return the known state of `path`, if any."""
        return self._states.get(path)

    def paths(self) -> tuple[str, ...]:
        """Return every indexed path."""
        return tuple(self._states)

    def record(self, observations: Iterable[Observation]) -> None:
        """Remember observed states; a vanished file is forgotten."""
        for observation in observations:
            if observation.state is None:
                self._states.pop(observation.path, None)
            else:
                self._states[observation.path] = observation.state


def _content_differs(old: FileState, new: FileState) -> bool:
    if old.digest is not None and new.digest is not None:
        return old.digest != new.digest
    return (old.size, old.mtime_ns) != (new.size, new.mtime_ns)


def significant_changes(observations: Iterable[Observation], index: ContentIndex) -> set[str]:
    """Pick the observations that change what the app would load.

    A file counts if it is new to the index, gone but known (or the index is incomplete), or
    its content differs (digests when both sides have one, else size and mtime).

    Args:
        observations: final states of the touched paths.
        index: the states before this burst; not modified.

    Returns:
        The paths of significant changes.
    """
    significant = set()
    for observation in observations:
        old = index.get(observation.path)
        if observation.state is None:
            if old is not None or not index.is_complete:
                significant.add(observation.path)
        elif old is None or _content_differs(old, observation.state):
            significant.add(observation.path)
    return significant


def reconcile(files: Iterable[tuple[str, int, int]], index: ContentIndex) -> set[str]:
    """Return scanned files whose size or mtime the index does not match (new ones included)."""
    stale = set()
    for path, size, mtime_ns in files:
        known = index.get(path)
        if known is None or (known.size, known.mtime_ns) != (size, mtime_ns):
            stale.add(path)
    return stale


def _hash_file(path: str, *, max_bytes: int) -> FileState | None:
    """Stat and (when small enough) hash a regular file; None if it is not one."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > max_bytes:
            return FileState(info.st_size, info.st_mtime_ns)
        digest = hashlib.blake2b(digest_size=16)
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        return FileState(info.st_size, info.st_mtime_ns, digest.digest())


def observe(
    paths: Iterable[str], *, max_hash_bytes: int = MAX_HASHED_FILE_BYTES
) -> list[Observation]:
    """Read the current state of each path (blocking I/O: run it in a thread)."""
    observations = []
    for path in paths:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                continue  # directories, FIFOs, sockets: never content
            state = _hash_file(path, max_bytes=max_hash_bytes)
        except (FileNotFoundError, NotADirectoryError):
            observations.append(Observation(path, None))
            continue
        except OSError:
            continue  # unreadable right now; a later event will bring it back
        if state is not None:
            observations.append(Observation(path, state))
    return observations


# --- scanning and planning ---------------------------------------------------------------


@dataclass(frozen=True)
class TreeScan:
    """The result of walking the watched directories once.

    Attributes:
        dirs: every kept (not ignored) directory, roots included.
        files: included files as (path, size, mtime_ns), at most `MAX_INDEXED_FILES`.
        has_ignored_dirs: an ignored directory exists somewhere below a root.
        is_dir_capped: the walk stopped at `MAX_WATCHED_DIRS` directories.
        is_file_capped: more included files exist than `files` holds.
        path_filter: the filter with every `.gitignore` found.
    """

    dirs: tuple[str, ...]
    files: tuple[tuple[str, int, int], ...]
    has_ignored_dirs: bool
    is_dir_capped: bool
    is_file_capped: bool
    path_filter: PathFilter


@dataclass(frozen=True)
class WatchPlan:
    """What to hand watchfiles: `paths`, watched recursively or each on its own."""

    paths: tuple[str, ...]
    is_recursive: bool


def plan_watch_roots(
    roots: Iterable[str],
    dirs: Iterable[str],
    *,
    has_ignored_dirs: bool,
    extra_files: Iterable[str] = (),
    is_dir_capped: bool = False,
) -> WatchPlan:
    """Choose the OS watch registrations so that no ignored directory is ever watched.

    Args:
        roots: the watched directories.
        dirs: every kept directory found below them (roots included).
        has_ignored_dirs: whether the scan met an ignored directory.
        extra_files: always-watched files; their parent directories get watched too.
        is_dir_capped: the scan gave up early; `dirs` is incomplete.

    Returns:
        Roots recursively when nothing below them is ignored (or the tree was too big to list:
        extra files are then watched by path); otherwise each kept directory non-recursively.
    """
    roots, kept = tuple(roots), set(dirs)
    extra = tuple(extra_files)
    extra_parents = {os.path.dirname(path) for path in extra} - kept
    if is_dir_capped:
        outside = tuple(path for path in extra if os.path.dirname(path) in extra_parents)
        return WatchPlan(roots + tuple(sorted(outside)), is_recursive=True)
    if not has_ignored_dirs and not extra_parents:
        return WatchPlan(roots, is_recursive=True)
    return WatchPlan(tuple(sorted(kept | extra_parents)), is_recursive=False)


@dataclass
class _Walk:
    """Mutable state of one `scan_tree` walk (local to the call)."""

    path_filter: PathFilter
    dirs: list[str] = field(default_factory=list)
    files: list[tuple[str, int, int]] = field(default_factory=list)
    has_ignored_dirs: bool = False
    is_file_capped: bool = False

    def read_gitignore(self, root_index: int, directory: str) -> None:
        text = _read_text_or_empty(os.path.join(directory, ".gitignore"))
        located = self.path_filter.locate(os.path.join(directory, ".gitignore"))
        base = located[1].rpartition("/")[0] if located else ""
        gitignores = list(self.path_filter.gitignores)
        gitignores[root_index] = gitignores[root_index].with_file(base, text)
        self.path_filter = replace(self.path_filter, gitignores=tuple(gitignores))

    def visit(self, root_index: int, directory: str) -> list[str]:
        """List one directory: record included files, return kept subdirectories."""
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return []
        if any(entry.name == ".gitignore" for entry in entries):
            self.read_gitignore(root_index, directory)
        subdirs = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if self.path_filter.is_ignored_dir(entry.path):
                    self.has_ignored_dirs = True
                else:
                    subdirs.append(entry.path)
            elif entry.is_file() and self.path_filter(Change.added, entry.path):
                if len(self.files) >= MAX_INDEXED_FILES:
                    self.is_file_capped = True
                    continue
                with contextlib.suppress(OSError):
                    info = entry.stat()
                    self.files.append((entry.path, info.st_size, info.st_mtime_ns))
        return subdirs


def scan_tree(path_filter: PathFilter, *, max_dirs: int = MAX_WATCHED_DIRS) -> TreeScan:
    """Walk every root once, skipping ignored directories and symlinked ones (blocking I/O)."""
    blank = tuple(GitIgnore() for _ in path_filter.roots)
    walk = _Walk(replace(path_filter, gitignores=blank))
    is_dir_capped = False
    for root_index, root in enumerate(path_filter.roots):
        stack = [root]
        while stack and not is_dir_capped:
            directory = stack.pop()
            walk.dirs.append(directory)
            is_dir_capped = len(walk.dirs) >= max_dirs
            stack.extend(walk.visit(root_index, directory))
    return TreeScan(
        dirs=tuple(walk.dirs),
        files=tuple(walk.files),
        has_ignored_dirs=walk.has_ignored_dirs,
        is_dir_capped=is_dir_capped,
        is_file_capped=walk.is_file_capped,
        path_filter=walk.path_filter,
    )


def build_index(
    scan: TreeScan, *, hash_budget_bytes: int = STARTUP_HASH_BUDGET_BYTES
) -> ContentIndex:
    """Index the scanned files, hashing while the byte budget lasts (blocking I/O)."""
    states: dict[str, FileState] = {}
    for path, size, mtime_ns in scan.files:
        state: FileState | None = FileState(size, mtime_ns)
        if size <= min(hash_budget_bytes, MAX_HASHED_FILE_BYTES):
            with contextlib.suppress(OSError):
                state = _hash_file(path, max_bytes=MAX_HASHED_FILE_BYTES)
            hash_budget_bytes -= size
        if state is not None:
            states[path] = state
    return ContentIndex(states, is_complete=not scan.is_file_capped)


# --- polling ------------------------------------------------------------------------------

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
            step=self._settings.delay_ms, stop_event=self._watcher_stop,
            force_polling=self._polling.should_poll, recursive=self.plan.is_recursive,
        )  # fmt: skip
        self._pending = asyncio.ensure_future(anext(self._changes))
        # One loop turn runs the generator up to its first wait: RustNotify then exists.
        await asyncio.sleep(0)
        if self._on_watching is not None:
            self._on_watching(self.plan)

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

    async def next_raw(self, stop_event: asyncio.Event) -> RawChanges | None:
        """Wait for the next raw set; None once `stop_event` is set or the watcher ended."""
        assert self._pending is not None, "start() first"  # noqa: S101 - internal invariant
        stopper = asyncio.ensure_future(_wait_for(stop_event))
        waiters: set[asyncio.Future[RawChanges] | asyncio.Task[None]] = {self._pending, stopper}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not self._pending.done():
            return None
        try:
            raw = self._pending.result()
        except StopAsyncIteration:
            return None
        except FileNotFoundError:  # a directory in the plan vanished before the watcher started
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
        observations = await asyncio.to_thread(observe, sorted(candidates))
        significant = significant_changes(observations, self.index)
        self.index.record(observations)
        if not significant:
            return None
        return make_batch(significant, self.scan.path_filter, raw_count=len(raw))


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
        awatch = poll_changes if polling.should_poll else watchfiles.awatch
    loop = _WatchLoop(settings, awatch, polling, on_watching)
    loop.scan = await asyncio.to_thread(scan_tree, loop.base_filter)
    loop.index = await asyncio.to_thread(build_index, loop.scan)
    await loop.start()
    try:
        while (raw := await loop.next_raw(stop_event)) is not None:
            batch = await loop.handle(raw)
            if batch is not None:
                yield batch
    finally:
        await loop.stop()
