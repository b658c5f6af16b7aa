"""The command-line options of dev pages, live reload and allowed hosts (#7).

Each is a `devserve.options.SourcedOption` like every other option (a ``DEVSERVE_*``
variable each, errors naming the value's source), declared apart only to keep that module
under the size limit; `apply_dev_options` attaches them to the command after the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from devserve.options import SourcedOption


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


def apply_dev_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with the options above, in order."""
    for names, settings in reversed(DEV_OPTIONS):
        func = click.option(*names, cls=SourcedOption, **settings)(func)
    return func
