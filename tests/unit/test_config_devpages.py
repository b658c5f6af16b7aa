"""Options of #7: --livereload, --livereload-include, --allowed-hosts, --debug-pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.config import Config
from devserve.errors import ConfigError
from tests.helpers import run_cli


def test_live_reload_follows_reload_by_default() -> None:
    assert not Config.from_options({}).is_livereload
    assert Config.from_options({"reload": True}).is_livereload
    assert not Config.from_options({"reload": True, "livereload": False}).is_livereload


def test_live_reload_needs_reload() -> None:
    with pytest.raises(ConfigError, match="--livereload needs --reload"):
        Config.from_options({"livereload": True})


@pytest.mark.parametrize("entry", ["", "a b", "http://x", "x/y", "user@host"])
def test_bad_allowed_hosts(entry: str) -> None:
    with pytest.raises(ConfigError, match="--allowed-hosts"):
        Config.from_options({"allowed_hosts": (entry,)}, {"allowed_hosts": "command line"})


def test_json_round_trip_of_the_new_fields() -> None:
    config = Config.from_options(
        {
            "reload": True,
            "livereload": True,
            "livereload_includes": ("content/*.md",),
            "allowed_hosts": ("myapp.test", ".corp.test", "*"),
            "debug_pages": False,
        }
    )
    again = Config.from_json(config.to_json())
    assert again == config
    assert isinstance(again.allowed_hosts, tuple) and isinstance(again.livereload_includes, tuple)


def test_cli_rejects_livereload_without_reload(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("async def app(scope, receive, send): pass\n")
    result = run_cli(["main:app", "--livereload"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "devserve: error: --livereload needs --reload"


def test_cli_help_lists_the_options(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path)
    for flag in (
        "--livereload / --no-livereload",
        "--livereload-include",
        "--allowed-hosts",
        "--no-debug-pages",
    ):
        assert flag in result.stdout
