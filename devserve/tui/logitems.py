"""The request log's items: what one log line (or block) shows, and how repeats collapse. Pure.

`DashboardState` makes them from events; `devserve.tui.view` draws them. Two items are the
*same* when a person would read them as a repeat (same request line, same output line,
same exception at the same place); a repeat is not shown again, the first one's count grows.
Only the *open* item (the newest, still drawn in the live region) is ever changed, in place
by `bump`; once committed to the scrollback an item is never touched again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from devserve.events import AppErrored, StartupFailed, WorkerExited, exit_how


@dataclass(slots=True)
class RequestLine:
    """A finished request, with the exception that broke it (5xx) if one was reported."""

    method: str
    path: str
    status: int
    duration_ms: float
    bytes_out: int
    is_slow: bool
    error: AppErrored | None = None
    count: int = 1
    max_ms: float = 0.0


@dataclass(slots=True)
class ErrorBlock:
    """An app exception shown on its own (after the response started, or in lifespan)."""

    error: AppErrored
    count: int = 1
    is_full: bool = False


@dataclass(slots=True)
class FailureBlock:
    """The app could not be imported or started: broken code."""

    failure: StartupFailed


@dataclass(slots=True)
class OutputLine:
    """A line the app printed."""

    stream: str
    text: str
    count: int = 1


@dataclass(slots=True)
class NoticeLine:
    """devserve's own message (a log line, a reload, a websocket, a key's answer)."""

    level: str
    text: str
    count: int = 1


@dataclass(slots=True)
class HiddenLine:
    """``count`` items were not shown (sampled out, or overflowed while held)."""

    count: int
    what: str = "requests"


LogItem: TypeAlias = RequestLine | ErrorBlock | FailureBlock | OutputLine | NoticeLine | HiddenLine


def same(a: LogItem, b: LogItem) -> bool:
    """Whether `b` repeats `a` (so it collapses into a count)."""
    match a, b:
        case RequestLine(), RequestLine():
            return (a.method, a.path, a.status, a.is_slow, _error_key(a.error)) == (
                b.method,
                b.path,
                b.status,
                b.is_slow,
                _error_key(b.error),
            )
        case ErrorBlock(), ErrorBlock():
            return (_error_key(a.error), a.is_full) == (_error_key(b.error), b.is_full)
        case OutputLine(), OutputLine():
            return (a.stream, a.text) == (b.stream, b.text)
        case NoticeLine(), NoticeLine():
            return (a.level, a.text) == (b.level, b.text)
    return False


def _error_key(error: AppErrored | None) -> tuple[str, ...] | None:
    if error is None:
        return None
    where = error.frames[-1] if error.frames else None
    return (error.exc_type, error.message, f"{where.filename}:{where.lineno}" if where else "")


def bump(item: LogItem, new: LogItem) -> None:
    """Count `new` (a repeat of `item`) into `item`: one more, and the latest duration."""
    match item, new:
        case RequestLine(), RequestLine():
            item.count += 1
            item.duration_ms = new.duration_ms
            item.max_ms = max(item.max_ms, new.duration_ms)
        case ErrorBlock() | OutputLine() | NoticeLine(), _:
            item.count += 1


def user_frame(error: AppErrored) -> tuple[str, int] | None:
    """The deepest frame of the user's own code, as (file, line), else the deepest frame."""
    frames = [f for f in error.frames if f.is_user_code] or list(error.frames)
    if not frames:
        return None
    return frames[-1].filename, frames[-1].lineno


def crash_notice(event: WorkerExited) -> NoticeLine:
    """The log line of a worker that died unasked, with what happens next."""
    how = exit_how(event.code, event.signal)
    text = f"worker {event.generation} stopped unexpectedly ({how})"
    if event.has_crash_page:
        text += "; serving the error until the next save"
    elif event.retry_in_s is not None:
        text += f"; restarting in {event.retry_in_s:.1f} s"
    return NoticeLine("error", text)
