"""Validated configuration: one frozen `Config`, built in one place.

Values arrive from the command line, the environment (``DEVSERVE_*``), the nearest
``pyproject.toml`` ``[tool.devserve]`` table and the defaults, in that order of precedence.
The CLI resolves precedence (click does) and hands `Config.from_options` the values with
the *source* of each, so every problem can name where the bad value came from::

    invalid value for --port (from environment variable DEVSERVE_PORT): 70000 is not
    between 0 and 65535

`Config.from_options` collects every problem and raises one `ConfigError`. It performs no
I/O, reads no environment, imports no application and never exits.

`Config` round-trips through JSON (`to_json` / `from_json`) so the supervisor can hand it
to a worker process.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devserve.errors import ConfigError

LoopName = Literal["auto", "asyncio", "uvloop"]
LifespanMode = Literal["auto", "on", "off"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
UIMode = Literal["auto", "tui", "plain", "json"]
WSMode = Literal["auto", "none", "wsproto", "websockets"]
ReloadStrategy = Literal["swap", "restart"]
RELOAD_STRATEGIES: tuple[ReloadStrategy, ...] = ("swap", "restart")
WS_MODES: tuple[WSMode, ...] = ("auto", "none", "wsproto", "websockets")

LOOP_NAMES: tuple[LoopName, ...] = ("auto", "asyncio", "uvloop")
LIFESPAN_MODES: tuple[LifespanMode, ...] = ("auto", "on", "off")
LOG_LEVELS: tuple[LogLevel, ...] = ("critical", "error", "warning", "info", "debug", "trace")
UI_MODES: tuple[UIMode, ...] = ("auto", "tui", "plain", "json")

MAX_PORT = 65535
#: Graceful-shutdown bound when the user gave none: long enough for a slow request,
#: short enough that Ctrl+C feels immediate.
DEFAULT_GRACEFUL_S = 10.0
#: Under --reload an open SSE stream or websocket must never hold up the new code.
DEFAULT_RELOAD_GRACEFUL_S = 1.0


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a devserve run needs to know, validated.

    Times are seconds (``_s``), sizes bytes. ``None`` means "not set" where the option is
    optional. Build instances with `Config.from_options`; the constructor does no checks.
    """

    app: str | None = None
    factory: bool = False
    app_dir: str = "."
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    backlog: int = 2048
    loop: LoopName = "auto"
    lifespan: LifespanMode = "auto"
    env_file: str | None = None
    log_level: LogLevel = "info"
    access_log: bool = True
    ui: UIMode = "auto"
    slow_ms: float = 500.0
    proxy_headers: bool = True
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    root_path: str = ""
    limit_concurrency: int | None = None
    timeout_keep_alive_s: float = 5.0
    timeout_request_head_s: float = 5.0
    timeout_request_body_s: float = 5.0
    timeout_graceful_shutdown_s: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    server_header: bool = True
    date_header: bool = True
    h11_max_incomplete_event_size: int = 16 * 1024
    max_header_count: int = 100
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_ca_certs: str | None = None
    https: bool = False
    https_port: int | None = None
    cert_dir: str | None = None
    reload: bool = False
    reload_dirs: tuple[str, ...] = ()
    reload_includes: tuple[str, ...] = ()
    reload_excludes: tuple[str, ...] = ()
    reload_delay_s: float = 0.005
    reload_strategy: ReloadStrategy = "swap"
    reload_preload: bool = True
    reload_polling: bool | None = None
    livereload: bool | None = None  # None: on with --reload (#7)
    livereload_includes: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    debug_pages: bool = True
    ws: WSMode = "auto"
    ws_max_size: int = 16 * 1024 * 1024
    ws_max_queue: int = 32
    ws_ping_interval_s: float | None = 20.0
    ws_ping_timeout_s: float = 20.0
    ws_per_message_deflate: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def graceful_s(self) -> float:
        """The effective graceful-shutdown bound in seconds."""
        if self.timeout_graceful_shutdown_s is None:
            return DEFAULT_RELOAD_GRACEFUL_S if self.reload else DEFAULT_GRACEFUL_S
        return self.timeout_graceful_shutdown_s

    @property
    def is_livereload(self) -> bool:
        """Whether browsers reload by themselves (``--livereload``, on by default with --reload)."""
        return self.reload if self.livereload is None else self.livereload

    @property
    def project_dirs(self) -> tuple[str, ...]:
        """The project's directories, resolved: ``--reload-dir``, else ``--app-dir``."""
        return tuple(str(Path(d).resolve()) for d in (self.reload_dirs or (self.app_dir,)))

    @property
    def is_tls(self) -> bool:
        """Whether connections are served over TLS (all of them, or with `https_port` some)."""
        return self.ssl_certfile is not None or self.https

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], sources: Mapping[str, str] | None = None
    ) -> Config:
        """Validate option values and build a `Config`.

        Args:
            options: field name -> value, already converted to Python types. Unknown
                names are problems, not silently ignored.
            sources: field name -> a phrase naming where the value came from
                ("command line", "environment variable DEVSERVE_PORT", ...). Used only in
                error messages.

        Returns:
            The validated configuration.

        Raises:
            ConfigError: listing every problem found.
        """
        sources = sources or {}
        names = {f.name for f in dataclasses.fields(cls)}
        problems = [f"unknown option {name!r}" for name in options if name not in names]
        values = {k: v for k, v in options.items() if k in names}
        config = cls(**values)
        problems.extend(_problems(config, sources))
        if problems:
            raise ConfigError(problems)
        return config

    def to_json(self) -> str:
        """Serialise for handing to a worker process."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Inverse of `to_json` (no re-validation: the sender validated)."""
        raw = json.loads(text)
        raw["forwarded_allow_ips"] = tuple(raw["forwarded_allow_ips"])
        raw["headers"] = tuple((str(k), str(v)) for k, v in raw["headers"])
        for name in (
            "reload_dirs",
            "reload_includes",
            "reload_excludes",
            "livereload_includes",
            "allowed_hosts",
        ):
            raw[name] = tuple(raw[name])
        return cls(**raw)


def option_flag(name: str) -> str:
    """The flag for a field name: ``timeout_keep_alive_s`` -> ``--timeout-keep-alive``."""
    base = name.removesuffix("_s")
    return "--" + base.replace("_", "-")


def _problems(config: Config, sources: Mapping[str, str]) -> list[str]:
    problems: list[str] = []

    def bad(name: str, why: str) -> None:
        value = getattr(config, name)
        where = sources.get(name, "default")
        problems.append(f"invalid value for {option_flag(name)} (from {where}): {value!r} {why}")

    for name, why in _value_problems(config):
        bad(name, why)
    problems.extend(_combination_problems(config, sources))
    return problems


def _value_problems(config: Config) -> list[tuple[str, str]]:
    """(field, why) for each field whose value is out of range."""
    checks: list[tuple[str, bool, str]] = [
        ("port", 0 <= config.port <= MAX_PORT, f"is not between 0 and {MAX_PORT}"),
        (
            "https_port",
            config.https_port is None or 0 <= config.https_port <= MAX_PORT,
            f"is not between 0 and {MAX_PORT}",
        ),
        ("fd", config.fd is None or config.fd >= 0, "must be a non-negative file descriptor"),
        ("backlog", config.backlog >= 1, "must be at least 1"),
        ("loop", config.loop in LOOP_NAMES, f"is not one of {', '.join(LOOP_NAMES)}"),
        ("lifespan", config.lifespan in LIFESPAN_MODES, "is not one of auto, on, off"),
        ("log_level", config.log_level in LOG_LEVELS, f"is not one of {', '.join(LOG_LEVELS)}"),
        (
            "limit_concurrency",
            config.limit_concurrency is None or config.limit_concurrency >= 1,
            "must be at least 1",
        ),
        (
            "h11_max_incomplete_event_size",
            config.h11_max_incomplete_event_size >= _MIN_HEAD_BYTES,
            f"must be at least {_MIN_HEAD_BYTES} bytes",
        ),
        ("max_header_count", config.max_header_count >= 1, "must be at least 1"),
        ("ui", config.ui in UI_MODES, f"is not one of {', '.join(UI_MODES)}"),
        ("slow_ms", config.slow_ms > 0, "must be a positive number of milliseconds"),
        ("ws", config.ws in WS_MODES, f"is not one of {', '.join(WS_MODES)}"),
        ("reload_strategy", config.reload_strategy in RELOAD_STRATEGIES, "is not swap or restart"),
        ("reload_delay_s", config.reload_delay_s >= 0, "must not be negative"),
        ("ws_max_size", config.ws_max_size >= 1, "must be at least 1 byte"),
        ("ws_max_queue", config.ws_max_queue >= 1, "must be at least 1"),
        (
            "root_path",
            not config.root_path or config.root_path.startswith("/"),
            "must start with '/'",
        ),
        ("root_path", not config.root_path.endswith("/"), "must not end with '/'"),
    ]
    for name in _TIMEOUTS:
        value = getattr(config, name)
        checks.append((name, value is None or value > 0, "must be a positive number of seconds"))
    return [(name, why) for name, ok, why in checks if not ok]


def _combination_problems(config: Config, sources: Mapping[str, str]) -> list[str]:
    problems = []
    if config.uds is not None and config.fd is not None:
        problems.append("--uds and --fd cannot be used together")
    if (config.ssl_keyfile is None) != (config.ssl_certfile is None):
        problems.append("--ssl-keyfile and --ssl-certfile must be given together")
    problems.extend(_https_problems(config))
    if config.livereload and not config.reload:
        problems.append("--livereload needs --reload")
    for entry in config.allowed_hosts:
        if not entry or any(c in entry for c in " /\\@\r\n\t"):
            where = sources.get("allowed_hosts", "default")
            problems.append(
                f"invalid value for --allowed-hosts (from {where}): {entry!r} is not a host name"
            )
    for name, value in config.headers:
        if not name or any(c in name for c in " :\r\n\t") or any(c in value for c in "\r\n\0"):
            where = sources.get("headers", "default")
            problems.append(f"invalid value for --header (from {where}): {name}:{value!r}")
    for entry in config.forwarded_allow_ips:
        if entry in {"*"} or entry.startswith("unix:"):
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            where = sources.get("forwarded_allow_ips", "default")
            problems.append(
                f"invalid value for --forwarded-allow-ips (from {where}): {entry!r} is not an "
                "IP address or network"
            )
    return problems


def _https_problems(config: Config) -> list[str]:
    """``--https`` makes its own certificate: it excludes the user's and needs a directory."""
    problems = []
    if config.https and config.ssl_certfile is not None:
        problems.append(
            "--https and --ssl-certfile cannot be used together: --https makes its own certificate"
        )
    if config.https and not config.cert_dir:
        problems.append("--https needs a certificate directory (--cert-dir)")
    if config.https_port is not None and not config.https:
        problems.append("--https-port needs --https")
    if (
        config.https_port
        and config.https_port == config.port
        and config.uds is None
        and config.fd is None
    ):
        problems.append("--https-port must differ from --port")
    return problems


_MIN_HEAD_BYTES = 1024
_TIMEOUTS = (
    "ws_ping_interval_s",
    "ws_ping_timeout_s",
    "timeout_keep_alive_s",
    "timeout_request_head_s",
    "timeout_request_body_s",
    "timeout_graceful_shutdown_s",
)
