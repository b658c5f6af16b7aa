"""Serving user TLS files: check ``--ssl-certfile``/``--ssl-keyfile`` and build the SSLContext.

``load_user_files`` / ``make_server_ssl_context`` turn every failure into one ``CertificateError``
line naming the file. This module needs only ``ssl`` and cryptography's certificate and key
loading, so a worker serving TLS never imports the certificate-building code.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from devserve.errors import CertificateError

Password = str | bytes | None
StrPath = str | os.PathLike[str]


def load_user_files(
    certfile: StrPath,
    keyfile: StrPath | None = None,
    password: Password = None,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Check a user-supplied certificate and key (``--ssl-certfile``/``--ssl-keyfile``).

    Args:
        certfile: PEM certificate chain, leaf first.
        keyfile: PEM private key; None when the key is inside ``certfile``.
        password: the key's password, if it is encrypted.
        now: the current time (UTC), for tests.

    Raises:
        CertificateError: one line naming the file that is unreadable, not PEM, expired, not yet
            valid, or whose key does not match the certificate.
    """
    now = now if now is not None else dt.datetime.now(dt.timezone.utc)
    try:
        cert = x509.load_pem_x509_certificates(_read(Path(certfile), "certificate file"))[0]
    except ValueError:
        raise CertificateError(f"{certfile} is not a PEM certificate") from None
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= now < end:
        problem = f"expired on {end:%Y-%m-%d}" if now >= end else f"not valid before {start:%F}"
        raise CertificateError(f"certificate {certfile} is {problem}")
    key_path = Path(keyfile if keyfile is not None else certfile)
    secret = password.encode() if isinstance(password, str) else password
    try:
        key = load_pem_private_key(_read(key_path, "key file"), password=secret)
    except TypeError:
        raise CertificateError(f"key {key_path} is encrypted and needs a password") from None
    except ValueError:
        raise CertificateError(
            f"{key_path} is not a PEM private key (or the password is wrong)"
        ) from None
    if not _is_pair(cert, key):
        raise CertificateError(f"private key {key_path} does not match certificate {certfile}")


def make_server_ssl_context(
    certfile: StrPath,
    keyfile: StrPath | None = None,
    password: Password = None,
    ca_certs: StrPath | None = None,
) -> ssl.SSLContext:
    """Build the server-side TLS context (TLS 1.2+, ALPN ``http/1.1``).

    Args:
        certfile: PEM certificate chain, leaf first.
        keyfile: PEM private key; None when the key is inside ``certfile``.
        password: the key's password, if it is encrypted.
        ca_certs: CA bundle for optional client certificates; None for no client certificates.

    Returns:
        A context ready for ``loop.create_server(ssl=...)``.

    Raises:
        CertificateError: one line naming the file that is unusable.
    """
    load_user_files(certfile, keyfile, password)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile, keyfile, password)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"cannot use certificate {certfile}: {exc}") from None
    if ca_certs is not None:
        try:
            context.load_verify_locations(cafile=ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(f"cannot use CA bundle {ca_certs}: {exc}") from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _is_pair(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
