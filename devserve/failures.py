"""Turn a live exception into a `devserve.pages.Failure`: frames, source context, request.

Worker side: it reads source files (through `linecache`) to show the lines around each
frame. A frame is the user's when its file lies inside a project directory and outside
``site-packages``, the standard library and devserve; the frames devserve itself adds
above the app (its middleware, the import machinery) are left out.
"""

from __future__ import annotations

import linecache
import os
import sysconfig
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from devserve.handoff import Crash
from devserve.pages import CRASH_STAGE, Failure, Frame, RequestSummary

CONTEXT_LINES = 3
MAX_FRAMES = 60
MAX_HEADERS = 40
_DEVSERVE_DIR = str(Path(__file__).resolve().parent) + os.sep
_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) + os.sep
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
)
_INTERNAL_MARKERS = ("<frozen ", "/importlib/", "/asyncio/", "uvloop")


def is_internal(filename: str) -> bool:
    """Frames of devserve and the machinery between it and the user's module."""
    return filename.startswith(_DEVSERVE_DIR) or any(m in filename for m in _INTERNAL_MARKERS)


class FrameClassifier:
    """Which files are the user's, and how to show their names."""

    def __init__(self, project_dirs: Iterable[str]) -> None:
        self.roots = tuple(str(Path(d).resolve()) + os.sep for d in project_dirs)

    def is_user(self, filename: str) -> bool:
        """Inside the project, outside installed packages, the stdlib and devserve."""
        if "site-packages" in filename or "dist-packages" in filename or is_internal(filename):
            return False
        if filename.startswith(_LIBRARY_DIRS) and not filename.startswith(self.roots):
            return False
        return filename.startswith(self.roots) if self.roots else not filename.startswith("<")

    def shown(self, filename: str) -> str:
        """The file name relative to the project root holding it, else as it is."""
        for root in self.roots:
            if filename.startswith(root):
                return filename[len(root) :]
        return filename


def _package(filename: str) -> str:
    for marker in ("site-packages/", "dist-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith(_DEVSERVE_DIR):
        return "devserve"
    return "python" if filename.startswith(_LIBRARY_DIRS) else ""


def source_context(
    filename: str, lineno: int, radius: int = CONTEXT_LINES
) -> tuple[tuple[int, str], ...]:
    """(line number, text) of the lines around `lineno` in `filename` (empty if unreadable)."""
    linecache.checkcache(filename)
    start = max(1, lineno - radius)
    lines = []
    for number in range(start, lineno + radius + 1):
        text = linecache.getline(filename, number)
        if not text and number > lineno:
            break
        lines.append((number, text.rstrip("\n")))
    return tuple(lines) if any(text for _, text in lines) else ()


def exception_failure(
    exc: BaseException,
    classifier: FrameClassifier,
    *,
    status: int,
    stage: str = "",
    request: RequestSummary | None = None,
    changed: tuple[str, ...] = (),
) -> Failure:
    """Describe `exc` for an error page, without devserve's own frames above the app."""
    summary = traceback.TracebackException.from_exception(exc)
    stack = list(summary.stack)
    # devserve and the import machinery run above the app: not shown (library frames are,
    # folded on the page).
    while stack and is_internal(stack[0].filename):
        stack.pop(0)
    if isinstance(exc, SyntaxError) and not any(classifier.is_user(f.filename) for f in stack):
        stack = []  # only the machinery that compiled the file: the error names the line
    summary.stack = traceback.StackSummary.from_list(stack)
    frames = [
        Frame(
            shown=classifier.shown(f.filename),
            lineno=f.lineno or 0,
            name=f.name,
            line=(f.line or "").strip(),
            is_user=classifier.is_user(f.filename),
            context=source_context(f.filename, f.lineno or 0)
            if classifier.is_user(f.filename)
            else (),
            package=_package(f.filename),
            path=f.filename,
        )
        for f in stack[-MAX_FRAMES:]
    ]
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        frames.append(
            Frame(
                shown=classifier.shown(exc.filename),
                lineno=exc.lineno,
                name="<module>",
                line=(exc.text or "").strip(),
                is_user=True,
                context=source_context(exc.filename, exc.lineno),
                path=exc.filename,
            )
        )
    message = str(exc)
    if isinstance(exc, SystemExit):
        message = f"the application exited with code {exc.code!r} while starting"
    return Failure(
        status=status,
        exc_type=type(exc).__qualname__,
        message=message,
        frames=tuple(frames),
        traceback_text="".join(summary.format()),
        stage=stage,
        request=request,
        changed=changed,
    )


def request_summary(scope: Mapping[str, Any]) -> RequestSummary:
    """The request as the error page lists it."""
    client = scope.get("client")
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers", ())[:MAX_HEADERS]
    )
    return RequestSummary(
        method=str(scope.get("method", "")),
        path=str(scope.get("path", "")),
        query=bytes(scope.get("query_string", b"")).decode("latin-1"),
        client=f"{client[0]}:{client[1]}" if client else "-",
        headers=headers,
    )


def crash_failure(crash: Crash, *, status: int = 503, changed: tuple[str, ...] = ()) -> Failure:
    """Describe a worker that died without a Python exception (#7), for the crash page.

    There is no traceback: the process ended by ``os._exit()``, a fatal error in native
    code or a signal. What it last wrote (when the supervisor read its output) is shown.
    """
    verb = f"was killed by {crash.signal}" if crash.signal else f"ended with {crash.how}"
    if crash.retry_in_s is None:
        message = f"the worker process {verb} before it was ready"
        hint = ""
    else:
        message = f"the worker process {verb} while serving"
        hint = (
            f"devserve restarts the application in {crash.retry_in_s:.1f} s and answers with "
            "this page meanwhile; a save restarts it at once."
        )
    if crash.is_output_read:
        note = "its last output is below" if crash.output else "it wrote nothing"
    else:
        note = "its output went to the terminal devserve runs in"
    return Failure(
        status=status,
        exc_type="WorkerCrashed",
        message=f"{message} (no Python exception was raised)",
        frames=(),
        traceback_text=(
            f"No Python traceback: worker {crash.generation} {verb} (os._exit(), a fatal "
            f"error in native code, or a signal); {note}.\n"
        ),
        stage=CRASH_STAGE,
        changed=changed,
        output=crash.output,
        hint=hint,
    )
