"""What each key does. Pure: the state changes here; what needs the outside is returned.

`press` applies a key to `DashboardState` (dashboard, pause, help, sort, traceback) and
returns the `Action` the shell must carry out (quit, reload, clear the screen, open the
browser, run the editor), or None. Unknown keys do nothing; keys are case-insensitive.
"""

from __future__ import annotations

import enum

from devserve.tui.state import DashboardState, Screen


class Action(enum.Enum):
    """What the shell does after a key."""

    QUIT = "quit"
    RELOAD = "reload"
    CLEAR = "clear"
    OPEN = "open"
    EDIT = "edit"


ESCAPE = "\x1b"


def press(state: DashboardState, key: str) -> Action | None:  # noqa: C901, PLR0911, PLR0912 - a key table
    """Apply ``key`` to ``state``; return what the shell must do, if anything."""
    match key.lower():
        case "q":
            state.notice("stopping…")
            return Action.QUIT
        case "r":
            if not state.can_reload:
                state.notice("reloading needs --reload", "warning")
                return None
            state.notice("reload asked", "reload")
            return Action.RELOAD
        case "c":
            state.clear()
            return Action.CLEAR
        case "o":
            if not state.urls:
                state.notice("not serving yet")
                return None
            state.notice(f"opening {state.urls[0]}")
            return Action.OPEN
        case "e":
            if state.error_location() is None:
                state.notice("no error to open yet")
                return None
            return Action.EDIT
        case "d":
            state.toggle_dashboard()
        case "p" | " ":
            state.toggle_pause()
        case "h" | "?":
            state.toggle_help()
        case "s" if state.screen is Screen.DASHBOARD:
            state.next_sort()
        case "t":
            if not state.full_traceback():
                state.notice("no error yet")
        case "\x1b" if state.show_help:
            state.toggle_help()
        case "\x1b" if state.screen is Screen.DASHBOARD:
            state.toggle_dashboard()
    return None
