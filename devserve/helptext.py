"""``devserve --help`` grouped by topic, with examples.

Options are declared once, in `devserve.options`, in any order; this module only decides
which topic each belongs to when help is printed (and when the README's configuration
reference is generated from the same command, see ``scripts/gen_readme.py``):

1. an explicit entry in `_SECTION_BY_NAME` (the parameter name, i.e. the Config field);
2. else the first matching prefix in `_SECTION_BY_PREFIX` (``reload_*`` -> Reload, ...);
3. else "Other", so an option added without a topic still shows up, last.

`SectionedCommand` is a plain `click.Command` whose ``format_options`` writes one section
per topic (in `SECTION_ORDER`) instead of one long "Options" list, and whose epilog is a
list of example command lines printed as written (click would re-wrap them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click

SERVER = "Server"
RELOAD = "Reload"
TLS = "HTTPS and TLS"
DASHBOARD = "Dashboard"
LOGGING = "Logging"
DEV_PAGES = "Dev pages and host checks"
PROXY = "Proxies and response headers"
LIMITS = "Limits and timeouts"
WEBSOCKET = "WebSocket"
OTHER = "Other"

#: The order sections are printed in.
SECTION_ORDER = (
    SERVER,
    RELOAD,
    TLS,
    DASHBOARD,
    LOGGING,
    DEV_PAGES,
    PROXY,
    LIMITS,
    WEBSOCKET,
    OTHER,
)

_SECTION_BY_NAME = {
    "host": SERVER,
    "port": SERVER,
    "uds": SERVER,
    "fd": SERVER,
    "app_dir": SERVER,
    "factory": SERVER,
    "loop": SERVER,
    "http": SERVER,
    "lifespan": SERVER,
    "env_file": SERVER,
    "root_path": SERVER,
    "livereload": RELOAD,
    "cert_dir": TLS,
    "ui": DASHBOARD,
    "slow_ms": DASHBOARD,
    "log_level": LOGGING,
    "access_log": LOGGING,
    "use_colors": LOGGING,
    "allowed_hosts": DEV_PAGES,
    "debug_pages": DEV_PAGES,
    "proxy_headers": PROXY,
    "forwarded_allow_ips": PROXY,
    "headers": PROXY,
    "server_header": PROXY,
    "date_header": PROXY,
    "limit_concurrency": LIMITS,
    "backlog": LIMITS,
    "h11_max_incomplete_event_size": LIMITS,
    "max_header_count": LIMITS,
    "version": OTHER,
    "help": OTHER,
}

_SECTION_BY_PREFIX = (
    ("reload", RELOAD),
    ("livereload", RELOAD),
    ("ws", WEBSOCKET),
    ("ssl", TLS),
    ("https", TLS),
    ("cert", TLS),
    ("timeout", LIMITS),
    ("limit", LIMITS),
    ("ui", DASHBOARD),
    ("dashboard", DASHBOARD),
    ("log", LOGGING),
    ("access_log", LOGGING),
    ("debug", DEV_PAGES),
    ("allowed", DEV_PAGES),
)

#: (command line, what it does), printed under "Examples".
EXAMPLES = (
    ("devserve main:app --reload", "serve main.py's app; new code on every save"),
    ("devserve", "find the app (main.py, app.py, app/main.py, src/, */asgi.py)"),
    ("devserve app/api.py:api --port 9000", "a file path and attribute, another port"),
    ("devserve main:app --https", "HTTPS from a local certificate authority"),
    ("devserve mysite.asgi:application --reload", "a Django project"),
    ("devserve main:app --reload-include '*.html'", "also reload when templates change"),
    ("DEVSERVE_PORT=9000 devserve main:app", "any option from the environment"),
    ("python -m devserve main:app", "the same, as a module (IDE run configurations)"),
)


def section_of(name: str) -> str:
    """The help section of the parameter called `name` (its Config field name)."""
    if name in _SECTION_BY_NAME:
        return _SECTION_BY_NAME[name]
    for prefix, section in _SECTION_BY_PREFIX:
        if name == prefix or name.startswith(prefix + "_"):
            return section
    return OTHER


def group_params(params: Iterable[click.Parameter]) -> list[tuple[str, list[click.Option]]]:
    """Options grouped by section, sections in `SECTION_ORDER`, empty ones left out.

    Within a section the options keep their declaration order. Arguments are skipped
    (they are in the usage line).
    """
    groups: dict[str, list[click.Option]] = {section: [] for section in SECTION_ORDER}
    for param in params:
        if isinstance(param, click.Option) and param.name is not None:
            groups[section_of(param.name)].append(param)
    return [(section, options) for section, options in groups.items() if options]


class SectionedCommand(click.Command):
    """A click command whose help lists options by topic and ends with examples."""

    def __init__(
        self, *args: Any, examples: Sequence[tuple[str, str]] = EXAMPLES, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.examples = tuple(examples)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write one "<topic> options" section per non-empty topic."""
        for section, options in group_params(self.get_params(ctx)):
            records = [record for option in options if (record := option.get_help_record(ctx))]
            if records:
                with formatter.section(section):
                    formatter.write_dl(records)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the examples as given (not re-wrapped), then the epilog."""
        if self.examples:
            with formatter.section("Examples"):
                _write_examples(formatter, self.examples)
        super().format_epilog(ctx, formatter)


def _write_examples(formatter: click.HelpFormatter, examples: Sequence[tuple[str, str]]) -> None:
    """Command and description side by side when they fit the width, else stacked."""
    width = (formatter.width or 80) - formatter.current_indent
    command_col = max(len(command) for command, _ in examples) + 2
    if command_col + max(len(what) for _, what in examples) <= width:
        formatter.write_dl(list(examples), col_max=command_col)
        return
    for command, what in examples:
        formatter.write(f"{'':>{formatter.current_indent}}{command}\n")
        with formatter.indentation():
            formatter.write_text(what)


__all__ = ["EXAMPLES", "SECTION_ORDER", "SectionedCommand", "group_params", "section_of"]
