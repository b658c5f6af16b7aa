"""Which output a run uses: ``--ui auto|tui|plain|json``, with ``auto`` resolved here. Pure.

``auto`` becomes ``tui`` only where a live dashboard can work and someone is there to see it:

* stdin **and** stdout are terminals (not a pipe, a file, an IDE console or ``| tee``),
* ``TERM`` is set and is not ``dumb`` (Emacs shell buffers, some CI runners),
* ``CI`` is unset or empty (GitHub Actions, GitLab, Buildkite... set it).

Otherwise ``auto`` becomes ``plain``. An explicit ``tui``, ``plain`` or ``json`` is kept as
given: the user asked for it. Both entry points (single process and ``--reload``) call
`resolve_ui` once, before anything is printed, through `devserve.reporting.open_session`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Literal, TextIO

from devserve.config import UIMode

ResolvedUI = Literal["tui", "plain", "json"]


def resolve_ui(
    requested: UIMode, *, stdin_is_tty: bool, stdout_is_tty: bool, environ: Mapping[str, str]
) -> ResolvedUI:
    """Return the output mode for `requested` (``auto`` resolved, the others unchanged).

    Args:
        requested: the ``--ui`` value.
        stdin_is_tty: whether standard input is a terminal (keys need one).
        stdout_is_tty: whether standard output is a terminal (the dashboard needs one).
        environ: the environment (``TERM`` and ``CI`` are read).

    Returns:
        ``"tui"``, ``"plain"`` or ``"json"``.
    """
    if requested != "auto":
        return requested
    term = environ.get("TERM", "")
    if stdin_is_tty and stdout_is_tty and term and term != "dumb" and not environ.get("CI"):
        return "tui"
    return "plain"


def resolve_for_terminal(
    requested: UIMode,
    environ: Mapping[str, str],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> ResolvedUI:
    """`resolve_ui` for this process's standard streams (or the ones given)."""
    return resolve_ui(
        requested,
        stdin_is_tty=_isatty(sys.stdin if stdin is None else stdin),
        stdout_is_tty=_isatty(sys.stdout if stdout is None else stdout),
        environ=environ,
    )


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed
        return False
