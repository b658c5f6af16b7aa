"""The terminal under the live dashboard: modes, size, raw writes. Shell.

`Terminal.enter` saves the terminal's attributes and switches to cbreak mode (keys arrive
one at a time, unechoed; Ctrl+C and Ctrl+Z still raise signals) with the cursor hidden;
`Terminal.leave` puts back exactly what was saved, shows the cursor and resets colors.
`write` is the one place output goes: a frame is a single string, written in one call.

`editor_command` (pure) builds the command that opens a file at a line in ``$EDITOR``;
`Controls` is what the keys ask of the server (`signal_controls`: the same signals as
Ctrl+C and ``kill -HUP``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from devserve.tui.view import Size

HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
RESET = "\x1b[0m"
ALT_SCREEN_ON = "\x1b[?1049h"
ALT_SCREEN_OFF = "\x1b[?1049l"
SYNC_ON = "\x1b[?2026h"
SYNC_OFF = "\x1b[?2026l"
ERASE_DOWN = "\x1b[J"
HOME = "\x1b[H"
CLEAR_SCREEN = "\x1b[H\x1b[2J"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")

#: Editors that take ``+LINE FILE``, and those that take ``FILE:LINE``.
_PLUS_LINE = {"vi", "vim", "nvim", "nano", "emacs", "emacsclient", "micro", "kak", "joe", "ne"}
_COLON_LINE = {"subl", "zed", "hx", "helix", "atom", "mate"}
_GOTO = {"code", "code-insiders", "codium", "cursor", "windsurf"}


def visible(text: str) -> str:
    """``text`` without ANSI escape sequences (colors, links)."""
    return _ANSI.sub("", text)


def has_display(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether a graphical browser can open (macOS, Windows, or X11/Wayland on the rest)."""
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def editor_command(editor: str, filename: str, line: int) -> list[str]:
    """The command that opens ``filename`` at ``line`` in ``editor`` (``$VISUAL``/``$EDITOR``).

    Returns an empty list when ``editor`` is empty.
    """
    argv = shlex.split(editor)
    if not argv:
        return []
    name = Path(argv[0]).name
    if name in _PLUS_LINE:
        return [*argv, f"+{line}", filename]
    if name in _GOTO:
        return [*argv, "--goto", f"{filename}:{line}"]
    if name in _COLON_LINE:
        return [*argv, f"{filename}:{line}"]
    if name in {"idea", "pycharm", "charm"}:
        return [*argv, "--line", str(line), filename]
    return [*argv, filename]


@dataclass(frozen=True, slots=True)
class Controls:
    """What keys can ask of the server: quit, and reload (None: not under ``--reload``)."""

    quit: Callable[[], None]
    reload: Callable[[], None] | None = None


def signal_controls(*, can_reload: bool) -> Controls:
    """Keys act like the signals: ``q`` is SIGTERM (graceful stop), ``r`` SIGHUP (reload)."""
    pid = os.getpid()
    return Controls(
        quit=lambda: os.kill(pid, signal.SIGTERM),
        reload=(lambda: os.kill(pid, signal.SIGHUP)) if can_reload else None,
    )


class Terminal:
    """A terminal on two descriptors (output, input).

    Args:
        out_fd: where frames are written (a terminal, or anything for tests).
        in_fd: where keys are read; None when keys are off (stdin is not a terminal).
        stream: written instead of ``out_fd`` when that is None (a stream with no
            descriptor, as in tests).
    """

    def __init__(self, out_fd: int | None, in_fd: int | None, stream: TextIO | None = None) -> None:
        self.out_fd = out_fd
        self.in_fd = in_fd
        self.stream = stream
        self._saved: list[Any] | None = None
        self.is_active = False

    @classmethod
    def standard(cls, stream: TextIO | None = None) -> Terminal:
        """`stream` (stdout by default), with keys from stdin when it is a terminal."""
        in_fd = None
        with contextlib.suppress(ValueError, OSError, AttributeError):
            if sys.stdin.isatty():
                in_fd = sys.stdin.fileno()
        out = stream or sys.stdout
        try:
            return cls(out.fileno(), in_fd)
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
            return cls(None, in_fd, out)

    def size(self) -> Size:
        """The size in cells (80x24 when it cannot be read)."""
        try:
            columns, lines = os.get_terminal_size(-1 if self.out_fd is None else self.out_fd)
        except OSError:
            return Size(80, 24)
        return Size(max(20, columns), max(5, lines))

    def enter(self) -> None:
        """Cbreak mode (when keys are on) and a hidden cursor."""
        if self.in_fd is not None:
            import termios  # noqa: PLC0415 - POSIX only

            with contextlib.suppress(termios.error, OSError):
                self._saved = termios.tcgetattr(self.in_fd)
                mode = termios.tcgetattr(self.in_fd)
                mode[3] &= ~(termios.ICANON | termios.ECHO)
                mode[6][termios.VMIN] = 1
                mode[6][termios.VTIME] = 0
                termios.tcsetattr(self.in_fd, termios.TCSANOW, mode)
        self.write(HIDE_CURSOR)
        self.is_active = True

    def leave(self, *, alt_screen: bool = False) -> None:
        """Put back the saved attributes, show the cursor, reset colors."""
        self.write((ALT_SCREEN_OFF if alt_screen else "") + RESET + SHOW_CURSOR)
        if self._saved is not None and self.in_fd is not None:
            import termios  # noqa: PLC0415

            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)
        self.is_active = False

    def write(self, text: str) -> None:
        """Write ``text`` in full (one call unless the kernel takes it in parts)."""
        if self.out_fd is None:
            if self.stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.stream.write(text)
                    self.stream.flush()
            return
        data = text.encode("utf-8", "replace")
        while data:
            try:
                written = os.write(self.out_fd, data)
            except InterruptedError:
                continue
            except BlockingIOError:
                import select  # noqa: PLC0415 - a non-blocking terminal that is full

                select.select([], [self.out_fd], [], 1.0)
                continue
            except OSError:
                return  # the terminal is gone: nothing left to show
            data = data[written:]

    def read_keys(self) -> str:
        """What was typed (non-blocking read after the loop said it is readable)."""
        if self.in_fd is None:
            return ""
        try:
            return os.read(self.in_fd, 256).decode("utf-8", "replace")
        except (BlockingIOError, InterruptedError):
            return ""
        except OSError:
            return ""
