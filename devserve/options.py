"""Every ``devserve`` command-line option, declared once.

Flags keep uvicorn's names and meanings. Each option's environment variable is derived from
its flag (``--reload-dir`` -> ``DEVSERVE_RELOAD_DIR``) by `SourcedOption`, which also names
the source of a bad value in its error ("from environment variable DEVSERVE_PORT").
`apply_options` attaches the whole list to a click command; the parameter names are the
`devserve.config.Config` field names, so the values map onto the configuration 1:1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from devserve.config import LIFESPAN_MODES, LOG_LEVELS, LOOP_NAMES, UI_MODES, WS_MODES

ENV_PREFIX = "DEVSERVE_"


class SourcedOption(click.Option):
    """An option that knows its ``DEVSERVE_*`` variable and names its value's source.

    Conversion errors become one usage error saying where the bad value came from.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        flag = next((o for o in self.opts if o.startswith("--")), self.opts[0])
        self.envvar = ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")
        self.show_envvar = False
        self.last_source: ParameterSource | None = None

    def consume_value(
        self, ctx: click.Context, opts: Mapping[str, Any]
    ) -> tuple[Any, ParameterSource]:
        """Take the raw value, remembering its source for `process_value`'s errors."""
        value, source = super().consume_value(ctx, opts)
        # click records the source only after conversion; error messages need it before.
        self.last_source = source
        return value, source

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        """Convert the value; a bad one becomes a usage error naming its source."""
        try:
            return super().process_value(ctx, value)
        except click.BadParameter as exc:
            assert self.name is not None  # noqa: S101 - click always names options
            where = describe_source(ctx, self, self.last_source)
            flag = self.opts[-1] if self.opts else self.name
            message = f"invalid value for {flag} (from {where}): {exc.message}"
            raise click.UsageError(message, ctx) from None


def describe_source(
    ctx: click.Context, param: click.Parameter, source: ParameterSource | None = None
) -> str:
    """Name where a parameter's value came from, for error messages."""
    assert param.name is not None  # noqa: S101
    source = source or ctx.get_parameter_source(param.name)
    if source is ParameterSource.ENVIRONMENT and isinstance(param, click.Option):
        return f"environment variable {param.envvar}"
    if source is ParameterSource.DEFAULT_MAP:
        return "pyproject.toml [tool.devserve]"
    if source is ParameterSource.COMMANDLINE:
        return "command line"
    return "default"


if TYPE_CHECKING:
    _StrParamType = click.ParamType[str]
else:  # click < 8.2 has no generic ParamType at run time
    _StrParamType = click.ParamType


class _HeaderType(_StrParamType):
    """A 'Name: value' header; one per line when given in DEVSERVE_HEADER."""

    name = "header"
    envvar_list_splitter = "\n"


def _split_header(
    _ctx: click.Context, _param: click.Parameter, values: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            msg = f"{value!r} is not in the form 'Name: value'"
            raise click.BadParameter(msg)
        pairs.append((name.strip(), rest.strip()))
    return tuple(pairs)


def _split_ips(
    _ctx: click.Context, _param: click.Parameter, value: str | Sequence[str]
) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() for item in items if item.strip())


_opt: Callable[..., Callable[[Any], Any]] = lambda *a, **k: click.option(*a, cls=SourcedOption, **k)  # noqa: E731

OPTIONS = [
    _opt("--host", default="127.0.0.1", show_default=True, help="Bind to this address."),
    _opt(
        "--port",
        type=int,
        default=8000,
        show_default=True,
        help="Bind to this port (0: any free port).",
    ),
    _opt("--uds", default=None, help="Bind to a Unix domain socket."),
    _opt(
        "--fd", type=int, default=None, help="Serve on an already-bound socket's file descriptor."
    ),
    _opt(
        "--app-dir",
        default=".",
        show_default=True,
        help="Directory put first on sys.path to import APP.",
    ),
    _opt(
        "--factory", is_flag=True, default=False, help="APP names a callable that returns the app."
    ),
    _opt(
        "--loop",
        type=click.Choice(LOOP_NAMES),
        default="auto",
        show_default=True,
        help="Event loop.",
    ),
    _opt(
        "--http",
        type=click.Choice(["auto", "h11", "httptools"]),
        default="auto",
        help="HTTP implementation (always h11; accepted for uvicorn compatibility).",
    ),
    _opt(
        "--lifespan",
        type=click.Choice(LIFESPAN_MODES),
        default="auto",
        show_default=True,
        help="Lifespan protocol.",
    ),
    _opt(
        "--env-file",
        type=click.Path(dir_okay=False),
        default=None,
        help="Load environment variables from this file.",
    ),
    _opt(
        "--log-level",
        type=click.Choice(LOG_LEVELS),
        default="info",
        show_default=True,
        help="Server log level.",
    ),
    _opt("--access-log/--no-access-log", default=True, show_default=True, help="Log each request."),
    _opt(
        "--ui",
        type=click.Choice(UI_MODES),
        default="auto",
        show_default=True,
        help="Output: tui (live dashboard), plain (log lines), json (one object per line); "
        "auto: tui on an interactive terminal (TERM not dumb, CI unset), else plain.",
    ),
    _opt(
        "--slow-ms",
        type=float,
        default=500.0,
        show_default=True,
        help="Mark requests slower than this many milliseconds.",
    ),
    _opt("--use-colors/--no-use-colors", default=None, help="Force colored output on or off."),
    _opt(
        "--proxy-headers/--no-proxy-headers",
        default=True,
        show_default=True,
        help="Trust X-Forwarded-For/Proto from --forwarded-allow-ips.",
    ),
    _opt(
        "--forwarded-allow-ips",
        default="127.0.0.1,::1",
        show_default=True,
        callback=_split_ips,
        help="Comma-separated proxy IPs/networks to trust ('*' for all).",
    ),
    _opt("--root-path", default="", help="ASGI root_path for apps mounted below a prefix."),
    _opt(
        "--limit-concurrency",
        type=int,
        default=None,
        help="Answer 503 beyond this many concurrent requests.",
    ),
    _opt("--backlog", type=int, default=2048, show_default=True, help="Listen backlog."),
    _opt(
        "--timeout-keep-alive",
        "timeout_keep_alive_s",
        type=float,
        default=5.0,
        show_default=True,
        help="Close idle keep-alive connections after this many seconds.",
    ),
    _opt(
        "--timeout-request-head",
        "timeout_request_head_s",
        type=float,
        default=5.0,
        show_default=True,
        help="Seconds a client has to send a whole request head.",
    ),
    _opt(
        "--timeout-request-body",
        "timeout_request_body_s",
        type=float,
        default=5.0,
        show_default=True,
        help="Seconds a stalled request body may wait.",
    ),
    _opt(
        "--timeout-graceful-shutdown",
        "timeout_graceful_shutdown_s",
        type=float,
        default=None,
        help="Seconds to let requests finish on shutdown [default: 10; 1 with --reload].",
    ),
    _opt(
        "--header",
        "headers",
        type=_HeaderType(),
        multiple=True,
        callback=_split_header,
        help="Add a default response header 'Name: value' (repeatable).",
    ),
    _opt(
        "--server-header/--no-server-header",
        default=True,
        show_default=True,
        help="Send a 'server' header.",
    ),
    _opt(
        "--date-header/--no-date-header",
        default=True,
        show_default=True,
        help="Send a 'date' header.",
    ),
    _opt(
        "--h11-max-incomplete-event-size",
        type=int,
        default=16 * 1024,
        show_default=True,
        help="Largest request head in bytes (431 beyond).",
    ),
    _opt(
        "--max-header-count",
        type=int,
        default=100,
        show_default=True,
        help="Most request header lines (431 beyond).",
    ),
    _opt(
        "--reload/--no-reload",
        default=False,
        help="Reload when files change (--no-reload overrides pyproject/environment).",
    ),
    _opt(
        "--reload-dir",
        "reload_dirs",
        multiple=True,
        help="Directory to watch (repeatable) [default: --app-dir].",
    ),
    _opt(
        "--reload-include",
        "reload_includes",
        multiple=True,
        help="Also reload for files matching this glob (repeatable; '*.py' always).",
    ),
    _opt(
        "--reload-exclude",
        "reload_excludes",
        multiple=True,
        help="Ignore files matching this glob (repeatable; .venv, .git, ... always).",
    ),
    _opt(
        "--reload-delay",
        "reload_delay_s",
        type=float,
        default=0.005,
        show_default=True,
        help="Quiet period in seconds a burst of changes to several files waits for: one reload.",
    ),
    _opt(
        "--reload-strategy",
        type=click.Choice(["swap", "restart"]),
        default="swap",
        show_default=True,
        help="swap: start the new worker, then drain the old; restart: stop the old first.",
    ),
    _opt(
        "--reload-preload/--no-reload-preload",
        default=True,
        show_default=True,
        help="Fork workers from a server that preloaded third-party modules.",
    ),
    _opt(
        "--reload-polling/--no-reload-polling",
        default=None,
        help="Poll for changes instead of OS events [default: auto-detect].",
    ),
    _opt(
        "--ws",
        type=click.Choice(WS_MODES),
        default="auto",
        show_default=True,
        help="WebSocket support: wsproto ('websockets' is accepted as an alias); 'none' serves "
        "upgrade requests as plain HTTP.",
    ),
    _opt(
        "--ws-max-size",
        type=int,
        default=16 * 1024 * 1024,
        show_default=True,
        help="Largest WebSocket message in bytes (close 1009 beyond).",
    ),
    _opt(
        "--ws-max-queue",
        type=int,
        default=32,
        show_default=True,
        help="Incoming WebSocket messages buffered for the app before reading pauses.",
    ),
    _opt(
        "--ws-ping-interval",
        "ws_ping_interval_s",
        type=float,
        default=20.0,
        show_default=True,
        help="Seconds between server pings.",
    ),
    _opt(
        "--ws-ping-timeout",
        "ws_ping_timeout_s",
        type=float,
        default=20.0,
        show_default=True,
        help="Seconds to wait for a pong before dropping the peer.",
    ),
    _opt(
        "--ws-per-message-deflate",
        type=bool,
        default=True,
        show_default=True,
        help="Negotiate permessage-deflate compression.",
    ),
    _opt(
        "--ssl-keyfile", type=click.Path(dir_okay=False), default=None, help="TLS private key file."
    ),
    _opt(
        "--ssl-certfile",
        type=click.Path(dir_okay=False),
        default=None,
        help="TLS certificate file.",
    ),
    _opt("--ssl-keyfile-password", default=None, help="Password of the TLS key."),
    _opt(
        "--ssl-ca-certs",
        type=click.Path(dir_okay=False),
        default=None,
        help="CA certificates file (for client certificates).",
    ),
    _opt(
        "--https",
        is_flag=True,
        default=False,
        help="Serve HTTPS with a certificate from the local devserve CA (made on first use).",
    ),
    _opt(
        "--https-port",
        type=int,
        default=None,
        help="Serve HTTPS on this port and keep plain HTTP on --port [default: HTTPS on --port].",
    ),
    _opt(
        "--cert-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Where --https keeps its CA and certificate [default: per-user data directory].",
    ),
]


def apply_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every option, in `OPTIONS` order."""
    for option in reversed(OPTIONS):
        func = option(func)
    return func
