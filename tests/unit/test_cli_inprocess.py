"""Tests for devserve.cli in-process: precedence, parsing, error lines and exit codes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import devserve.runner
from devserve import __version__, cli
from devserve.config import Config
from devserve.options import ENV_PREFIX


@dataclass
class Captured:
    """Configs that `run_single` would have served."""

    configs: list[Config] = field(default_factory=list)
    environs: list[Mapping[str, str]] = field(default_factory=list)
    exit_code: int = 0

    @property
    def config(self) -> Config:
        assert len(self.configs) == 1
        return self.configs[0]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """Run in an empty tmp_path with no DEVSERVE_* variables; capture run_single's Config."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    captured = Captured()

    def fake_run_single(config: Config, environ: Mapping[str, str]) -> int:
        captured.configs.append(config)
        captured.environs.append(environ)
        return captured.exit_code

    monkeypatch.setattr(devserve.runner, "run_single", fake_run_single)
    yield captured


def _run(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        cli.main(list(args))
    code = info.value.code
    assert isinstance(code, int)
    return code


def _pyproject(tmp_path: Path, body: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.devserve]\n{body}", encoding="utf-8")


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("devserve: error: ")
    return err.removeprefix("devserve: error: ").rstrip("\n")


# -- building the Config -----------------------------------------------------------------


def test_defaults(served: Captured) -> None:
    assert _run("main:app") == 0
    assert served.config == Config(app="main:app")


def test_exit_code_comes_from_run_single(served: Captured) -> None:
    served.exit_code = 3
    assert _run("main:app") == 3


def test_run_single_gets_the_environment(served: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_APP_SETTING", "x")
    _run("main:app")
    assert served.environs[0]["SOME_APP_SETTING"] == "x"


def test_command_line_options(served: Captured) -> None:
    _run(
        "pkg.main:create",
        "--factory",
        "--host=::1",
        "--port=0",
        "--loop=asyncio",
        "--lifespan=off",
        "--log-level=debug",
        "--no-access-log",
        "--no-server-header",
        "--no-date-header",
        "--root-path=/api",
        "--timeout-keep-alive=1.5",
        "--timeout-graceful-shutdown=2",
        "--limit-concurrency=4",
        "--http=h11",
        "--no-use-colors",
    )
    config = served.config
    assert config.app == "pkg.main:create"
    assert config.factory
    assert config.host == "::1"
    assert config.port == 0
    assert config.loop == "asyncio"
    assert config.lifespan == "off"
    assert config.log_level == "debug"
    assert not config.access_log
    assert not config.server_header
    assert not config.date_header
    assert config.root_path == "/api"
    assert config.timeout_keep_alive_s == 1.5
    assert config.graceful_s == 2.0
    assert config.limit_concurrency == 4


def test_precedence_default(served: Captured) -> None:
    _run("main:app")
    assert served.config.port == 8000


def test_precedence_pyproject_over_default(served: Captured, tmp_path: Path) -> None:
    _pyproject(tmp_path, "port = 7001\nlog-level = 'warning'\n")
    _run("main:app")
    assert served.config.port == 7001
    assert served.config.log_level == "warning"


def test_precedence_env_over_pyproject(
    served: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pyproject(tmp_path, "port = 7001\n")
    monkeypatch.setenv("DEVSERVE_PORT", "7002")
    _run("main:app")
    assert served.config.port == 7002


def test_precedence_command_line_over_env(
    served: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pyproject(tmp_path, "port = 7001\n")
    monkeypatch.setenv("DEVSERVE_PORT", "7002")
    _run("main:app", "--port", "7003")
    assert served.config.port == 7003


def test_pyproject_is_found_in_a_parent_directory(
    served: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pyproject(tmp_path, "host = '::1'\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    _run("main:app")
    assert served.config.host == "::1"


def test_pyproject_without_table(served: Captured, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    _run("main:app")
    assert served.config == Config(app="main:app")


def test_pyproject_underscore_keys_and_field_names(served: Captured, tmp_path: Path) -> None:
    _pyproject(tmp_path, "timeout_keep_alive = 2.0\ntimeout-request-head = 3.0\n")
    _run("main:app")
    assert served.config.timeout_keep_alive_s == 2.0
    assert served.config.timeout_request_head_s == 3.0


def test_env_for_renamed_and_boolean_options(
    served: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSERVE_TIMEOUT_KEEP_ALIVE", "9")
    monkeypatch.setenv("DEVSERVE_ACCESS_LOG", "false")
    monkeypatch.setenv("DEVSERVE_ROOT_PATH", "/r")
    _run("main:app")
    assert served.config.timeout_keep_alive_s == 9.0
    assert not served.config.access_log
    assert served.config.root_path == "/r"


# -- --header and --forwarded-allow-ips ----------------------------------------------------


def test_header_parsing(served: Captured) -> None:
    _run("main:app", "--header", "X-A: 1", "--header", "X-B:two words ", "--header", "X-C:")
    assert served.config.headers == (("X-A", "1"), ("X-B", "two words"), ("X-C", ""))


def test_header_value_may_contain_colons(served: Captured) -> None:
    _run("main:app", "--header", "Link: <http://x>; rel=a")
    assert served.config.headers == (("Link", "<http://x>; rel=a"),)


def test_headers_from_pyproject(served: Captured, tmp_path: Path) -> None:
    _pyproject(tmp_path, 'header = ["X-A: 1", "X-B: 2"]\n')
    _run("main:app")
    assert served.config.headers == (("X-A", "1"), ("X-B", "2"))


def test_header_from_env(served: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSERVE_HEADER", "X-A: 1")
    assert _run("main:app") == 0
    assert served.config.headers == (("X-A", "1"),)


@pytest.mark.parametrize("value", ["no-colon", ": value", "   :x"])
def test_bad_header_is_a_usage_error(
    served: Captured, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert _run("main:app", "--header", value) == cli.EXIT_USAGE
    assert _error_line(capsys) == (
        f"invalid value for --header (from command line): {value!r} is not in the form "
        "'Name: value'"
    )
    assert served.configs == []


def test_header_rejected_by_config(served: Captured, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("main:app", "--header", "X A: 1") == cli.EXIT_USAGE
    assert _error_line(capsys).startswith("invalid value for --header (from command line): ")


def test_forwarded_allow_ips(served: Captured) -> None:
    _run("main:app", "--forwarded-allow-ips", "10.0.0.1, 10.1.0.0/16,,")
    assert served.config.forwarded_allow_ips == ("10.0.0.1", "10.1.0.0/16")


def test_forwarded_allow_ips_default(served: Captured) -> None:
    _run("main:app")
    assert served.config.forwarded_allow_ips == ("127.0.0.1", "::1")


def test_forwarded_allow_ips_from_env(served: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSERVE_FORWARDED_ALLOW_IPS", "*")
    _run("main:app")
    assert served.config.forwarded_allow_ips == ("*",)


def test_forwarded_allow_ips_string_in_pyproject(served: Captured, tmp_path: Path) -> None:
    _pyproject(tmp_path, 'forwarded-allow-ips = "10.0.0.1,10.0.0.2"\n')
    _run("main:app")
    assert served.config.forwarded_allow_ips == ("10.0.0.1", "10.0.0.2")


def test_forwarded_allow_ips_list_in_pyproject(served: Captured, tmp_path: Path) -> None:
    _pyproject(tmp_path, 'forwarded-allow-ips = ["10.0.0.1", "10.0.0.2"]\n')
    assert _run("main:app") == 0
    assert served.config.forwarded_allow_ips == ("10.0.0.1", "10.0.0.2")


# -- errors ------------------------------------------------------------------------------


def test_config_error_names_command_line(
    served: Captured, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("main:app", "--port", "70000") == cli.EXIT_USAGE
    assert _error_line(capsys) == (
        "invalid value for --port (from command line): 70000 is not between 0 and 65535"
    )
    assert served.configs == []


def test_config_error_names_env_var(
    served: Captured, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSERVE_PORT", "70000")
    assert _run("main:app") == cli.EXIT_USAGE
    assert _error_line(capsys) == (
        "invalid value for --port (from environment variable DEVSERVE_PORT): 70000 is not "
        "between 0 and 65535"
    )


def test_config_error_names_pyproject(
    served: Captured, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _pyproject(tmp_path, "backlog = 0\n")
    assert _run("main:app") == cli.EXIT_USAGE
    assert _error_line(capsys) == (
        "invalid value for --backlog (from pyproject.toml [tool.devserve]): 0 must be at least 1"
    )


def test_conversion_error_names_env_var(
    served: Captured, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSERVE_PORT", "eighty")
    assert _run("main:app") == cli.EXIT_USAGE
    assert _error_line(capsys) == (
        "invalid value for --port (from environment variable DEVSERVE_PORT): 'eighty' is not "
        "a valid integer."
    )


def test_conversion_error_names_pyproject(
    served: Captured, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _pyproject(tmp_path, "loop = 'trio'\n")
    assert _run("main:app") == cli.EXIT_USAGE
    line = _error_line(capsys)
    assert line.startswith("invalid value for --loop (from pyproject.toml [tool.devserve]): ")
    assert "'trio'" in line


def test_conversion_error_names_command_line(
    served: Captured, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("main:app", "--timeout-keep-alive", "soon") == cli.EXIT_USAGE
    assert _error_line(capsys).startswith(
        "invalid value for --timeout-keep-alive (from command line): 'soon'"
    )


def test_several_problems_on_one_line(
    served: Captured, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSERVE_BACKLOG", "0")
    assert _run("main:app", "--port", "-1", "--uds", "/tmp/s", "--fd", "3") == cli.EXIT_USAGE
    problems = _error_line(capsys).split("; ")
    assert problems == [
        "invalid value for --port (from command line): -1 is not between 0 and 65535",
        "invalid value for --backlog (from environment variable DEVSERVE_BACKLOG): 0 must be "
        "at least 1",
        "--uds and --fd cannot be used together",
    ]


def test_unknown_option(served: Captured, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("main:app", "--bogus") == cli.EXIT_USAGE
    assert _error_line(capsys).startswith("No such option '--bogus'")


def test_unknown_pyproject_key(
    served: Captured, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _pyproject(tmp_path, "colour = true\n")
    assert _run("main:app") == cli.EXIT_USAGE
    line = _error_line(capsys)
    assert line.startswith("unknown key 'colour' in [tool.devserve] of ")
    assert line.endswith("pyproject.toml")


def test_broken_pyproject(
    served: Captured, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.devserve\nport = 1\n", encoding="utf-8")
    assert _run("main:app") == cli.EXIT_USAGE
    assert _error_line(capsys).startswith("cannot read ")


def test_bad_choice_on_command_line(served: Captured, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("main:app", "--lifespan", "maybe") == cli.EXIT_USAGE
    assert _error_line(capsys).startswith("invalid value for --lifespan (from command line): ")


def test_no_app_and_nothing_to_discover(
    served: Captured, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run() == cli.EXIT_USAGE
    assert "none found" in _error_line(capsys)
    assert served.configs == []


def test_no_app_discovers_one(
    served: Captured, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "main.py").write_text("app = None\n", encoding="utf-8")
    assert _run() == 0
    assert served.config.app == "main:app"
    assert capsys.readouterr().err == "devserve: using app main:app (found in main.py)\n"


# -- --version and -h --------------------------------------------------------------------


def test_version(served: Captured, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--version") == 0
    out = capsys.readouterr().out
    assert out == f"devserve, version {__version__}\n"
    assert served.configs == []


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(served: Captured, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    assert _run(flag) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: devserve [OPTIONS] [APP]")
    for option in ("--port", "--header", "--forwarded-allow-ips", "--timeout-graceful-shutdown"):
        assert option in out
    assert served.configs == []


# -- --ui and --slow-ms ------------------------------------------------------------------------


def test_ui_and_slow_ms_defaults(served: Captured) -> None:
    _run("main:app")
    assert (served.config.ui, served.config.slow_ms) == ("auto", 500.0)


def test_ui_from_each_source(
    served: Captured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pyproject(tmp_path, "ui = 'json'\nslow-ms = 250\n")
    _run("main:app")
    monkeypatch.setenv("DEVSERVE_UI", "plain")
    monkeypatch.setenv("DEVSERVE_SLOW_MS", "75.5")
    _run("main:app")
    _run("main:app", "--ui", "tui", "--slow-ms", "10")
    assert [(c.ui, c.slow_ms) for c in served.configs] == [
        ("json", 250.0),
        ("plain", 75.5),
        ("tui", 10.0),
    ]


def test_bad_ui_names_the_source(
    served: Captured, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSERVE_UI", "fancy")
    assert _run("main:app") == cli.EXIT_USAGE
    line = _error_line(capsys)
    assert line.startswith("invalid value for --ui (from environment variable DEVSERVE_UI): ")
    assert "'fancy' is not one of" in line
    assert served.configs == []


def test_slow_ms_must_be_positive(served: Captured, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("main:app", "--slow-ms", "0") == cli.EXIT_USAGE
    assert _error_line(capsys) == (
        "invalid value for --slow-ms (from command line): 0.0 must be a positive number of "
        "milliseconds"
    )
