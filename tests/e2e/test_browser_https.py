"""A real headless Chromium loads `devserve --https` once the local CA is in its NSS database.

Chromium on Linux reads trust anchors from ``$HOME/.pki/nssdb``. Each test builds that database
in a temporary HOME with ``certutil`` (Debian ``libnss3-tools``), starts the real CLI with a
temporary ``--cert-dir`` and asks ``chromium --headless --dump-dom`` for the page, without
``--ignore-certificate-errors``. The control test builds the same database without the CA and
expects Chromium to refuse the certificate. Both skip when ``chromium`` or ``certutil`` is missing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devserve.certstore import certificate_paths
from tests.helpers import assert_no_children, start_server_cli, stop_cli, wait_until

CHROMIUM_TIMEOUT_S = 60.0
TOOL_TIMEOUT_S = 20.0

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"<!doctype html><html><body><p id='marker'>{marker}</p></body></html>"
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""


@dataclass(frozen=True)
class Browser:
    """What one headless Chromium run printed."""

    dom: str
    log: str


def _require_tools() -> None:
    for tool, package in (("chromium", "chromium"), ("certutil", "libnss3-tools")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not on PATH (Debian package {package})")


def _run_tool(argv: list[str]) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"


def _nss_home(home: Path, ca: Path | None) -> None:
    """Create ``home/.pki/nssdb`` (empty password) and, when ``ca`` is given, trust it for TLS."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    _run_tool(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"])
    if ca is not None:
        trust = ["-n", "devserve-test", "-t", "C,,", "-i", str(ca)]
        _run_tool(["certutil", "-A", "-d", f"sql:{db}", *trust])


@contextlib.contextmanager
def _serving(directory: Path, marker: str) -> Iterator[tuple[int, Path]]:
    """Run the real CLI with ``--https`` in ``directory``; yield its port and CA file."""
    (directory / "main.py").write_text(textwrap.dedent(APP).replace("{marker}", marker))
    cert_dir = directory / "certs"
    cli = start_server_cli(["main:app", "--https", "--cert-dir", str(cert_dir)], directory)
    try:
        url = cli.wait_for(r"(https://127\.0\.0\.1:\d+)").group(1)
        yield int(url.rsplit(":", 1)[1]), certificate_paths(cert_dir).ca_cert
    finally:
        stop_cli(cli)
        assert_no_children(cli.proc.pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _chromium(home: Path, url: str) -> Browser:
    """Dump the DOM of ``url`` with headless Chromium, HOME=``home``; bounded, group cleaned up."""
    argv = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={home / 'chromium-profile'}",
        "--dump-dom",
        url,
    ]
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            dom, log = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            dom, log = proc.communicate(timeout=10)
            msg = f"chromium did not finish within {CHROMIUM_TIMEOUT_S} s:\n{log[-3000:]}"
            raise AssertionError(msg) from None
    finally:
        try:
            wait_until(lambda: not _group_alive(proc.pid), timeout_s=5)
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    return Browser(dom, log)


@pytest.mark.timeout(90)
def test_chromium_trusts_the_devserve_ca_from_nss(tmp_path: Path) -> None:
    _require_tools()
    marker = f"devserve-browser-{secrets.token_hex(8)}"
    home = tmp_path / "home"
    with _serving(tmp_path, marker) as (port, ca):
        _nss_home(home, ca)
        browser = _chromium(home, f"https://localhost:{port}/")
    assert marker in browser.dom, f"DOM:\n{browser.dom}\nchromium log:\n{browser.log[-3000:]}"
    assert "ERR_CERT" not in browser.log, browser.log[-3000:]


@pytest.mark.timeout(90)
def test_chromium_rejects_the_devserve_ca_when_not_in_nss(tmp_path: Path) -> None:
    _require_tools()
    marker = f"devserve-browser-{secrets.token_hex(8)}"
    home = tmp_path / "home"
    with _serving(tmp_path, marker) as (port, _ca):
        _nss_home(home, None)  # the same database, minus the CA
        browser = _chromium(home, f"https://localhost:{port}/")
    assert marker not in browser.dom, f"DOM:\n{browser.dom}"
    assert "ERR_CERT_AUTHORITY_INVALID" in browser.log, browser.log[-3000:]
