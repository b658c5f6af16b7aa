"""Tests for devserve.config: validation, problem messages and the JSON round trip."""

from __future__ import annotations

from typing import Any

import pytest

from devserve.config import DEFAULT_GRACEFUL_S, Config, option_flag
from devserve.errors import ConfigError, DevserveError


def _problems(options: dict[str, Any], sources: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.from_options(options, sources)
    return info.value.problems


def test_defaults() -> None:
    config = Config.from_options({})
    assert config == Config()
    assert config.host == "127.0.0.1"
    assert config.port == 8000
    assert config.forwarded_allow_ips == ("127.0.0.1", "::1")
    assert config.headers == ()
    assert config.app is None


def test_valid_options_are_kept() -> None:
    config = Config.from_options(
        {"app": "main:app", "port": 0, "root_path": "/api", "limit_concurrency": 1}
    )
    assert config.app == "main:app"
    assert config.port == 0
    assert config.root_path == "/api"
    assert config.limit_concurrency == 1


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"port": 65536},
            "invalid value for --port (from default): 65536 is not between 0 and 65535",
        ),
        ({"port": -1}, "invalid value for --port (from default): -1 is not between 0 and 65535"),
        ({"fd": -1}, "invalid value for --fd (from default): -1 must be a non-negative file"),
        ({"backlog": 0}, "invalid value for --backlog (from default): 0 must be at least 1"),
        ({"loop": "trio"}, "invalid value for --loop (from default): 'trio' is not one of auto,"),
        ({"lifespan": "maybe"}, "invalid value for --lifespan (from default): 'maybe' is not one"),
        ({"log_level": "loud"}, "invalid value for --log-level (from default): 'loud' is not one"),
        (
            {"limit_concurrency": 0},
            "invalid value for --limit-concurrency (from default): 0 must be at least 1",
        ),
        (
            {"h11_max_incomplete_event_size": 1023},
            "invalid value for --h11-max-incomplete-event-size (from default): 1023 must be at "
            "least 1024 bytes",
        ),
        (
            {"max_header_count": 0},
            "invalid value for --max-header-count (from default): 0 must be at least 1",
        ),
        ({"root_path": "api"}, "invalid value for --root-path (from default): 'api' must start"),
        ({"root_path": "/api/"}, "invalid value for --root-path (from default): '/api/' must not"),
        (
            {"timeout_keep_alive_s": 0},
            "invalid value for --timeout-keep-alive (from default): 0 must be a positive number",
        ),
        (
            {"timeout_request_head_s": -1.0},
            "invalid value for --timeout-request-head (from default): -1.0 must be a positive",
        ),
        (
            {"timeout_request_body_s": 0.0},
            "invalid value for --timeout-request-body (from default): 0.0 must be a positive",
        ),
        ({"ws": "trio"}, "invalid value for --ws (from default): 'trio' is not one of auto, none"),
        (
            {"ws_max_size": 0},
            "invalid value for --ws-max-size (from default): 0 must be at least 1",
        ),
        (
            {"ws_max_queue": 0},
            "invalid value for --ws-max-queue (from default): 0 must be at least 1",
        ),
        (
            {"ws_ping_interval_s": -1.0},
            "invalid value for --ws-ping-interval (from default): -1.0 must be a positive number",
        ),
        (
            {"ws_ping_timeout_s": 0},
            "invalid value for --ws-ping-timeout (from default): 0 must be a positive number",
        ),
        (
            {"timeout_graceful_shutdown_s": 0},
            "invalid value for --timeout-graceful-shutdown (from default): 0 must be a positive",
        ),
        (
            {"ui": "fancy"},
            "invalid value for --ui (from default): 'fancy' is not one of auto, tui, plain, json",
        ),
        (
            {"slow_ms": 0.0},
            "invalid value for --slow-ms (from default): 0.0 must be a positive number of milli",
        ),
    ],
)
def test_each_value_check(options: dict[str, Any], expected: str) -> None:
    problems = _problems(options)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


@pytest.mark.parametrize(
    "options",
    [
        {"port": 0},
        {"port": 65535},
        {"fd": 0},
        {"backlog": 1},
        {"h11_max_incomplete_event_size": 1024},
        {"root_path": ""},
        {"root_path": "/a/b"},
        {"timeout_graceful_shutdown_s": None},
        {"ws_ping_interval_s": None},
        {"ws": "none", "ws_max_size": 1, "ws_max_queue": 1},
        {"timeout_keep_alive_s": 0.001},
        {"loop": "uvloop", "lifespan": "off", "log_level": "trace"},
        {"ui": "json", "slow_ms": 0.001},
    ],
)
def test_boundary_values_are_accepted(options: dict[str, Any]) -> None:
    Config.from_options(options)


def test_root_path_slash_alone_is_rejected() -> None:
    problems = _problems({"root_path": "/"})
    assert problems == ["invalid value for --root-path (from default): '/' must not end with '/'"]


def test_uds_and_fd_together() -> None:
    assert _problems({"uds": "/tmp/s.sock", "fd": 3}) == ["--uds and --fd cannot be used together"]


@pytest.mark.parametrize("options", [{"ssl_keyfile": "key.pem"}, {"ssl_certfile": "cert.pem"}])
def test_ssl_files_must_come_together(options: dict[str, Any]) -> None:
    assert _problems(options) == ["--ssl-keyfile and --ssl-certfile must be given together"]


@pytest.mark.parametrize(
    "header",
    [("", "v"), ("X A", "v"), ("X:A", "v"), ("X\rA", "v"), ("X\tA", "v"), ("X-A", "a\r\nb")],
)
def test_bad_header(header: tuple[str, str]) -> None:
    problems = _problems({"headers": (header,)}, {"headers": "command line"})
    assert len(problems) == 1
    assert problems[0].startswith("invalid value for --header (from command line): ")


def test_good_headers_are_accepted() -> None:
    config = Config.from_options({"headers": (("X-A", "1"), ("X-B", "two words"))})
    assert config.headers == (("X-A", "1"), ("X-B", "two words"))


def test_forwarded_allow_ips_accepts_ips_networks_star_and_unix() -> None:
    entries = ("127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "*", "unix:/tmp/s")
    config = Config.from_options({"forwarded_allow_ips": entries})
    assert config.forwarded_allow_ips == entries


def test_forwarded_allow_ips_rejects_names() -> None:
    problems = _problems(
        {"forwarded_allow_ips": ("127.0.0.1", "proxy.local")},
        {"forwarded_allow_ips": "environment variable DEVSERVE_FORWARDED_ALLOW_IPS"},
    )
    assert problems == [
        "invalid value for --forwarded-allow-ips (from environment variable "
        "DEVSERVE_FORWARDED_ALLOW_IPS): 'proxy.local' is not an IP address or network"
    ]


def test_one_error_lists_every_problem() -> None:
    problems = _problems(
        {
            "nope": 1,
            "port": 70000,
            "backlog": 0,
            "uds": "/tmp/s",
            "fd": 4,
            "ssl_certfile": "c.pem",
        }
    )
    assert len(problems) == 5
    assert problems[0] == "unknown option 'nope'"
    assert any("--port" in p for p in problems)
    assert any("--backlog" in p for p in problems)
    assert "--uds and --fd cannot be used together" in problems
    assert "--ssl-keyfile and --ssl-certfile must be given together" in problems


def test_config_error_message_joins_problems() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_options({"port": -1, "backlog": 0})
    assert isinstance(info.value, DevserveError)
    assert str(info.value) == "; ".join(info.value.problems)


def test_message_names_the_source() -> None:
    problems = _problems({"port": 70000}, {"port": "environment variable DEVSERVE_PORT"})
    assert problems == [
        "invalid value for --port (from environment variable DEVSERVE_PORT): 70000 is not "
        "between 0 and 65535"
    ]


def test_source_defaults_to_default() -> None:
    problems = _problems({"backlog": 0}, {"port": "command line"})
    assert "(from default)" in problems[0]


@pytest.mark.parametrize("names", [["bogus"], ["bogus", "other"]])
def test_unknown_option_names(names: list[str]) -> None:
    problems = _problems(dict.fromkeys(names, 1))
    assert problems == [f"unknown option {name!r}" for name in names]


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("port", "--port"),
        ("log_level", "--log-level"),
        ("timeout_keep_alive_s", "--timeout-keep-alive"),
        ("h11_max_incomplete_event_size", "--h11-max-incomplete-event-size"),
    ],
)
def test_option_flag(name: str, flag: str) -> None:
    assert option_flag(name) == flag


def test_graceful_s() -> None:
    assert Config().graceful_s == DEFAULT_GRACEFUL_S
    assert Config(timeout_graceful_shutdown_s=2.5).graceful_s == 2.5


def test_is_tls() -> None:
    assert not Config().is_tls
    config = Config.from_options({"ssl_certfile": "c.pem", "ssl_keyfile": "k.pem"})
    assert config.is_tls


@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "app": "pkg.main:app",
            "factory": True,
            "port": 0,
            "uds": "/tmp/d.sock",
            "headers": (("X-A", "1"), ("X-B", "2")),
            "forwarded_allow_ips": ("*",),
            "timeout_graceful_shutdown_s": 3.0,
            "ssl_certfile": "c.pem",
            "ssl_keyfile": "k.pem",
            "loop": "asyncio",
            "extra": {"k": [1, 2]},
        },
    ],
)
def test_json_round_trip(options: dict[str, Any]) -> None:
    config = Config.from_options(options)
    again = Config.from_json(config.to_json())
    assert again == config
    assert isinstance(again.headers, tuple)
    assert all(isinstance(h, tuple) for h in again.headers)
    assert isinstance(again.forwarded_allow_ips, tuple)
