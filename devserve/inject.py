r"""Where the live-reload script goes into an HTML response, and when it must not. PURE.

Only complete, uncompressed ``text/html`` documents are touched:

* the request looks like a page load: ``Accept`` names ``text/html`` and ``Sec-Fetch-Dest``
  is absent, ``document`` or ``iframe`` (so ``fetch()``\ed fragments stay as they are);
* the response is ``text/html`` with no ``Content-Encoding`` (or ``identity``), a status
  with a body (not 1xx, 204, 206, 304), and no trailers;
* the whole body is known: one ``http.response.body`` message, or a ``Content-Length`` of
  at most `MAX_BUFFERED` bytes that is buffered. A streamed body of unknown length is left
  alone (it may never end);
* the body has a ``</body>`` (or ``</html>``) tag: the script goes right before the last one.

`InjectingSend` applies this to an app's ``send`` calls (it only awaits the ``send`` it
wraps). The ``Content-Length`` is rewritten; ``ETag`` and ``Last-Modified`` are dropped, because the
body now depends on the running worker and a ``304`` would bring back an older page.
"""

from __future__ import annotations

from collections.abc import Iterable

from devserve.asgi import Message, Send

#: The reserved URL prefix of devserve's own endpoints (only while live reload is on).
PREFIX = "/__devserve/"
MAX_BUFFERED = 4 * 1024 * 1024
_NO_BODY = frozenset({204, 206, 304})
_DROPPED = frozenset({b"content-length", b"etag", b"last-modified"})
_PAGE_DESTS = frozenset({None, b"document", b"iframe"})


def wants_page(accept: bytes, fetch_dest: bytes | None) -> bool:
    """Whether a request's ``Accept`` and ``Sec-Fetch-Dest`` look like a page load."""
    return b"text/html" in accept and fetch_dest in _PAGE_DESTS


def injectable_length(status: int, headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """-1 when a response may be injected with any length, its Content-Length, or None: never.

    Header names are as the app sent them (any case).
    """
    if status < 200 or status in _NO_BODY:  # noqa: PLR2004 - informational responses
        return None
    is_html = False
    length = -1
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"content-type":
            is_html = value.split(b";", 1)[0].strip().lower() == b"text/html"
        elif name == b"content-encoding" and value.strip().lower() != b"identity":
            return None
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
        elif name == b"trailer":
            return None
    if not is_html or length > MAX_BUFFERED:
        return None
    return length


def inject(body: bytes, tag: bytes) -> bytes | None:
    """`body` with `tag` before its last ``</body>`` (or ``</html>``); None when it has neither."""
    lowered = body.lower()
    at = lowered.rfind(b"</body")
    if at < 0:
        at = lowered.rfind(b"</html")
    if at < 0:
        return None
    return body[:at] + tag + body[at:]


def fix_headers(headers: Iterable[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    """The response headers for an injected body of `length` bytes."""
    fixed = [(n, v) for n, v in headers if n.lower() not in _DROPPED]
    fixed.append((b"content-length", str(length).encode()))
    return fixed


class InjectingSend:
    """A ``send`` that holds back a complete HTML response to put the script tag in."""

    __slots__ = ("buffer", "downstream", "is_passing", "length", "start", "tag")

    def __init__(self, downstream: Send, tag: bytes) -> None:
        self.downstream = downstream
        self.tag = tag
        self.start: Message | None = None
        self.length = -1
        self.buffer = bytearray()
        self.is_passing = False

    async def send(self, message: Message) -> None:
        """The app's ``send``: hold back, inject, or pass through."""
        downstream = self.downstream
        if self.is_passing:
            await downstream(message)
            return
        kind = message["type"]
        if kind == "http.response.start" and self.start is None:
            length = injectable_length(message["status"], message.get("headers", ()))
            if length is None or message.get("trailers"):
                self.is_passing = True
                await downstream(message)
                return
            self.start, self.length = message, length
            return
        if kind != "http.response.body" or self.start is None:
            await downstream(message)
            return
        self.buffer += message.get("body", b"")
        more = bool(message.get("more_body", False))
        start = self.start
        if more and 0 <= len(self.buffer) <= self.length:
            return  # a known length: keep buffering (the last message may be empty)
        if more:
            # Streaming (unknown length), or more bytes than announced: leave it alone.
            self.is_passing = True
            await downstream(start)
            await downstream(
                {"type": "http.response.body", "body": bytes(self.buffer), "more_body": True}
            )
            return
        body = bytes(self.buffer)
        injected = inject(body, self.tag)
        if injected is not None:
            start = {**start, "headers": fix_headers(start.get("headers", ()), len(injected))}
            body = injected
        await downstream(start)
        await downstream({"type": "http.response.body", "body": body})
