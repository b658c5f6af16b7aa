"""The endpoints a run serves on: bind the listening sockets once, and ready their TLS files.

Used by the single-process server and by the supervisor, which keeps the sockets open for
its whole life and hands them to each worker generation. Failures a user can cause
(port in use, permission denied, bad host) raise `BindError` with one clear sentence.

`bind_listeners` binds what a `Config` asks for: one listener, or with ``--https-port`` a
plain one on ``--port`` and a TLS one beside it. `prepare_tls` finds the certificate and key
TLS listeners serve (``--ssl-certfile`` or, with ``--https``, the local CA's leaf, created
or reused here once, so workers only load files) and reports what the user needs to know
about the CA. The certificate modules are imported only when TLS is asked for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devserve.config import Config
from devserve.errors import CertificateError, DevserveError

if TYPE_CHECKING:
    from devserve.events import Event

_PRIVILEGED_PORT = 1024


class BindError(DevserveError):
    """A listening socket could not be created."""


@dataclass(frozen=True, slots=True)
class Listener:
    """A bound listening socket, the URL it answers on, and whether it speaks TLS."""

    sock: socket.socket
    url: str
    is_tls: bool = False


def bind(
    *, host: str, port: int, uds: str | None, fd: int | None, backlog: int, scheme: str
) -> Listener:
    """Create, bind and listen.

    Args:
        host: address or name for TCP.
        port: TCP port (0 picks a free one; read back the real one from the URL).
        uds: Unix socket path, instead of TCP.
        fd: an already-bound socket's file descriptor, instead of either.
        backlog: listen backlog.
        scheme: "http" or "https", for the URL.

    Raises:
        BindError: with the reason in one line.
    """
    if fd is not None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            msg = f"--fd {fd} is not a usable socket: {exc.strerror or exc}"
            raise BindError(msg) from None
        sock.set_inheritable(True)
        return Listener(sock, _url_of(sock, scheme) or f"{scheme}://fd:{fd}", scheme == "https")
    if uds is not None:
        return _bind_unix(uds, backlog, scheme)
    return _bind_tcp(host, port, backlog, scheme)


def _bind_tcp(host: str, port: int, backlog: int, scheme: str) -> Listener:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        msg = f"cannot bind to host {host!r}: {exc.strerror}"
        raise BindError(msg) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(_bind_message(exc, host, port)) from None
    sock.set_inheritable(True)
    return Listener(sock, _url_of(sock, scheme) or f"{scheme}://{host}:{port}", scheme == "https")


def _url_of(sock: socket.socket, scheme: str) -> str | None:
    """The URL a bound socket answers on, read back from the socket (None if unknown)."""
    try:
        address = sock.getsockname()
    except OSError:
        return None
    if sock.family == socket.AF_UNIX:
        return f"{scheme}+unix://{address}" if isinstance(address, str) and address else None
    bound_host, bound_port = address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return f"{scheme}://{shown}:{bound_port}"


def _bind_message(exc: OSError, host: str, port: int) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use (another server running? try --port)"
    if exc.errno == errno.EACCES and 0 < port < _PRIVILEGED_PORT:
        return f"permission denied binding {where}: ports below 1024 need privileges"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot bind {where}: {host} is not an address of this machine"
    return f"cannot bind {where}: {exc.strerror or exc}"


def _bind_unix(path: str, backlog: int, scheme: str) -> Listener:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)  # noqa: S103 - a dev server's socket is for the local user's tools
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        msg = f"cannot bind Unix socket {path}: {exc.strerror or exc}"
        raise BindError(msg) from None
    sock.set_inheritable(True)
    return Listener(sock, f"{scheme}+unix://{path}", scheme == "https")


def bind_listeners(config: Config, *, is_tls: bool) -> list[Listener]:
    """Bind every listener `config` asks for.

    Args:
        config: validated configuration (host, port, uds, fd, backlog, https_port).
        is_tls: whether TLS files are ready (see `prepare_tls`).

    Returns:
        One listener (TLS when `is_tls`), or with ``--https-port`` a plain listener on
        ``--port``/``--uds``/``--fd`` followed by a TLS one on ``host:https_port``.

    Raises:
        BindError: with the reason in one line; nothing stays bound.
    """
    host, backlog = config.host, config.backlog
    if config.https_port is None or not is_tls:
        scheme = "https" if is_tls else "http"
        return [
            bind(
                host=host,
                port=config.port,
                uds=config.uds,
                fd=config.fd,
                backlog=backlog,
                scheme=scheme,
            )
        ]
    plain = bind(
        host=host, port=config.port, uds=config.uds, fd=config.fd, backlog=backlog, scheme="http"
    )
    try:
        secure = bind(
            host=host, port=config.https_port, uds=None, fd=None, backlog=backlog, scheme="https"
        )
    except BindError:
        plain.sock.close()
        raise
    return [plain, secure]


Report = Callable[["Event"], None]


def prepare_tls(config: Config, report: Report) -> tuple[str, str] | None:
    """Return the (certfile, keyfile) TLS listeners serve, or None for plain HTTP.

    ``--ssl-certfile``: the user's files, checked. ``--https``: the local CA and a leaf for
    ``localhost``, the loopback addresses, this machine's name and ``--host``, created in
    ``config.cert_dir`` on first use and reused afterwards; the CA's path, fingerprint and
    whether it looks trusted are reported as log lines.

    Args:
        config: validated configuration.
        report: where the log lines go.

    Raises:
        CertificateError: one line naming the file or directory that is unusable.
    """
    if config.ssl_certfile is not None:
        from devserve.tls import load_user_files  # noqa: PLC0415 - TLS users only

        keyfile = config.ssl_keyfile or config.ssl_certfile
        load_user_files(config.ssl_certfile, keyfile, config.ssl_keyfile_password)
        return config.ssl_certfile, keyfile
    if not config.https or config.cert_dir is None:
        return None
    from devserve import certs, certstore, trust  # noqa: PLC0415 - HTTPS users only
    from devserve.events import LogLine  # noqa: PLC0415 - keeps --reload's first steps light

    cert_dir = Path(config.cert_dir)
    try:
        paths = certstore.ensure_certificates(cert_dir, certs.default_hosts([config.host]))
        ca = paths.ca_cert
        fingerprint = certs.fingerprint_sha256(ca.read_bytes())
        is_trusted = trust.is_ca_trusted(ca)
    except OSError as exc:
        msg = f"cannot use certificate directory {cert_dir}: {exc.strerror or exc}"
        raise CertificateError(msg) from None
    if paths.created_ca:
        report(LogLine("info", f"created a local certificate authority: {ca}"))
    report(LogLine("info", f"HTTPS certificate authority {ca} (SHA-256 {fingerprint})"))
    if is_trusted:
        report(LogLine("info", "the CA is trusted by this system"))
    else:
        report(
            LogLine(
                "warning",
                f"the CA is not trusted yet: run 'devserve cert trust' to trust it "
                f"(or pass --cacert {ca} / verify={ca})",
            )
        )
    return str(paths.leaf_cert), str(paths.leaf_key)
