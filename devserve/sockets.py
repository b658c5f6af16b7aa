"""Bind the listening sockets (TCP, Unix domain or an inherited fd), once.

Used by the single-process server and by the supervisor, which keeps the sockets open for
its whole life and hands them to each worker generation. Failures a user can cause
(port in use, permission denied, bad host) raise `BindError` with one clear sentence.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass

from devserve.errors import DevserveError

_PRIVILEGED_PORT = 1024


class BindError(DevserveError):
    """A listening socket could not be created."""


@dataclass(frozen=True, slots=True)
class Listener:
    """A bound listening socket and the URL it answers on."""

    sock: socket.socket
    url: str


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
        return Listener(sock, f"{scheme}://fd:{fd}")
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
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return Listener(sock, f"{scheme}://{shown}:{bound_port}")


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
    return Listener(sock, f"{scheme}+unix://{path}")
