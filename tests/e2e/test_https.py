"""The real `devserve --https`: local CA, TLS, redirect of plain HTTP, reload, user files."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import textwrap
from pathlib import Path

import httpx
import pytest

from devserve.certs import fingerprint_sha256
from devserve.certstore import ensure_certificates
from tests.helpers import (
    CLIProcess,
    assert_no_children,
    run_cli,
    start_server_cli,
    stop_cli,
    wait_until,
)

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ("{word} " + scope["scheme"]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""
_READY_MS = re.compile(r"ready in (\d+) ms")


def write_app(directory: Path, word: str = "hello") -> None:
    (directory / "main.py").write_text(textwrap.dedent(APP).replace("{word}", word))


def client(ca: Path) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=5)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def https_url(cli: CLIProcess) -> str:
    return cli.wait_for(r"(https://127\.0\.0\.1:\d+)").group(1)


def stop(cli: CLIProcess) -> None:
    stop_cli(cli)
    assert_no_children(cli.proc.pid)


def test_https_serves_with_a_reused_ca(tmp_path: Path) -> None:
    write_app(tmp_path)
    cert_dir = tmp_path / "certs"
    ca = cert_dir / "ca.pem"
    args = ["main:app", "--https", "--cert-dir", str(cert_dir)]
    cli = start_server_cli(args, tmp_path)
    try:
        url = https_url(cli)
        fingerprint = fingerprint_sha256(ca.read_bytes())
        cli.wait_for(re.escape(fingerprint))
        cli.wait_for("created a local certificate authority")
        cli.wait_for(re.escape("run 'devserve cert trust' to trust it") + ".*" + re.escape(str(ca)))
        with client(ca) as https:
            response = https.get(f"https://localhost:{port_of(url)}/")
        assert (response.status_code, response.text) == (200, "hello https")
        plain = httpx.get(f"http://127.0.0.1:{port_of(url)}/a?b=1", timeout=5)
        assert plain.status_code == 307
        assert plain.headers["location"] == f"https://127.0.0.1:{port_of(url)}/a?b=1"
        _check_openssl(port_of(url), ca)
    finally:
        stop(cli)
    second = start_server_cli(args, tmp_path)
    try:
        https_url(second)
        second.wait_for(re.escape(fingerprint))  # the same CA
        assert "created a local certificate authority" not in second.output()
        assert int(second.wait_for(_READY_MS.pattern).group(1)) < 3000
        assert fingerprint_sha256(ca.read_bytes()) == fingerprint
    finally:
        stop(second)


def _check_openssl(port: int, ca: Path) -> None:
    if shutil.which("openssl") is None:
        return
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca)]
    argv += ["-servername", "localhost"]
    result = subprocess.run(argv, input="", capture_output=True, text=True, timeout=10, check=False)
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout + result.stderr


def test_https_reload_serves_new_code_over_tls(tmp_path: Path) -> None:
    write_app(tmp_path, "before")
    cert_dir = tmp_path / "certs"
    cli = start_server_cli(
        ["main:app", "--https", "--reload", "--cert-dir", str(cert_dir)], tmp_path
    )
    try:
        url = f"https://localhost:{port_of(https_url(cli))}/"
        with client(cert_dir / "ca.pem") as https:
            assert https.get(url).text == "before https"
            write_app(tmp_path, "after")
            wait_until(lambda: https.get(url).text == "after https", timeout_s=10)
    finally:
        stop(cli)


def test_https_port_serves_both(tmp_path: Path) -> None:
    write_app(tmp_path)
    cert_dir = tmp_path / "certs"
    cli = start_server_cli(
        ["main:app", "--https", "--https-port", "0", "--cert-dir", str(cert_dir)], tmp_path
    )
    try:
        line = cli.wait_for(r"on (http://127\.0\.0\.1:\d+), (https://127\.0\.0\.1:\d+)")
        plain_url, secure_url = line.group(1), line.group(2)
        assert httpx.get(plain_url, timeout=5).text == "hello http"
        with client(cert_dir / "ca.pem") as https:
            response = https.get(f"https://localhost:{port_of(secure_url)}/")
        assert response.text == "hello https"
    finally:
        stop(cli)


@pytest.fixture
def user_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A certificate, its key, and a key of another certificate."""
    first = ensure_certificates(tmp_path / "one", ["localhost"])
    other = ensure_certificates(tmp_path / "two", ["localhost"])
    return first.leaf_cert, first.leaf_key, other.leaf_key


@pytest.mark.parametrize("reload", [False, True])
def test_bad_user_tls_files_are_one_line(
    tmp_path: Path, user_files: tuple[Path, Path, Path], reload: bool
) -> None:
    write_app(tmp_path)
    cert, _key, wrong_key = user_files
    extra = ["--reload"] if reload else []
    missing = tmp_path / "missing.pem"
    cases = [
        (["--ssl-certfile", str(missing), "--ssl-keyfile", str(wrong_key)], str(missing)),
        (["--ssl-certfile", str(cert), "--ssl-keyfile", str(wrong_key)], str(wrong_key)),
    ]
    for args, named in cases:
        result = run_cli(["main:app", "--port", "0", *extra, *args], tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1, result.stderr
        assert len(errors) == 1, result.stderr
        assert named in errors[0]


def test_https_with_ssl_certfile_is_a_usage_error(
    tmp_path: Path, user_files: tuple[Path, Path, Path]
) -> None:
    cert, key, _ = user_files
    args = ["main:app", "--https", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    result = run_cli([*args, "--cert-dir", str(tmp_path / "c")], tmp_path)
    assert result.returncode == 2
    assert "--https and --ssl-certfile cannot be used together" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
