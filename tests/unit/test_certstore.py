"""Tests for devserve.certstore: the CA and leaf files, their modes, renewal and describe."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from devserve import certs, certstore, tls
from devserve.errors import CertificateError

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
HOSTS = ["localhost", "127.0.0.1", "::1", "devbox", "*.app.localhost", "192.168.1.5"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- ensure_certificates -----------------------------------------------------------------------


def _fingerprints(paths: certstore.CertificatePaths) -> tuple[str, str]:
    return (
        certs.fingerprint_sha256(paths.ca_cert.read_bytes()),
        certs.fingerprint_sha256(paths.leaf_cert.read_bytes()),
    )


def _ensure(
    cert_dir: Path, hosts: list[str] = HOSTS, now: dt.datetime = NOW
) -> certstore.CertificatePaths:
    return certstore.ensure_certificates(cert_dir, hosts, now=now, hostname="devbox", user="alice")


def test_ensure_creates_private_files(tmp_path: Path) -> None:
    cert_dir = tmp_path / "a" / "certs"
    old_umask = os.umask(0)  # even a permissive umask must not widen the modes
    try:
        paths = _ensure(cert_dir)
    finally:
        os.umask(old_umask)
    assert paths.created_ca
    assert paths.created_leaf
    assert _mode(cert_dir) == 0o700
    assert _mode(paths.ca_key) == 0o600
    assert _mode(paths.leaf_key) == 0o600
    assert _mode(paths.ca_cert) == 0o644
    assert sorted(p.name for p in cert_dir.iterdir()) == [
        "ca-key.pem",
        "ca.pem",
        "server-key.pem",
        "server.pem",
    ]


def test_keys_are_private_before_they_are_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, int] = {}
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen[Path(dst).name] = _mode(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr("devserve.certstore.os.replace", spy)
    _ensure(tmp_path / "certs")
    assert seen["ca-key.pem"] == 0o600
    assert seen["server-key.pem"] == 0o600


def test_ensure_reuses_on_second_call(tmp_path: Path) -> None:
    first = _ensure(tmp_path)
    second = _ensure(tmp_path, now=NOW + dt.timedelta(days=1))
    assert not second.created_ca
    assert not second.created_leaf
    assert _fingerprints(first) == _fingerprints(second)


def test_ensure_reuses_when_hosts_only_reordered(tmp_path: Path) -> None:
    _ensure(tmp_path)
    again = _ensure(tmp_path, hosts=list(reversed(HOSTS)))
    assert not again.created_leaf


def test_ensure_regenerates_leaf_for_new_hosts(tmp_path: Path) -> None:
    first = _fingerprints(_ensure(tmp_path))
    paths = _ensure(tmp_path, hosts=[*HOSTS, "extra.localhost"])
    assert not paths.created_ca
    assert paths.created_leaf
    ca_fp, leaf_fp = _fingerprints(paths)
    assert ca_fp == first[0]
    assert leaf_fp != first[1]
    names = certstore.describe(paths).leaf_names
    assert "extra.localhost" in names


def test_ensure_regenerates_leaf_near_expiry(tmp_path: Path) -> None:
    _ensure(tmp_path)
    still_fine = _ensure(tmp_path, now=NOW + dt.timedelta(days=59))
    assert not still_fine.created_leaf
    renewed = _ensure(tmp_path, now=NOW + dt.timedelta(days=61))
    assert renewed.created_leaf
    assert not renewed.created_ca
    leaf = x509.load_pem_x509_certificate(renewed.leaf_cert.read_bytes())
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(days=61 + certs.LEAF_LIFETIME_DAYS)


def test_ensure_regenerates_ca_near_expiry(tmp_path: Path) -> None:
    first = _fingerprints(_ensure(tmp_path))
    later = NOW + dt.timedelta(days=certs.CA_LIFETIME_DAYS - 10)
    paths = _ensure(tmp_path, now=later)
    assert paths.created_ca
    assert paths.created_leaf
    assert _fingerprints(paths)[0] != first[0]


def test_ensure_regenerates_leaf_not_signed_by_current_ca(tmp_path: Path) -> None:
    paths = _ensure(tmp_path)
    other_cert, other_key = certs.build_ca(hostname="devbox", user="eve", now=NOW)
    paths.ca_cert.write_bytes(other_cert)
    paths.ca_key.write_bytes(other_key)
    again = _ensure(tmp_path)
    assert not again.created_ca
    assert again.created_leaf
    leaf = x509.load_pem_x509_certificate(again.leaf_cert.read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(other_cert))


@pytest.mark.parametrize("damaged", ["ca_key", "leaf_key", "leaf_cert"])
def test_ensure_replaces_damaged_files(tmp_path: Path, damaged: str) -> None:
    paths = _ensure(tmp_path)
    getattr(paths, damaged).write_bytes(b"not pem")
    again = _ensure(tmp_path)
    assert again.created_leaf
    assert again.created_ca == (damaged == "ca_key")
    tls.load_user_files(again.leaf_cert, again.leaf_key, now=NOW)


def test_ensure_validates_hosts_before_writing(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="bad host"):
        _ensure(tmp_path / "never", hosts=["localhost", "bad host"])
    assert not (tmp_path / "never").exists()


def test_ensure_leaves_existing_directory_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    _ensure(tmp_path)
    assert _mode(tmp_path) == 0o755


# -- describe ----------------------------------------------------------------------------------


def test_describe(tmp_path: Path) -> None:
    paths = _ensure(tmp_path)
    info = certstore.describe(paths)
    assert info.ca_subject == "CN=devserve local CA (alice@devbox),O=devserve"
    assert info.ca_not_after == NOW + dt.timedelta(days=certs.CA_LIFETIME_DAYS)
    assert info.leaf_names == tuple(HOSTS)
    assert info.leaf_not_after == NOW + dt.timedelta(days=certs.LEAF_LIFETIME_DAYS)
    assert (info.ca_fingerprint, info.leaf_fingerprint) == _fingerprints(paths)


def test_describe_without_leaf(tmp_path: Path) -> None:
    paths = _ensure(tmp_path)
    paths.leaf_cert.unlink()
    info = certstore.describe(paths)
    assert info.leaf_names == ()
    assert info.leaf_not_after is None
    assert info.leaf_fingerprint is None


def test_describe_missing_ca(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=r"cannot read CA certificate .*ca\.pem"):
        certstore.describe(certstore.certificate_paths(tmp_path))


def test_describe_garbled_ca(tmp_path: Path) -> None:
    paths = certstore.certificate_paths(tmp_path)
    paths.ca_cert.write_text("nope")
    with pytest.raises(CertificateError, match="is not a PEM certificate"):
        certstore.describe(paths)


def test_describe_garbled_leaf(tmp_path: Path) -> None:
    paths = _ensure(tmp_path)
    paths.leaf_cert.write_text("nope")
    with pytest.raises(CertificateError, match=r"server\.pem is not a PEM certificate"):
        certstore.describe(paths)
