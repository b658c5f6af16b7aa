"""The ``devserve`` command line: argv -> `Config` -> serve. Nothing else.

Flags keep uvicorn's names and meanings. Every option may also come from the environment
(``DEVSERVE_<FLAG>``, e.g. ``DEVSERVE_PORT``) or from ``[tool.devserve]`` in the nearest
``pyproject.toml``; the command line wins, then the environment, then the file, then the
default. A bad value is reported in one line naming the option and where it came from,
with exit code 2.

Exit codes: 0 clean stop, 1 runtime failure (port in use, TLS files), 2 bad usage or
configuration, 3 the application failed to load or start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

from devserve import __version__
from devserve.config import LIFESPAN_MODES, LOG_LEVELS, LOOP_NAMES, WS_MODES, Config
from devserve.errors import AppLoadError, ConfigError, DevserveError

EXIT_OK = 0
EXIT_RUNTIME_FAILURE = 1
EXIT_USAGE = 2
EXIT_STARTUP_FAILURE = 3
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
    _opt("--reload", is_flag=True, default=False, help="Reload when files change."),
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
        help="Quiet period in seconds that groups a burst of changes into one reload.",
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


def _apply_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(OPTIONS):
        func = option(func)
    return func


@click.command(
    name="devserve",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Subcommands: 'devserve cert --help' manages the local HTTPS certificates.",
)
@click.argument("app", required=False, default=None)
@_apply_options
@click.version_option(__version__, "--version", prog_name="devserve")
@click.pass_context
def serve_command(ctx: click.Context, /, app: str | None, **values: Any) -> int:
    """Serve the ASGI application APP ('module:attr' or 'path/to/file.py').

    Without APP, devserve looks for app/api/application in main.py, app.py, api.py,
    app/main.py and src/.
    """
    sources = {name: describe_source(ctx, p) for p in ctx.command.params if (name := p.name)}
    values.pop("http", None)
    environ = dict(os.environ)
    use_colors = values.pop("use_colors", None)
    if use_colors is not None:
        environ.pop("NO_COLOR" if use_colors else "FORCE_COLOR", None)
        environ["FORCE_COLOR" if use_colors else "NO_COLOR"] = "1"
    if app is None:
        app = _discover(Path(values["app_dir"]))
    if values.get("https") and values.get("cert_dir") is None:
        from devserve.certs import default_cert_dir  # noqa: PLC0415 - HTTPS users only

        values["cert_dir"] = str(default_cert_dir(environ))
    try:
        config = Config.from_options({"app": app, **values}, sources)
    except ConfigError as exc:
        raise click.UsageError(
            exc.problems[0] if len(exc.problems) == 1 else "; ".join(exc.problems)
        ) from None
    if config.reload:
        from devserve.reloader import run_reload  # noqa: PLC0415 - keep --help and errors fast

        return run_reload(config, environ)
    from devserve.runner import run_single  # noqa: PLC0415

    return run_single(config, environ)


def _discover(app_dir: Path) -> str:
    from devserve.discovery import discover  # noqa: PLC0415

    try:
        found = discover(app_dir)
    except AppLoadError as exc:
        raise click.UsageError(str(exc)) from None
    where = (
        found.source.relative_to(app_dir.resolve())
        if found.source.is_relative_to(app_dir.resolve())
        else found.source
    )
    click.echo(f"devserve: using app {found.app_string} (found in {where})", err=True)
    return found.app_string


def load_pyproject_defaults(start: Path, command: click.Command) -> dict[str, Any]:
    """Read ``[tool.devserve]`` from the nearest pyproject.toml, keyed by parameter name.

    Raises:
        ConfigError: unreadable TOML or an unknown key.
    """
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover
        import tomli as tomllib  # noqa: PLC0415
    for directory in (start, *start.parents):
        path = directory / "pyproject.toml"
        if path.is_file():
            break
    else:
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("devserve", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"cannot read {path}: {exc}"]) from None
    by_flag = {}
    for param in command.params:
        assert param.name is not None  # noqa: S101
        by_flag[param.name] = param.name
        for opt in getattr(param, "opts", []):
            by_flag[opt.lstrip("-").replace("-", "_")] = param.name
    multiple = {p.name for p in command.params if getattr(p, "multiple", False)}
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        name = by_flag.get(key.replace("-", "_"))
        if name is None:
            raise ConfigError([f"unknown key {key!r} in [tool.devserve] of {path}"])
        if isinstance(value, list) and name not in multiple:
            value = ",".join(str(item) for item in value)  # noqa: PLW2901 - a TOML list
        defaults[name] = value
    return defaults


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``devserve`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["cert"]:
        from devserve.cert_cli import cert  # noqa: PLC0415

        cert.main(args=args[1:], prog_name="devserve cert")
    try:
        defaults = load_pyproject_defaults(Path.cwd(), serve_command)
        code = serve_command.main(
            args=args, prog_name="devserve", standalone_mode=False, default_map=defaults
        )
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except click.exceptions.Abort:
        code = 130
    except ConfigError as exc:
        _fail("; ".join(exc.problems), EXIT_USAGE)
    except DevserveError as exc:
        _fail(str(exc), EXIT_RUNTIME_FAILURE)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"devserve: error: {message}", err=True)
    sys.exit(code)


__all__ = ["EXIT_STARTUP_FAILURE", "EXIT_USAGE", "main", "serve_command"]
