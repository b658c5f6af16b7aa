"""The preloaded fork server: used for reloads, rebuilt when it cannot be trusted, optional."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx

from tests.helpers import assert_no_children, start_server_cli, stop_cli, wait_until

APP = """
import extlib

VERSION = "{version}"

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
"""


def _body(url: str) -> str:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return ""


def _save(project: Path, version: str) -> None:
    (project / "main.py").write_text(textwrap.dedent(APP.format(version=version)))


def test_preload_that_pulls_in_project_code_is_rebuilt_without_it(tmp_path: Path) -> None:
    """A third-party module importing project code must never be preloaded."""
    project, outside = tmp_path / "project", tmp_path / "site"
    project.mkdir()
    outside.mkdir()
    (outside / "extlib.py").write_text("import projmod\n")  # third party -> project code
    (project / "projmod.py").write_text("VALUE = 1\n")
    _save(project, "v1")
    cli = start_server_cli(["main:app", "--reload"], project, env={"PYTHONPATH": str(outside)})
    try:
        assert _body(cli.url) == "v1"
        cli.wait_for(r"fork server: preloading imported project module 'projmod'; rebuilding")
        for version in ("v2", "v3"):
            _save(project, version)
            wait_until(lambda v=version: _body(cli.url) == v, timeout_s=10)
        cli.wait_for(r"reloaded in \d+ ms \[fork\]")
    finally:
        assert stop_cli(cli) == 0
    assert_no_children(cli.proc.pid)


def test_no_reload_preload_spawns(tmp_path: Path) -> None:
    (tmp_path / "extlib.py").write_text("")
    _save(tmp_path, "v1")
    cli = start_server_cli(["main:app", "--reload", "--no-reload-preload"], tmp_path)
    try:
        _save(tmp_path, "v2")
        wait_until(lambda: _body(cli.url) == "v2", timeout_s=10)
        cli.wait_for(r"reloaded in \d+ ms \[spawn\]")
        assert "devserve.forkserver" not in cli.output()
    finally:
        assert stop_cli(cli) == 0
    assert_no_children(cli.proc.pid)
