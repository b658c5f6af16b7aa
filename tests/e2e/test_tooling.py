"""How devserve is started from tools: the console script, ``python -m``, shell completion,
``--help``, and the exit codes the README's table promises (each one produced for real)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devserve import __version__
from tests.compat.serving import write_files
from tests.helpers import assert_no_children, run_cli, start_cli, start_server_cli, stop_cli

README = Path(__file__).resolve().parents[2] / "README.md"
HELLO = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi"})
"""
SLOW_IMPORT = """
import time
print("importing", flush=True)
time.sleep(20)
"""


def _console_script() -> Path:
    script = Path(sys.executable).parent / "devserve"
    if not script.exists():
        pytest.skip("the devserve console script is not installed next to this Python")
    return script


def test_console_script_and_module_agree(tmp_path: Path) -> None:
    script = subprocess.run(
        [_console_script(), "--version"], capture_output=True, text=True, timeout=20, check=False
    )
    module = run_cli(["--version"], tmp_path)
    assert script.returncode == module.returncode == 0
    assert script.stdout == module.stdout == f"devserve, version {__version__}\n"


def _complete(shell: str, words: str, cword: int, tmp_path: Path) -> list[str]:
    env = {
        **os.environ,
        "_DEVSERVE_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    result = subprocess.run(
        [_console_script()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_bash_completion_of_options_choices_and_app(tmp_path: Path) -> None:
    options = _complete("bash", "devserve --reload-", 1, tmp_path)
    assert "plain,--reload-dir" in options and "plain,--reload-strategy" in options
    assert all(line.startswith("plain,--reload-") for line in options)
    assert _complete("bash", "devserve --loop ", 2, tmp_path) == [
        "plain,auto",
        "plain,asyncio",
        "plain,uvloop",
    ]
    # APP: the cert subcommand, then the shell's own file-name completion.
    assert _complete("bash", "devserve ce", 1, tmp_path) == ["plain,cert", "file,ce"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_generated(shell: str, tmp_path: Path) -> None:
    env = {**os.environ, "_DEVSERVE_COMPLETE": f"{shell}_source"}
    result = subprocess.run(
        [_console_script()], env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode == 0
    assert "_devserve_completion" in result.stdout
    assert "_DEVSERVE_COMPLETE" in result.stdout


def test_help_is_grouped_with_examples(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path)
    assert result.returncode == 0
    for heading in ("Server:", "Reload:", "HTTPS and TLS:", "Logging:", "Examples:"):
        assert f"\n{heading}\n" in result.stdout, heading


# -- exit codes: the README's table, row by row ---------------------------------------------


def _readme_exit_codes() -> dict[int, str]:
    section = README.read_text().split("### Exit codes", 1)[1].split("\n#", 1)[0]
    return {
        int(match.group(1)): match.group(2)
        for match in re.finditer(r"^\| (\d+) \| (.+?) \|$", section, re.MULTILINE)
    }


def _port_in_use(tmp_path: Path) -> int:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        return run_cli(["main:app", "--port", port], tmp_path).returncode


def _stopped_by(sig: int, tmp_path: Path) -> int:
    cli = start_server_cli(["main:app"], tmp_path)
    code = stop_cli(cli, sig)
    assert_no_children(cli.proc.pid)
    return code


def _interrupted_while_importing(tmp_path: Path) -> int:
    cli = start_cli(["slow:app", "--port", "0"], tmp_path)
    cli.wait_for("importing")
    code = stop_cli(cli, signal.SIGINT, timeout_s=5)  # one Ctrl+C stops a stuck import
    assert "Traceback" not in cli.output(), cli.output()
    return code


SCENARIOS = {
    0: [lambda p: _stopped_by(signal.SIGINT, p), lambda p: _stopped_by(signal.SIGTERM, p)],
    1: [
        _port_in_use,
        lambda p: (
            run_cli(
                ["main:app", "--port", "0", "--ssl-certfile", "no.pem", "--ssl-keyfile", "no.pem"],
                p,
            ).returncode
        ),
    ],
    2: [
        lambda p: run_cli(["main:app", "--port", "nope"], p).returncode,
        lambda p: run_cli(["main:app", "--no-such-flag"], p).returncode,
    ],
    3: [
        lambda p: run_cli(["missing:app", "--port", "0"], p).returncode,
        lambda p: run_cli(["broken:app", "--port", "0"], p).returncode,
    ],
    130: [_interrupted_while_importing],
}


def test_readme_exit_code_table_is_true(tmp_path: Path) -> None:
    documented = _readme_exit_codes()
    assert set(documented) == set(SCENARIOS), documented
    write_files(
        tmp_path,
        {"main.py": HELLO, "slow.py": SLOW_IMPORT, "broken.py": "raise RuntimeError('x')\n"},
    )
    for code, scenarios in SCENARIOS.items():
        for scenario in scenarios:
            assert scenario(tmp_path) == code, f"{documented[code]!r}: {scenario}"
