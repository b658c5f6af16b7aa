"""Deciding what the OS watcher sees: the path filter, the tree scan and the watch plan.

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
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from watchfiles import Change

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


def _read_text_or_empty(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


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
