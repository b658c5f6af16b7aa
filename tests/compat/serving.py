"""Serve a framework's app with the real ``devserve`` command, with and without --reload.

Each compatibility test writes a small project into `tmp_path`, starts ``devserve`` on
127.0.0.1 port 0 through `tests.helpers`, talks to it with httpx / websockets, and on the
way out stops the command by PID and checks that no process it started is left.
"""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import httpx

from tests.e2e.test_reload import serving
from tests.helpers import (
    CLIProcess,
    wait_until,
)

#: A short quiet period so an edit reloads promptly; the watcher itself is what is tested.
RELOAD_ARGS = ["--reload", "--reload-delay", "0.05"]


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write `files` ({relative path: source}) under `root`, dedented."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def devserve(
    root: Path, *args: str, reload: bool = False, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[CLIProcess]:
    """Run ``devserve ARGS [--reload]`` in `root` until the block ends, then check cleanup.

    The exit code must be 0 (a clean Ctrl+C) and no child may be left.
    """
    argv = [*args, "--host", "127.0.0.1", *(RELOAD_ARGS if reload else [])]
    return serving(root, argv, env, is_reload=reload)


def wait_for_text(cli: CLIProcess, path: str, text: str, timeout_s: float = 10.0) -> str:
    """Poll GET `path` until its body contains `text` (bounded); return the body."""
    last: list[str] = []

    def served() -> bool:
        try:
            response = httpx.get(cli.url + path, timeout=3)
        except httpx.HTTPError as exc:
            last[:] = [repr(exc)]
            return False
        last[:] = [f"{response.status_code} {response.text[:300]}"]
        return response.status_code == 200 and text in response.text

    try:
        wait_until(served, timeout_s, step_s=0.05)
    except AssertionError:
        msg = f"GET {path} never served {text!r}; last: {last}; output:\n{cli.output()}"
        raise AssertionError(msg) from None
    return last[0]


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` in `path` (which must contain it)."""
    source = path.read_text()
    assert old in source, f"{old!r} not in {path}"
    path.write_text(source.replace(old, new))


#: The first reload after start waits for the fork server to preload the framework.
FIRST_RELOAD_TIMEOUT_S = 45.0


def reload_after_edit(cli: CLIProcess, path: Path, url_path: str, old: str, new: str) -> None:
    """The view serves `old`; after editing it to `new` the server serves `new`."""
    wait_for_text(cli, url_path, old)
    edit(path, old, new)
    wait_for_text(cli, url_path, new, FIRST_RELOAD_TIMEOUT_S)
    cli.wait_for(r"reloaded in \d+ ms")
