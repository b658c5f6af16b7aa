"""The preloaded fork server: used for reloads, rebuilt when it cannot be trusted, optional."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from devserve.spare import SPARE_NAME
from tests.helpers import assert_no_children, children_of, start_server_cli, stop_cli, wait_until

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


SPARE_APP = """
import os
import sys

PRELOADED = "extlib" in sys.modules  # before this worker imported it itself
import extlib

VERSION = "{version}"

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{{VERSION}} {{os.getpid()}} {{PRELOADED}}".encode()
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})
"""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _spares(supervisor: int) -> list[int]:
    return [
        pid
        for server in children_of(supervisor)
        for pid in children_of(server)
        if _comm(pid) == SPARE_NAME.decode()
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_next_worker_is_forked_in_advance_with_the_preloads(tmp_path: Path) -> None:
    """After a reload the fork server keeps a spare; the next save is served by it."""
    project, outside = tmp_path / "project", tmp_path / "site"
    project.mkdir()
    outside.mkdir()
    (outside / "extlib.py").write_text("")
    (project / "main.py").write_text(textwrap.dedent(SPARE_APP.format(version="v1")))
    cli = start_server_cli(["main:app", "--reload"], project, env={"PYTHONPATH": str(outside)})
    try:
        assert _body(cli.url).split()[0] == "v1"
        served_by: list[int] = []
        for version in ("v2", "v3"):
            spare: list[int] = []
            wait_until(lambda s=spare: bool(s.extend(_spares(cli.proc.pid)) or s), timeout_s=10)
            (project / "main.py").write_text(textwrap.dedent(SPARE_APP.format(version=version)))
            body: list[str] = []
            wait_until(lambda b=body, v=version: b.append(_body(cli.url)) or b[-1].startswith(v))
            _, pid, preloaded = body[-1].split()
            # the spare forked after the preload of what v1 imported from outside the project
            assert (int(pid), preloaded) == (spare[-1], "True")
            served_by.append(int(pid))
        assert served_by[0] != served_by[1]
        assert "stopped unexpectedly" not in cli.output()
    finally:
        assert stop_cli(cli) == 0
    assert_no_children(cli.proc.pid)
