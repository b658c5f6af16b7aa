"""Serving a TLS listener: accept, sniff the first byte, then TLS or a redirect to HTTPS.

Theory of operation:

- `TLSAcceptor.start` watches the listening socket with ``loop.add_reader``; each wake-up
  accepts up to ``MAX_ACCEPTS_PER_WAKEUP`` connections with non-blocking ``accept()`` (several
  worker generations may share the socket: a lost race is just ``BlockingIOError``). When the
  process runs out of descriptors, accepting pauses for ``ACCEPT_RETRY_DELAY_S``.
- Each new connection waits for its first byte, bounded by ``head_timeout_s``; silence or
  end-of-file closes it. The byte is *peeked* (``MSG_PEEK``), so it stays in the kernel buffer.
- ``0x16`` starts a TLS handshake record: the socket goes to
  ``loop.connect_accepted_socket(protocol_factory, sock, ssl=...)``, with the handshake bounded
  by ``head_timeout_s`` too.
- Anything else is plain HTTP sent to the HTTPS port. `RedirectProtocol` reads the request
  head (at most ``MAX_REDIRECT_HEAD_BYTES``, within what is left of the same deadline) and
  answers ``307`` to ``https://<Host or the listener's host>:<port><target>`` with
  ``connection: close``, instead of the garbled TLS alert a browser would otherwise show.
- `TLSAcceptor.close` stops accepting and drops connections still being sniffed, redirected
  or handshaking. Established connections belong to whoever made ``protocol_factory`` (the
  `devserve.worker.Worker` drains them), as with ``asyncio.Server.close``.

`redirect_response` is the pure part: request head in, response bytes out.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Callable

TLS_HANDSHAKE_RECORD = 0x16
MAX_ACCEPTS_PER_WAKEUP = 64
ACCEPT_RETRY_DELAY_S = 1.0
MAX_REDIRECT_HEAD_BYTES = 8 * 1024
HTTPS_DEFAULT_PORT = 443

_REQUEST_LINE = re.compile(rb"([A-Za-z]+) (\S+) HTTP/\d\.\d")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def redirect_response(head: bytes, *, fallback_host: str, port: int | None) -> bytes:
    """Answer a plain-HTTP request head that reached a TLS port.

    Args:
        head: the request head, without the final blank line.
        fallback_host: host for the ``Location`` when the request has no usable ``Host``.
        port: the HTTPS port (None for a Unix socket: no port in the ``Location``).

    Returns:
        A complete ``307`` response with ``connection: close``, or ``400`` when the head is not
        an HTTP request.
    """
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return _response(400, "Bad Request", "This port speaks HTTPS.\n", ())
    target = match.group(2).decode("latin-1")
    if not _TARGET.fullmatch(target):
        target = "/"
    host = fallback_host
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"host":
            found = _HOST.fullmatch(value.strip().decode("latin-1"))
            if found is not None:
                host = found.group(1)
            break
    suffix = f":{port}" if port is not None and port != HTTPS_DEFAULT_PORT else ""
    location = f"https://{host}{suffix}{target}"
    body = f"This port speaks HTTPS: {location}\n"
    return _response(307, "Temporary Redirect", body, (("location", location),))


def _response(status: int, reason: str, body: str, headers: tuple[tuple[str, str], ...]) -> bytes:
    payload = body.encode()
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [
        "content-type: text/plain; charset=utf-8",
        f"content-length: {len(payload)}",
        "connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def listener_origin(sock: socket.socket) -> tuple[str, int | None]:
    """The host and port a listening socket answers on, as a ``Location`` would name them.

    Wildcard binds become ``localhost``; IPv6 addresses get brackets; a Unix socket has no port.
    """
    address = sock.getsockname()
    if not isinstance(address, tuple):
        return "localhost", None
    host, port = str(address[0]), int(address[1])
    if host in _WILDCARD_HOSTS:
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return host, port


class RedirectProtocol(asyncio.Protocol):
    """A plain-HTTP connection on a TLS port: read one request head, answer with a redirect.

    Args:
        fallback_host: host for the ``Location`` when the request has no usable ``Host``.
        port: the HTTPS port, or None.
        timeout_s: how long the whole head may take; then the connection closes.
        on_close: called once when the connection is gone.
    """

    def __init__(
        self,
        fallback_host: str,
        port: int | None,
        timeout_s: float,
        on_close: Callable[[RedirectProtocol], None],
    ) -> None:
        self.fallback_host = fallback_host
        self.port = port
        self.timeout_s = timeout_s
        self.on_close = on_close
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        self.timer = asyncio.get_running_loop().call_later(self.timeout_s, self.abort)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self.transport is None or self.transport.is_closing():
            return
        self.buffer += data
        normalized = self.buffer.replace(b"\r\n", b"\n")
        end = normalized.find(b"\n\n")
        if end < 0 and len(self.buffer) <= MAX_REDIRECT_HEAD_BYTES:
            return
        head = normalized[:end] if 0 <= end <= MAX_REDIRECT_HEAD_BYTES else b""  # too big: 400
        port = self.port
        self.transport.write(redirect_response(head, fallback_host=self.fallback_host, port=port))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self.timer is not None:
            self.timer.cancel()
        self.on_close(self)

    def abort(self) -> None:
        """Close now, without answering."""
        if self.transport is not None:
            self.transport.abort()


class TLSAcceptor:
    """Accept connections on a TLS listener, redirecting plain HTTP (see the module docstring).

    Args:
        sock: the bound, listening socket; never closed here (its owner closes it).
        protocol_factory: makes the protocol for each TLS connection.
        ssl_context: the server TLS context.
        head_timeout_s: bound on the first byte, the handshake and a redirected request head.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: ProtocolFactory,
        ssl_context: ssl.SSLContext,
        *,
        head_timeout_s: float,
    ) -> None:
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.ssl_context = ssl_context
        self.head_timeout_s = head_timeout_s
        self.fallback_host, self.port = listener_origin(sock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._is_serving = False
        self._is_paused = False
        self._retry: asyncio.TimerHandle | None = None
        self._sniffing: dict[socket.socket, tuple[asyncio.TimerHandle, float]] = {}
        self._not_handed_over: set[socket.socket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._redirects: set[RedirectProtocol] = set()

    def start(self) -> None:
        """Begin accepting on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._fd = self.sock.fileno()
        self.sock.setblocking(False)
        self._is_serving = True
        self._loop.add_reader(self._fd, self._on_acceptable)

    def pause(self) -> None:
        """Stop accepting for now; connections already accepted go on as before (`resume`)."""
        if self._is_serving and not self._is_paused and self._loop is not None:
            self._is_paused = True
            self._loop.remove_reader(self._fd)
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None

    def resume(self) -> None:
        """Accept again after `pause`."""
        if self._is_paused:
            self._is_paused = False
            self._resume()

    def close(self) -> None:
        """Stop accepting and drop connections not yet handed to ``protocol_factory``."""
        if not self._is_serving or self._loop is None:
            return
        self._is_serving = False
        if not self._is_paused:
            self._loop.remove_reader(self._fd)
        if self._retry is not None:
            self._retry.cancel()
        for conn in list(self._sniffing):
            self._stop_sniffing(conn)
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._not_handed_over):
            conn.close()
        self._not_handed_over.clear()
        for redirect in list(self._redirects):
            redirect.abort()

    # -- accepting ---------------------------------------------------------------------

    def _on_acceptable(self) -> None:
        assert self._loop is not None  # noqa: S101 - set in start()
        for _ in range(MAX_ACCEPTS_PER_WAKEUP):
            try:
                conn, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError:  # EMFILE, ENFILE, ENOBUFS...: let connections finish, then retry
                self._loop.remove_reader(self._fd)
                self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY_S, self._resume)
                return
            conn.setblocking(False)
            deadline = self._loop.time() + self.head_timeout_s
            timer = self._loop.call_later(self.head_timeout_s, self._on_silent, conn)
            self._sniffing[conn] = (timer, deadline)
            self._loop.add_reader(conn.fileno(), self._on_first_byte, conn)

    def _resume(self) -> None:
        self._retry = None
        if self._is_serving and not self._is_paused and self._loop is not None:
            self._loop.add_reader(self._fd, self._on_acceptable)

    # -- sniffing ----------------------------------------------------------------------

    def _stop_sniffing(self, conn: socket.socket) -> float:
        """Stop watching `conn`; return its head deadline (loop time)."""
        timer, deadline = self._sniffing.pop(conn)
        timer.cancel()
        if self._loop is not None:
            self._loop.remove_reader(conn.fileno())
        return deadline

    def _on_silent(self, conn: socket.socket) -> None:
        if conn in self._sniffing:
            self._stop_sniffing(conn)
            conn.close()

    def _on_first_byte(self, conn: socket.socket) -> None:
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        deadline = self._stop_sniffing(conn)
        if not first:
            conn.close()
            return
        assert self._loop is not None  # noqa: S101 - set in start()
        self._not_handed_over.add(conn)
        if first[0] == TLS_HANDSHAKE_RECORD:
            coro = self._start_tls(conn)
        else:
            coro = self._start_redirect(conn, max(0.01, deadline - self._loop.time()))
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_tls(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._not_handed_over.discard(conn)
        try:
            await loop.connect_accepted_socket(
                self.protocol_factory,
                conn,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.head_timeout_s,
            )
        except (OSError, asyncio.TimeoutError):
            return  # a failed or timed-out handshake: the transport closed the socket

    async def _start_redirect(self, conn: socket.socket, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._not_handed_over.discard(conn)

        def make() -> RedirectProtocol:
            redirect = RedirectProtocol(
                self.fallback_host, self.port, timeout_s, self._redirects.discard
            )
            self._redirects.add(redirect)
            return redirect

        try:
            await loop.connect_accepted_socket(make, conn)
        except OSError:
            return


__all__ = ["RedirectProtocol", "TLSAcceptor", "listener_origin", "redirect_response"]
