"""Tests for devserve.tls: user-supplied files, the server context and a real TLS handshake."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from devserve import certs, certstore, tls
from devserve.errors import CertificateError

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
HOSTS = ["localhost", "127.0.0.1", "::1", "devbox", "*.app.localhost", "192.168.1.5"]
TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def ca_pair() -> tuple[bytes, bytes]:
    return certs.build_ca(hostname="devbox", user="alice", now=NOW)


@pytest.fixture(scope="module")
def leaf_pair(ca_pair: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return certs.build_leaf(*ca_pair, HOSTS, now=NOW)


# -- user-supplied files -----------------------------------------------------------------------


@pytest.fixture
def user_files(tmp_path: Path, leaf_pair: tuple[bytes, bytes]) -> tuple[Path, Path]:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(leaf_pair[0])
    key_file.write_bytes(leaf_pair[1])
    return cert_file, key_file


def test_user_files_ok(user_files: tuple[Path, Path]) -> None:
    tls.load_user_files(*user_files, now=NOW)
    tls.load_user_files(str(user_files[0]), str(user_files[1]), now=NOW)


def test_user_files_combined_pem(tmp_path: Path, leaf_pair: tuple[bytes, bytes]) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(leaf_pair[1] + leaf_pair[0])
    tls.load_user_files(both, now=NOW)


def test_user_files_missing(tmp_path: Path, user_files: tuple[Path, Path]) -> None:
    with pytest.raises(CertificateError, match=r"cannot read certificate file .*nope\.pem"):
        tls.load_user_files(tmp_path / "nope.pem", user_files[1], now=NOW)
    with pytest.raises(CertificateError, match=r"cannot read key file .*nokey\.pem"):
        tls.load_user_files(user_files[0], tmp_path / "nokey.pem", now=NOW)


def test_user_files_not_pem(tmp_path: Path, user_files: tuple[Path, Path]) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(CertificateError, match=r"junk\.pem is not a PEM certificate"):
        tls.load_user_files(junk, user_files[1], now=NOW)
    with pytest.raises(CertificateError, match=r"junk\.pem is not a PEM private key"):
        tls.load_user_files(user_files[0], junk, now=NOW)


def test_user_files_key_mismatch(tmp_path: Path, user_files: tuple[Path, Path]) -> None:
    other = tmp_path / "other-key.pem"
    other.write_bytes(certs.build_ca(hostname="h", user="u", now=NOW)[1])
    with pytest.raises(
        CertificateError, match=r"other-key\.pem does not match certificate .*cert\.pem"
    ):
        tls.load_user_files(user_files[0], other, now=NOW)


def test_user_files_expired_and_not_yet_valid(user_files: tuple[Path, Path]) -> None:
    with pytest.raises(CertificateError, match=r"cert\.pem is expired on 2030-08-30"):
        tls.load_user_files(*user_files, now=NOW + dt.timedelta(days=365))
    with pytest.raises(CertificateError, match="is not valid before 2030-06-01"):
        tls.load_user_files(*user_files, now=NOW - dt.timedelta(days=1))


def test_user_files_encrypted_key(tmp_path: Path, user_files: tuple[Path, Path]) -> None:
    key = serialization.load_pem_private_key(user_files[1].read_bytes(), password=None)
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    tls.load_user_files(user_files[0], encrypted, "s3cret", now=NOW)
    tls.load_user_files(user_files[0], encrypted, b"s3cret", now=NOW)
    with pytest.raises(CertificateError, match="needs a password"):
        tls.load_user_files(user_files[0], encrypted, now=NOW)
    with pytest.raises(CertificateError, match="or the password is wrong"):
        tls.load_user_files(user_files[0], encrypted, "wrong", now=NOW)


def test_server_context_settings(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, ["localhost"])
    context = tls.make_server_ssl_context(paths.leaf_cert, paths.leaf_key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    with_clients = tls.make_server_ssl_context(
        paths.leaf_cert, paths.leaf_key, ca_certs=paths.ca_cert
    )
    assert with_clients.verify_mode == ssl.CERT_OPTIONAL


def test_server_context_maps_errors(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, ["localhost"])
    with pytest.raises(CertificateError, match=r"missing\.pem"):
        tls.make_server_ssl_context(tmp_path / "missing.pem", paths.leaf_key)
    bad_ca = tmp_path / "bad-ca.pem"
    bad_ca.write_text("junk")
    with pytest.raises(CertificateError, match=r"cannot use CA bundle .*bad-ca\.pem"):
        tls.make_server_ssl_context(paths.leaf_cert, paths.leaf_key, ca_certs=bad_ca)


# -- real TLS over loopback --------------------------------------------------------------------


@contextmanager
def _tls_server(
    context: ssl.SSLContext, connections: int
) -> Iterator[tuple[int, list[BaseException]]]:
    """Serve ``connections`` TLS handshakes on 127.0.0.1:0, answering b"ok" on each."""
    errors: list[BaseException] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)

    def serve() -> None:
        for _ in range(connections):
            try:
                raw, _address = listener.accept()
                raw.settimeout(TIMEOUT_S)
                with context.wrap_socket(raw, server_side=True) as conn:
                    conn.sendall(b"ok")
            except (OSError, ssl.SSLError) as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], errors
    finally:
        thread.join(TIMEOUT_S)
        listener.close()
    assert not thread.is_alive()


def _handshake(port: int, ca_file: Path, server_hostname: str) -> tuple[bytes, str | None]:
    client = ssl.create_default_context(cafile=str(ca_file))
    client.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
        client.wrap_socket(raw, server_hostname=server_hostname) as conn,
    ):
        return conn.recv(16), conn.selected_alpn_protocol()


def test_tls_handshake_trusting_only_the_ca(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, certs.default_hosts())
    context = tls.make_server_ssl_context(paths.leaf_cert, paths.leaf_key)
    with _tls_server(context, connections=3) as (port, errors):
        assert _handshake(port, paths.ca_cert, "localhost") == (b"ok", "http/1.1")
        assert _handshake(port, paths.ca_cert, "127.0.0.1") == (b"ok", "http/1.1")
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(port, paths.ca_cert, "example.com")
    assert len(errors) == 1  # the server saw the client abort the third handshake


def test_openssl_enforces_name_constraints(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    now = dt.datetime.now(dt.timezone.utc)
    ca_pem, ca_key = certs.build_ca(hostname="devbox", user="alice", now=now)
    ca_file.write_bytes(ca_pem)
    leaf_pem, leaf_key = certs.build_leaf(ca_pem, ca_key, ["example.com"], now=now)
    cert_file.write_bytes(leaf_pem)
    key_file.write_bytes(leaf_key)
    context = tls.make_server_ssl_context(cert_file, key_file)
    with (
        _tls_server(context, connections=1) as (port, _errors),
        pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)subtree|constraint"),
    ):
        _handshake(port, ca_file, "example.com")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verify(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, ["localhost", "127.0.0.1", "::1"])
    base = ["openssl", "verify", "-CAfile", str(paths.ca_cert)]
    for extra in ([], ["-verify_hostname", "localhost"], ["-verify_ip", "127.0.0.1"]):
        result = subprocess.run(
            [*base, *extra, str(paths.leaf_cert)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")
