"""Asset changes for browsers: which saves need a new worker, and how the worker hears of them.

A save of a file the app reads at request time (a template, a stylesheet, a script, an
image: `DEFAULT_GLOBS` plus ``--livereload-include``) needs no new worker; the browser only
has to reload, and for stylesheets not even that. Python files, ``--reload-include``
matches and dependency files still start a new worker (`classify`).

**Supervisor -> worker.** The event channel is one-way (worker -> supervisor) and workers
are controlled by signals only; this adds the smallest thing that carries data the other
way without a protocol that could deadlock: a *notice file* plus a signal. The supervisor
keeps the last `MAX_NOTICES` notices, each ``{"seq", "kind", "paths"}``, in one JSON file
in its private run directory (``mkdtemp``, mode 0700), replaced atomically
(write + ``os.replace``), then sends ``SIGUSR1`` to every worker that reported ready. A
worker's handler reads the file and forwards the notices newer than the last ``seq`` it saw
to its live-reload streams ("crash" notices tell browsers that a new worker died while
starting, so the page they show is still the old code). Signals may coalesce and the file
may be read twice: the sequence numbers make both harmless. A worker that starts later
never sees old notices: it begins at the file's current ``seq`` (its pages are newer).

Not chosen: writing to the *parent pipe* (one pipe shared by every worker, read for EOF
only: a message could not be addressed to one worker), or a second socketpair per worker
(one more descriptor to carry through the fork server's ``SCM_RIGHTS`` handoff and one more
reader in every worker, for a few messages a day).
"""

from __future__ import annotations

import fnmatch
import json
import os
import secrets
import signal
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from devserve.config import Config
from devserve.events import Event, LogLine, WorkerExited, WorkerReady

Kind = Literal["restart", "page", "css", "crash"]
DEFAULT_GLOBS = (
    "*.html",
    "*.htm",
    "*.jinja",
    "*.jinja2",
    "*.j2",
    "*.css",
    "*.js",
    "*.mjs",
    "*.svg",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.webp",
    "*.ico",
)
MAX_NOTICES = 16


def _matches(path: str, globs: Iterable[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(path, g) for g in globs)


def classify(
    paths: tuple[str, ...], *, asset_globs: tuple[str, ...], reload_globs: tuple[str, ...]
) -> Kind:
    """What a batch of changed paths needs: a new worker, a page reload, or new stylesheets.

    A path matching `reload_globs` (``*.py``, ``--reload-include``) restarts, whatever
    else matched; so does an empty batch (an explicit reload) or a path matching neither.
    """
    if not paths:
        return "restart"
    kinds = set()
    for path in paths:
        if _matches(path, reload_globs) or not _matches(path, asset_globs):
            return "restart"
        kinds.add("css" if path.endswith(".css") else "page")
    return "css" if kinds == {"css"} else "page"


@dataclass(frozen=True, slots=True)
class Notice:
    """One asset change to pass on to browsers."""

    seq: int
    kind: Kind
    paths: tuple[str, ...]
    message: str = ""


def encode(notices: list[Notice]) -> str:
    """The notice file's text."""
    return json.dumps(
        [
            {"seq": n.seq, "kind": n.kind, "paths": list(n.paths), "message": n.message}
            for n in notices
        ]
    )


def decode(text: str) -> list[Notice]:
    """Parse the notice file; anything malformed is no notice."""
    try:
        raw = json.loads(text)
        return [
            Notice(
                int(item["seq"]),
                item["kind"],
                tuple(str(p) for p in item["paths"]),
                str(item.get("message", "")),
            )
            for item in raw
            if item.get("kind") in {"page", "css", "crash"}
        ]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


class NoticeBoard:
    """The supervisor's side: the run directory and the notice file in it."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="devserve-"))
        self.path = self.directory / "notices.json"
        self.notices: list[Notice] = []
        self.seq = 0
        self._write()

    def post(self, kind: Kind, paths: tuple[str, ...], message: str = "") -> Notice:
        """Record a notice (atomically replacing the file) and return it."""
        self.seq += 1
        notice = Notice(self.seq, kind, paths, message)
        self.notices = [*self.notices, notice][-MAX_NOTICES:]
        self._write()
        return notice

    def _write(self) -> None:
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(encode(self.notices), encoding="utf-8")
        os.replace(scratch, self.path)

    def close(self) -> None:
        """Remove the run directory."""
        for path in (self.path, self.path.with_suffix(".tmp")):
            path.unlink(missing_ok=True)
        self.directory.rmdir()


def read_notices(path: str, after: int) -> list[Notice]:
    """The notices in the file at `path` newer than `after` (none if it is unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    return [n for n in decode(text) if n.seq > after]


class _Signallable(Protocol):
    def send_signal(self, signum: int) -> None: ...


class BrowserNotices:
    """The supervisor's side of live reload, in one place (it does nothing when off).

    It holds the run's token and the notice board, remembers which files led to the next
    worker (`changed`, shown on its error pages) and decides what a save needs (`saved`).
    It learns which workers serve from the supervisor's own reports (`observing`): a
    ``WorkerReady`` worker has installed its notice handler and may be signalled; an
    unexpected ``WorkerExited`` that is not retried means new code died while starting
    while the old worker serves on, and browsers are told so.

    Args:
        enabled: live reload is on.
        asset_globs: files read at request time (`DEFAULT_GLOBS` + ``--livereload-include``).
        reload_globs: files that always need a new worker (``*.py`` + ``--reload-include``).
        workers: the supervisor's live worker processes by generation.
        report: the supervisor's reporter (for one line per refresh).
    """

    def __init__(
        self,
        *,
        enabled: bool,
        asset_globs: tuple[str, ...],
        reload_globs: tuple[str, ...],
        workers: Mapping[int, _Signallable],
        report: Callable[[Event], None],
    ) -> None:
        self.board = NoticeBoard() if enabled else None
        self.token = secrets.token_urlsafe(18) if enabled else None
        self.asset_globs = asset_globs
        self.reload_globs = reload_globs
        self.workers = workers
        self.report = report
        self.changed: tuple[str, ...] = ()
        self.ready: set[int] = set()

    @classmethod
    def for_config(
        cls, config: Config, workers: Mapping[int, _Signallable], report: Callable[[Event], None]
    ) -> BrowserNotices:
        """The notices for `config` (``--livereload``, ``--livereload-include``, ...)."""
        return cls(
            enabled=config.is_livereload,
            asset_globs=(*DEFAULT_GLOBS, *config.livereload_includes),
            reload_globs=("*.py", *config.reload_includes),
            workers=workers,
            report=report,
        )

    def observing(self, report: Callable[[Event], None]) -> Callable[[Event], None]:
        """`report`, learning from the lifecycle events that pass through it."""

        def observe(event: Event) -> None:
            report(event)
            if isinstance(event, WorkerReady):
                self.ready.add(event.generation)
            elif isinstance(event, WorkerExited):
                self.ready.discard(event.generation)
                if not event.is_expected and event.retry_in_s is None and not event.has_crash_page:
                    how = f"exit code {event.code}" if event.code is not None else event.signal
                    text = (
                        f"The new code crashed while starting ({how}); this is still the old code."
                    )
                    self.post("crash", self.changed, text)

        return observe

    def handoff_fields(self) -> dict[str, Any]:
        """What a new worker's `devserve.handoff.Handoff` carries for live reload."""
        path = str(self.board.path) if self.board is not None else None
        return {"livereload_token": self.token, "notice_path": path, "changed": self.changed}

    def saved(self, paths: tuple[str, ...]) -> bool:
        """Handle saved files: True when browsers were told and no new worker is needed."""
        kind = classify(paths, asset_globs=self.asset_globs, reload_globs=self.reload_globs)
        if self.board is None or kind == "restart":
            self.changed = paths
            return False
        self.post(kind, paths)
        shown = ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")  # noqa: PLR2004
        what = "swapping stylesheets" if kind == "css" else "reloading pages"
        self.report(LogLine("info", f"{shown} changed: {what} in browsers"))
        return True

    def post(self, kind: Kind, paths: tuple[str, ...], message: str = "") -> None:
        """Post a notice and signal every worker that serves."""
        if self.board is None:
            return
        self.board.post(kind, paths, message)
        for generation in self.ready:
            worker = self.workers.get(generation)
            if worker is not None:
                worker.send_signal(signal.SIGUSR1)

    def close(self) -> None:
        """Remove the run directory."""
        if self.board is not None:
            self.board.close()
