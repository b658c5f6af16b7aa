"""The command-line options of dev pages, live reload and allowed hosts (#7).

Declared here as (names, settings) pairs that `devserve.options` turns into its sourced
options, in its one list, so each still gets its ``DEVSERVE_*`` variable and errors that
name the value's source; kept apart only to keep that module small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def split_hosts(_ctx: object, _param: object, value: str | Sequence[str]) -> tuple[str, ...]:
    """``--allowed-hosts a,b`` (or a TOML list) -> ("a", "b")."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() for item in items if item.strip())


DEV_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--livereload/--no-livereload",),
        {"default": None, "help": "Reload browser pages on new code [default: on with --reload]."},
    ),
    (
        ("--livereload-include", "livereload_includes"),
        {
            "multiple": True,
            "help": "Files read at request time: refresh browsers, keep the worker "
            "(repeatable; templates, CSS, JS, images always).",
        },
    ),
    (
        ("--allowed-hosts",),
        {
            "default": "",
            "callback": split_hosts,
            "help": "Comma-separated extra Host names ('.example.test' with subdomains, '*' all) "
            "[default: localhost, 127.0.0.1, ::1, this machine].",
        },
    ),
    (
        ("--debug-pages/--no-debug-pages",),
        {
            "default": True,
            "show_default": True,
            "help": "Tracebacks for allowed hosts on errors (off: a plain 500).",
        },
    ),
)
