"""Tests for devserve.uimode: how --ui auto is resolved."""

from __future__ import annotations

import pytest

from devserve.config import UI_MODES, UIMode
from devserve.uimode import resolve_ui

TERMINAL = {"TERM": "xterm-256color"}


def _auto(*, stdin: bool = True, stdout: bool = True, environ: dict[str, str] | None = None) -> str:
    return resolve_ui(
        "auto",
        stdin_is_tty=stdin,
        stdout_is_tty=stdout,
        environ=TERMINAL if environ is None else environ,
    )


def test_auto_on_an_interactive_terminal_is_tui() -> None:
    assert _auto() == "tui"


@pytest.mark.parametrize(
    ("stdin", "stdout"),
    [(False, True), (True, False), (False, False)],
    ids=["stdin-piped", "stdout-piped", "both-piped"],
)
def test_auto_without_two_terminals_is_plain(stdin: bool, stdout: bool) -> None:
    assert _auto(stdin=stdin, stdout=stdout) == "plain"


@pytest.mark.parametrize(
    "environ",
    [
        {"TERM": "dumb"},
        {},
        {"TERM": ""},
        {"TERM": "xterm", "CI": "true"},
        {"TERM": "xterm", "CI": "1"},
    ],
    ids=["dumb", "no-term", "empty-term", "ci-true", "ci-1"],
)
def test_auto_on_dumb_terminals_and_ci_is_plain(environ: dict[str, str]) -> None:
    assert _auto(environ=environ) == "plain"


def test_empty_ci_counts_as_unset() -> None:
    assert _auto(environ={"TERM": "xterm", "CI": ""}) == "tui"


@pytest.mark.parametrize("mode", [m for m in UI_MODES if m != "auto"])
@pytest.mark.parametrize("tty", [True, False])
def test_explicit_modes_are_kept(mode: UIMode, tty: bool) -> None:
    environ = {"TERM": "dumb", "CI": "1"}
    assert resolve_ui(mode, stdin_is_tty=tty, stdout_is_tty=tty, environ=environ) == mode
