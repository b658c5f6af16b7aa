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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from click.shell_completion import CompletionItem

from devserve import __version__
from devserve.config import Config
from devserve.errors import AppLoadError, ConfigError, DevserveError
from devserve.helptext import SectionedCommand
from devserve.options import apply_options, describe_source

EXIT_OK = 0
EXIT_RUNTIME_FAILURE = 1
EXIT_USAGE = 2
EXIT_STARTUP_FAILURE = 3


def _complete_app(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of APP: the ``cert`` subcommand, then file names (``app.py``)."""
    items = [CompletionItem("cert", help="manage the local HTTPS certificates")]
    return [i for i in items if i.value.startswith(incomplete)] + [
        CompletionItem(incomplete, type="file")
    ]


@click.command(
    name="devserve",
    cls=SectionedCommand,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Every option can also be set as DEVSERVE_<OPTION> (DEVSERVE_RELOAD_DIR) or in "
    "[tool.devserve] of pyproject.toml (reload-dir = [...]). "
    "'devserve cert --help': the local HTTPS certificates. "
    "Exit codes: 0 stopped, 1 runtime failure, 2 bad usage, 3 app failed to load, "
    "130 interrupted.",
)
@click.argument("app", required=False, default=None, shell_complete=_complete_app)
@apply_options
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
