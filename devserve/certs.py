"""Building the ``--https`` certificates: a local CA and a leaf signed by it, as PEM bytes.

Theory of operation:

- ``build_ca`` and ``build_leaf`` are pure: values in, PEM bytes out, no files.
- The CA is an ECDSA P-256 root constrained (RFC 5280 NameConstraints) to names that can only mean
  "this machine or its private network": ``localhost``, ``test`` and the host name (each with all
  its subdomains) and the loopback / private / link-local IP ranges. Trusting it therefore cannot
  let a stolen key impersonate a public site.
- ``default_hosts`` and ``default_cert_dir`` choose what a development certificate covers and
  where it is kept; ``fingerprint_sha256`` and the SAN helpers read certificates back.

Keeping the files on disk is ``devserve.certstore``; serving user TLS files is ``devserve.tls``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devserve.errors import CertificateError

CA_LIFETIME_DAYS = 3650
LEAF_LIFETIME_DAYS = 90  # browsers refuse leaves valid for more than 398 days
BACKDATE_S = 3600  # tolerate a client clock that is a little behind

PERMITTED_DNS = ("localhost", "test")  # RFC 5280: each also permits all of its subdomains
PERMITTED_NETWORKS = (
    *("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
    *("::1/128", "fc00::/7", "fe80::/10"),
)
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_MAX_DNS_NAME_CHARS = 253
_KEY_USAGES = (
    *("digital_signature", "content_commitment", "key_encipherment", "data_encipherment"),
    *("key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
)


def _key_usage(*enabled: str) -> x509.KeyUsage:
    return x509.KeyUsage(**{usage: usage in enabled for usage in _KEY_USAGES})


def _utcnow(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.timezone.utc)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _is_dns_name(name: str, *, allow_wildcard: bool = False) -> bool:
    labels = name.lower().rstrip(".").split(".")
    if allow_wildcard and len(labels) > 1 and labels[0] == "*":
        labels = labels[1:]
    return len(name) <= _MAX_DNS_NAME_CHARS and all(_DNS_LABEL.fullmatch(label) for label in labels)


def _general_name(host: str) -> x509.GeneralName:
    """Return the SAN entry for ``host``: an IPAddress if it parses as one, else a DNSName."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    if not _is_dns_name(name, allow_wildcard=True):
        raise CertificateError(f"{host!r} is neither an IP address nor a valid DNS name")
    return x509.DNSName(name)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    lifetime_days: int,
) -> x509.CertificateBuilder:
    """Start a certificate: names, fresh serial, backdated validity and a SubjectKeyIdentifier."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(seconds=BACKDATE_S))
        .not_valid_after(now + dt.timedelta(days=lifetime_days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def build_ca(*, hostname: str, user: str, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """Build a name-constrained local certificate authority.

    Args:
        hostname: this machine's host name; it is named in the subject and, if it is a valid DNS
            name, permitted by the name constraints.
        user: the user name shown in the subject.
        now: the issue time (UTC); defaults to the current time.

    Returns:
        ``(cert_pem, key_pem)``; the key is unencrypted PKCS#8.
    """
    now = _utcnow(now)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devserve"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"devserve local CA ({user}@{hostname})"[:64]),
        ]
    )
    dns = list(PERMITTED_DNS)
    if _is_dns_name(hostname) and hostname.lower() not in dns:
        dns.append(hostname.lower())
    permitted: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    permitted += [x509.IPAddress(ipaddress.ip_network(n)) for n in PERMITTED_NETWORKS]
    cert = (
        _builder(name, name, key, now, CA_LIFETIME_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.NameConstraints(permitted, None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM), _key_pem(key)


def build_leaf(
    ca_cert_pem: bytes, ca_key_pem: bytes, hosts: Sequence[str], *, now: dt.datetime | None = None
) -> tuple[bytes, bytes]:
    """Build a server certificate for ``hosts``, signed by the CA.

    Args:
        ca_cert_pem: the CA certificate (PEM).
        ca_key_pem: the CA private key (PEM, unencrypted).
        hosts: DNS names (wildcards allowed) and IPv4/IPv6 addresses; at least one.
        now: the issue time (UTC); defaults to the current time.

    Returns:
        ``(cert_pem, key_pem)``, valid for ``LEAF_LIFETIME_DAYS``.

    Raises:
        CertificateError: ``hosts`` is empty or holds a name that is neither an IP nor DNS name.
    """
    if not hosts:
        raise CertificateError("a certificate needs at least one host name")
    now = _utcnow(now)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the devserve CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devserve development")])
    cert = (
        _builder(subject, ca_cert.subject, key, now, LEAF_LIFETIME_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM), _key_pem(key)


def default_hosts(extra: Iterable[str] = (), *, hostname: str | None = None) -> list[str]:
    """Return the names a development certificate should cover.

    Args:
        extra: more hosts, e.g. every ``--host``; wildcard binds (``0.0.0.0``, ``::``) are
            dropped, since the host name below already covers access from the network.
        hostname: this machine's host name; defaults to ``socket.gethostname()``. Left out when it
            is not a valid DNS name.

    Returns:
        ``localhost``, ``127.0.0.1``, ``::1``, the host name, then ``extra``; deduplicated.
    """
    hostname = socket.gethostname() if hostname is None else hostname
    candidates = ["localhost", "127.0.0.1", "::1"]
    if _is_dns_name(hostname):
        candidates.append(hostname.lower())
    candidates += [h.strip().strip("[]") for h in extra]
    result: list[str] = []
    for host in candidates:
        if host in _WILDCARD_BINDS:
            continue
        if _san_key(host) not in {_san_key(h) for h in result}:
            result.append(host)
    return result


def _san_key(host: str) -> str:
    """Normalise a host the way it will appear in a SAN, for comparisons."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.rstrip(".").lower()


def default_cert_dir(environ: Mapping[str, str], *, platform: str = sys.platform) -> Path:
    """Return where devserve keeps its CA and leaf by default.

    Args:
        environ: the process environment (a mapping, so tests can pass a dict).
        platform: ``sys.platform`` value.

    Returns:
        ``$DEVSERVE_CERT_DIR`` if set, else the per-user data directory plus ``devserve/certs``.
    """
    if environ.get("DEVSERVE_CERT_DIR"):
        return Path(environ["DEVSERVE_CERT_DIR"]).expanduser()
    home = Path(environ.get("HOME") or environ.get("USERPROFILE") or Path.home())
    if platform == "win32":
        base = Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "devserve" / "certs"


def fingerprint_sha256(cert_pem: bytes) -> str:
    """Return the SHA-256 fingerprint of a PEM certificate as ``AB:CD:...``.

    Raises:
        ValueError: ``cert_pem`` is not a PEM certificate.
    """
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []
