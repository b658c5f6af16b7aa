"""Tests for devserve.certs: CA and leaf contents, default hosts and directory, fingerprints."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from devserve import certs
from devserve.errors import CertificateError

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
HOSTS = ["localhost", "127.0.0.1", "::1", "devbox", "*.app.localhost", "192.168.1.5"]


@pytest.fixture(scope="module")
def ca_pair() -> tuple[bytes, bytes]:
    return certs.build_ca(hostname="devbox", user="alice", now=NOW)


@pytest.fixture(scope="module")
def leaf_pair(ca_pair: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return certs.build_leaf(*ca_pair, HOSTS, now=NOW)


def _ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


# -- the CA ------------------------------------------------------------------------------------


def test_ca_is_p256_self_signed_with_subject(ca_pair: tuple[bytes, bytes]) -> None:
    ca = x509.load_pem_x509_certificate(ca_pair[0])
    key = serialization.load_pem_private_key(ca_pair[1], password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert ca.subject == ca.issuer
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "devserve local CA (alice@devbox)"
    ca.verify_directly_issued_by(ca)


def test_ca_basic_constraints_and_key_usage(ca_pair: tuple[bytes, bytes]) -> None:
    ca = x509.load_pem_x509_certificate(ca_pair[0])
    bc = _ext(ca, x509.BasicConstraints)
    assert bc.critical
    assert bc.value == x509.BasicConstraints(ca=True, path_length=0)
    ku = _ext(ca, x509.KeyUsage)
    assert ku.critical
    assert isinstance(ku.value, x509.KeyUsage)
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert not ku.value.digital_signature
    assert not ku.value.key_encipherment
    ski = _ext(ca, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())


def test_ca_name_constraints(ca_pair: tuple[bytes, bytes]) -> None:
    ca = x509.load_pem_x509_certificate(ca_pair[0])
    nc = _ext(ca, x509.NameConstraints)
    assert nc.critical
    assert isinstance(nc.value, x509.NameConstraints)
    assert nc.value.excluded_subtrees is None
    permitted = nc.value.permitted_subtrees or []
    dns = {n.value for n in permitted if isinstance(n, x509.DNSName)}
    networks = {n.value for n in permitted if isinstance(n, x509.IPAddress)}
    assert dns == {"localhost", "test", "devbox"}
    assert networks == {
        ipaddress.ip_network(n)
        for n in (
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
            "fe80::/10",
        )
    }


def test_ca_skips_invalid_hostname_in_constraints() -> None:
    cert_pem, _ = certs.build_ca(hostname="my_box!", user="bob", now=NOW)
    value = _ext(x509.load_pem_x509_certificate(cert_pem), x509.NameConstraints).value
    assert isinstance(value, x509.NameConstraints)
    dns = {n.value for n in value.permitted_subtrees or [] if isinstance(n, x509.DNSName)}
    assert dns == {"localhost", "test"}


def test_ca_validity(ca_pair: tuple[bytes, bytes]) -> None:
    ca = x509.load_pem_x509_certificate(ca_pair[0])
    assert ca.not_valid_before_utc == NOW - dt.timedelta(hours=1)
    assert ca.not_valid_after_utc == NOW + dt.timedelta(days=certs.CA_LIFETIME_DAYS)


# -- the leaf ----------------------------------------------------------------------------------


def test_leaf_subject_alternative_names(leaf_pair: tuple[bytes, bytes]) -> None:
    leaf = x509.load_pem_x509_certificate(leaf_pair[0])
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "devbox", "*.app.localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("192.168.1.5"),
    ]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []


def test_leaf_extensions(leaf_pair: tuple[bytes, bytes], ca_pair: tuple[bytes, bytes]) -> None:
    leaf = x509.load_pem_x509_certificate(leaf_pair[0])
    ca = x509.load_pem_x509_certificate(ca_pair[0])
    assert _ext(leaf, x509.BasicConstraints).value == x509.BasicConstraints(
        ca=False, path_length=None
    )
    ku = _ext(leaf, x509.KeyUsage)
    assert ku.critical
    assert isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign
    assert not ku.value.crl_sign
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [  # type: ignore[call-overload]
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    ski = _ext(leaf, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    aki = _ext(leaf, x509.AuthorityKeyIdentifier).value
    ca_ski = _ext(ca, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ca_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest
    assert leaf.issuer == ca.subject


def test_leaf_validity_is_short(leaf_pair: tuple[bytes, bytes]) -> None:
    leaf = x509.load_pem_x509_certificate(leaf_pair[0])
    assert leaf.not_valid_before_utc == NOW - dt.timedelta(hours=1)
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(days=certs.LEAF_LIFETIME_DAYS)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc < dt.timedelta(days=398)


@pytest.mark.parametrize(
    "subject",
    [
        x509.DNSName("localhost"),
        x509.DNSName("devbox"),
        x509.DNSName("x.app.localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ],
)
def test_leaf_verifies_against_ca(
    leaf_pair: tuple[bytes, bytes],
    ca_pair: tuple[bytes, bytes],
    subject: x509.DNSName | x509.IPAddress,
) -> None:
    leaf = x509.load_pem_x509_certificate(leaf_pair[0])
    store = Store([x509.load_pem_x509_certificate(ca_pair[0])])
    verifier = PolicyBuilder().store(store).time(NOW).build_server_verifier(subject)
    chain = verifier.verify(leaf, [])
    assert chain[0] == leaf


def test_name_constraints_reject_public_names(ca_pair: tuple[bytes, bytes]) -> None:
    leaf_pem, _ = certs.build_leaf(*ca_pair, ["example.com"], now=NOW)
    store = Store([x509.load_pem_x509_certificate(ca_pair[0])])
    verifier = (
        PolicyBuilder().store(store).time(NOW).build_server_verifier(x509.DNSName("example.com"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(x509.load_pem_x509_certificate(leaf_pem), [])


def test_name_constraints_allow_dot_test(ca_pair: tuple[bytes, bytes]) -> None:
    leaf_pem, _ = certs.build_leaf(*ca_pair, ["shop.test"], now=NOW)
    store = Store([x509.load_pem_x509_certificate(ca_pair[0])])
    verifier = (
        PolicyBuilder().store(store).time(NOW).build_server_verifier(x509.DNSName("shop.test"))
    )
    verifier.verify(x509.load_pem_x509_certificate(leaf_pem), [])


@pytest.mark.parametrize("bad", [[], ["*"], ["bad host"], [""], ["-x.localhost"]])
def test_build_leaf_rejects_bad_hosts(ca_pair: tuple[bytes, bytes], bad: list[str]) -> None:
    with pytest.raises(CertificateError):
        certs.build_leaf(*ca_pair, bad, now=NOW)


def test_build_leaf_encodes_idna_and_brackets(ca_pair: tuple[bytes, bytes]) -> None:
    leaf_pem, _ = certs.build_leaf(
        *ca_pair, ["bücher.localhost", "[::1]", "Mixed.Localhost."], now=NOW
    )
    san = _ext(x509.load_pem_x509_certificate(leaf_pem), x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.localhost", "mixed.localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("::1")]


# -- default hosts and directory ---------------------------------------------------------------


def test_default_hosts_dedups_and_drops_wildcard_binds() -> None:
    extra = [
        "0.0.0.0",
        "::",
        "LOCALHOST",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "api.localhost",
        "192.168.1.5",
    ]
    assert certs.default_hosts(extra, hostname="DevBox") == [
        "localhost",
        "127.0.0.1",
        "::1",
        "devbox",
        "api.localhost",
        "192.168.1.5",
    ]


def test_default_hosts_skips_invalid_hostname() -> None:
    assert certs.default_hosts(hostname="my_box") == ["localhost", "127.0.0.1", "::1"]


def test_default_hosts_uses_machine_hostname() -> None:
    hosts = certs.default_hosts()
    assert hosts[:3] == ["localhost", "127.0.0.1", "::1"]


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({"DEVSERVE_CERT_DIR": "/srv/certs", "HOME": "/h"}, "linux", "/srv/certs"),
        ({"HOME": "/h"}, "linux", "/h/.local/share/devserve/certs"),
        ({"HOME": "/h", "XDG_DATA_HOME": "/data"}, "linux", "/data/devserve/certs"),
        ({"HOME": "/h"}, "darwin", "/h/Library/Application Support/devserve/certs"),
        ({"LOCALAPPDATA": "/appdata"}, "win32", "/appdata/devserve/certs"),
        ({"USERPROFILE": "/u"}, "win32", "/u/AppData/Local/devserve/certs"),
    ],
)
def test_default_cert_dir(environ: dict[str, str], platform: str, expected: str) -> None:
    assert certs.default_cert_dir(environ, platform=platform) == Path(expected)


# -- fingerprints ------------------------------------------------------------------------------


def test_fingerprint_format(ca_pair: tuple[bytes, bytes]) -> None:
    fingerprint = certs.fingerprint_sha256(ca_pair[0])
    expected = x509.load_pem_x509_certificate(ca_pair[0]).fingerprint(hashes.SHA256()).hex()
    assert fingerprint.replace(":", "").lower() == expected
    assert len(fingerprint) == 32 * 3 - 1
