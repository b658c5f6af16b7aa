"""The content check: remember what each watched file holds, and tell real changes from noise.

`ContentIndex` remembers (size, mtime_ns, blake2b) per file, built at start-up (`build_index`)
for up to `MAX_INDEXED_FILES` files, hashing up to `STARTUP_HASH_BUDGET_BYTES` (files past the
budget are compared by size and mtime until first seen again). `significant_changes` (pure)
compares the *final* state of each touched file with the index, so an identical rewrite, a
write-rename save with the same bytes or a temp file that came and went causes no reload.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from devserve.watchplan import TreeScan

STARTUP_HASH_BUDGET_BYTES = 64 * 1024 * 1024
MAX_HASHED_FILE_BYTES = 16 * 1024 * 1024


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
