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

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import h11

_CRLF2 = b"\r\n\r\n"
#: Reason phrases for status lines, by status code: the standard library's table with
#: RFC 9110's names where it renamed one (older Pythons still say "Request-URI Too Long").
REASONS = {s.value: s.phrase.encode() for s in HTTPStatus} | {
    413: b"Content Too Large",
    414: b"URI Too Long",
    416: b"Range Not Satisfiable",
    422: b"Unprocessable Content",
}


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
    stop = len(buffer) if end < 0 else end  # the head is buffer[:stop]; searched in place
    if stop > max_head_bytes:
        line_end = buffer.find(b"\n", 0, stop)
        if line_end < 0 or line_end > max_head_bytes:
            return ProtocolFailed(414, "request line too long")
        return ProtocolFailed(431, f"request head larger than {max_head_bytes} bytes")
    lf = buffer.count(b"\n", 0, stop)
    failure = None
    if lf != buffer.count(b"\r\n", 0, stop):
        failure = ProtocolFailed(400, "bare LF in request head")
    elif end >= 0 and (buffer.find(b"\n ", 0, stop) >= 0 or buffer.find(b"\n\t", 0, stop) >= 0):
        failure = ProtocolFailed(400, "obsolete line folding in request head")
    elif end >= 0 and lf > max_headers:
        failure = ProtocolFailed(431, f"more than {max_headers} header lines")
    return failure


def header_pairs(headers: h11._headers.Headers) -> list[tuple[bytes, bytes]]:
    """A request's headers as ``(lower-cased name, value)`` pairs, the ASGI form.

    h11's `Headers` is a `Sequence` whose iteration runs in Python, one ``__getitem__`` per
    header; reading the triples it keeps is three times as fast. Falls back to iterating
    if a future h11 stores them differently.
    """
    full = getattr(headers, "_full_items", None)
    if not isinstance(full, list):
        return list(headers)
    return [(name, value) for _, name, value in full]


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
    conn: h11.Connection,
    status: int,
    body: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> bytes:
    """Serialise a complete small error response that closes the connection.

    Falls back to raw bytes when h11 refuses (the peer's state is already broken, e.g.
    after a parse error), so a 4xx is always written.

    Args:
        conn: the connection's h11 state machine.
        status: the status code.
        body: the body to send (plain text unless `content_type` says otherwise).
        extra: further headers.
        content_type: the body's media type.
    """
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    ]
    try:
        response = h11.Response(
            status_code=status, headers=headers, reason=REASONS.get(status, b"")
        )
        data = conn.send(response) or b""
        data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError:
        reason = REASONS.get(status, b"Error")
        lines = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        return b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, reason, lines, body)
    return data


class ResponseError(Exception):
    """The application's response breaks HTTP framing (bad header, wrong body length)."""


_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_NO_BODY_STATUSES = frozenset({204, 304})
_CR, _LF, _NUL = 13, 10, 0  # ord("\r"), ord("\n"), ord("\0")


class ResponseWriter:
    """Serialise one response, choosing its framing once from the head.

    h11 parses requests; responses are written here because h11's general-purpose send
    path (event objects, validation, state machine) was a quarter of the CPU time per
    request. The rules are RFC 9112's:

    * a ``content-length`` from the app is enforced: more body bytes than announced, or
      fewer at the end, raise `ResponseError` (the shell then closes the connection);
    * otherwise HTTP/1.1 gets chunked encoding, and HTTP/1.0 a close-delimited body;
    * HEAD, 1xx, 204 and 304 responses carry no body bytes;
    * the connection closes after the response when the request asked for it, the
      response says so, the body is close-delimited, or the server is draining.

    Header names must be tokens and values may not hold CR, LF or NUL, so an app cannot
    inject a header or a second response.

    Args:
        is_head: the request was HEAD.
        is_http10: the request was HTTP/1.0.
        is_close_requested: the request (or the server) wants the connection closed.
    """

    __slots__ = ("is_chunked", "is_head", "is_http10", "must_close", "remaining", "sends_body")

    def __init__(self, *, is_head: bool, is_http10: bool, is_close_requested: bool) -> None:
        self.is_head = is_head
        self.is_http10 = is_http10
        self.must_close = is_close_requested or is_http10
        self.is_chunked = False
        self.remaining: int | None = None
        self.sends_body = not is_head

    def head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body_len: int | None
    ) -> bytes:
        """The status line and headers.

        Args:
            status: the status code (100-999).
            reason: the reason phrase.
            headers: every header to send (the shell added its defaults).
            body_len: the whole body's length when known now (single-chunk response).

        Raises:
            ResponseError: an invalid status or header.
        """
        if not 100 <= status <= 999:  # noqa: PLR2004 - the HTTP status range
            msg = f"invalid status code {status}"
            raise ResponseError(msg)
        if status < 200 or status in _NO_BODY_STATUSES:  # noqa: PLR2004
            self.sends_body = False
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        has_length = has_connection = False
        for name, value in headers:
            # Byte values as ints: ``13 in value`` is a memchr, ``b"\r" in value`` a substring
            # search several times as dear, and this runs for every header of every response.
            if _CR in value or _LF in value or _NUL in value or _TOKEN.fullmatch(name) is None:
                msg = f"invalid response header {name!r}: {value!r}"
                raise ResponseError(msg)
            lowered = name.lower()
            if lowered == b"content-length":
                has_length = True
                self.remaining = _content_length(value)
            elif lowered == b"transfer-encoding":
                continue  # framing is ours to choose
            elif lowered == b"connection":
                has_connection = True
                if b"close" in value.lower():
                    self.must_close = True
            lines.append(b"%s: %s\r\n" % (name, value))
        if not has_length and self.sends_body:
            lines.append(self._framing(body_len))
        if self.must_close and not has_connection:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _framing(self, body_len: int | None) -> bytes:
        """The framing header when the app gave no content-length."""
        if body_len is not None:
            self.remaining = body_len
            return b"content-length: %d\r\n" % body_len
        if self.is_http10:
            self.must_close = True
            return b""
        self.is_chunked = True
        return b"transfer-encoding: chunked\r\n"

    def body(self, data: bytes, *, more: bool) -> bytes:
        """Frame one body chunk (and the end of the body when ``more`` is false).

        Raises:
            ResponseError: the body does not match the announced content-length.
        """
        if not self.sends_body:
            return b""
        if self.remaining is not None:
            self.remaining -= len(data)
            if self.remaining < 0 or (not more and self.remaining > 0):
                msg = "response body does not match its content-length"
                raise ResponseError(msg)
        if not self.is_chunked:
            return data
        out = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        return out + b"0\r\n\r\n" if not more else out


def _content_length(value: bytes) -> int:
    if not value.isdigit():
        msg = f"invalid content-length {value!r}"
        raise ResponseError(msg)
    return int(value)


def wants_close(http_version: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a request asks to close the connection after its response."""
    for name, value in headers:
        if name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"close" in tokens:
                return True
            if http_version == b"1.0" and b"keep-alive" in tokens:
                return False
    return http_version == b"1.0"
