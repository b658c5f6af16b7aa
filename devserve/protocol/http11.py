"""Server side of one HTTP/1.1 connection, sans I/O, on top of h11.

h11 does the parsing, framing and keep-alive bookkeeping. This module adds what a
development server must refuse even though h11 is lenient about it, and turns the
result into a small vocabulary the asyncio shell (`devserve.server`) acts on:

* Head checks h11 does not make: bare LF line endings, obsolete line folding, a request
  carrying both ``Content-Length`` and ``Transfer-Encoding`` (a request-smuggling shape,
  RFC 9112 §6.1), and too many header lines. Each becomes `ProtocolFailed` with the status
  to answer and the connection is closed after that answer.
* Responses: `HTTP11Connection.response_head` / `body` / `end` return bytes for the shell
  to write, adding ``date``/``server`` and dropping the body of responses to ``HEAD``.

End of input is ``receive_data(b"")``, as in h11.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import h11

_CRLF2 = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ProtocolFailed:
    """The peer sent something we refuse; answer `status` and close."""

    status: int
    reason: str


def check_head(buffer: bytes, max_headers: int, max_head_bytes: int) -> ProtocolFailed | None:
    """Reject head shapes h11 accepts but a strict server must not.

    h11 caps only *incomplete* heads, so a complete oversized head arriving in one read
    is caught here as well.

    Args:
        buffer: bytes received for the next request, head first.
        max_headers: most header lines allowed.
        max_head_bytes: largest head allowed, request line included.

    Returns:
        A failure, or None if the head is acceptable or not complete yet.
    """
    end = buffer.find(_CRLF2)
    head = buffer if end < 0 else buffer[:end]
    if len(head) > max_head_bytes:
        line_end = head.find(b"\n")
        if line_end < 0 or line_end > max_head_bytes:
            return ProtocolFailed(414, "request line too long")
        return ProtocolFailed(431, f"request head larger than {max_head_bytes} bytes")
    lf = head.count(b"\n")
    failure = None
    if lf != head.count(b"\r\n"):
        failure = ProtocolFailed(400, "bare LF in request head")
    elif end >= 0 and (b"\n " in head or b"\n\t" in head):
        failure = ProtocolFailed(400, "obsolete line folding in request head")
    elif end >= 0 and lf > max_headers:
        failure = ProtocolFailed(431, f"more than {max_headers} header lines")
    return failure


def check_framing(headers: Sequence[tuple[bytes, bytes]]) -> ProtocolFailed | None:
    """Refuse requests whose body framing is ambiguous.

    Args:
        headers: lower-cased request headers as h11 gives them.

    Returns:
        A failure for Content-Length together with Transfer-Encoding, else None.
    """
    has_length = has_chunked = False
    for name, _ in headers:
        if name == b"content-length":
            has_length = True
        elif name == b"transfer-encoding":
            has_chunked = True
    if has_length and has_chunked:
        return ProtocolFailed(400, "both Content-Length and Transfer-Encoding")
    return None


class ResponseHeaders:
    """Builds the header list of a response from an ASGI ``http.response.start``.

    Holds the per-server defaults (``--header``, ``server``, ``date``) so building is one
    pass over the application's headers.
    """

    __slots__ = ("_defaults", "_has_server")

    def __init__(self, defaults: Iterable[tuple[bytes, bytes]], *, server_header: bool) -> None:
        self._defaults = [(k.lower(), v) for k, v in defaults]
        if server_header and all(name != b"server" for name, _ in self._defaults):
            self._defaults.append((b"server", b"devserve"))
        self._has_server = server_header

    def build(
        self, app_headers: Iterable[tuple[bytes, bytes]], date: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        """Return the app's headers plus any default the app did not set itself.

        Args:
            app_headers: headers from the application (any case).
            date: the current ``date`` header value, or None to send none.
        """
        out = [(bytes(k), bytes(v)) for k, v in app_headers]
        present = {k.lower() for k, _ in out}
        out.extend(item for item in self._defaults if item[0] not in present)
        if date is not None and b"date" not in present:
            out.append((b"date", date))
        return out


def build_error_response(
    conn: h11.Connection, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> bytes:
    """Serialise a complete small error response that closes the connection.

    Falls back to raw bytes when h11 refuses (the peer's state is already broken, e.g.
    after a parse error), so a 4xx is always written.

    Args:
        conn: the connection's h11 state machine.
        status: the status code.
        body: the body to send (plain text).
        extra: further headers.
    """
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    ]
    try:
        data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
        data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError:
        reason = _REASONS.get(status, b"Error")
        lines = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        return b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, reason, lines, body)
    return data


_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    503: b"Service Unavailable",
}
