"""Tests for devserve.protocol.http11: head checks, framing, response headers, error bytes."""

from __future__ import annotations

from typing import Any

import h11
import pytest

from devserve.protocol.http11 import (
    ProtocolFailed,
    ResponseHeaders,
    build_error_response,
    check_framing,
    check_head,
    header_pairs,
)

MAX_HEADERS = 100
MAX_HEAD = 16 * 1024


def _head(*headers: str, target: str = "/") -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: example", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _check(buffer: bytes, max_headers: int = MAX_HEADERS, max_head: int = MAX_HEAD) -> int | None:
    failed = check_head(buffer, max_headers, max_head)
    return None if failed is None else failed.status


# -- check_head -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "buffer",
    [
        _head(),
        _head("Accept: */*", "X-A: 1"),
        _head() + b"body bytes\n with LF after the head",
        _head() + b"GET / HTTP/1.1\n",
    ],
)
def test_valid_head_returns_none(buffer: bytes) -> None:
    assert check_head(buffer, MAX_HEADERS, MAX_HEAD) is None


@pytest.mark.parametrize(
    "buffer",
    [b"", b"GET", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n", b"GET / HTTP/1.1\r\n\r"],
)
def test_incomplete_head_returns_none(buffer: bytes) -> None:
    assert check_head(buffer, MAX_HEADERS, MAX_HEAD) is None


@pytest.mark.parametrize(
    "buffer",
    [
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\n",
    ],
)
def test_bare_lf_is_400(buffer: bytes) -> None:
    failed = check_head(buffer, MAX_HEADERS, MAX_HEAD)
    assert failed == ProtocolFailed(400, "bare LF in request head")


@pytest.mark.parametrize("fold", [b" ", b"\t"])
def test_obs_fold_is_400(fold: bytes) -> None:
    buffer = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n" + fold + b"continued\r\n\r\n"
    failed = check_head(buffer, MAX_HEADERS, MAX_HEAD)
    assert failed == ProtocolFailed(400, "obsolete line folding in request head")


def test_header_count_limit() -> None:
    at_limit = _head(*[f"X-{i}: v" for i in range(4)])  # Host + 4 = 5 header lines
    assert check_head(at_limit, 5, MAX_HEAD) is None
    over = _head(*[f"X-{i}: v" for i in range(5)])
    assert check_head(over, 5, MAX_HEAD) == ProtocolFailed(431, "more than 5 header lines")


def test_header_count_not_checked_until_head_is_complete() -> None:
    partial = _head(*[f"X-{i}: v" for i in range(10)])[:-2]
    assert check_head(partial, 5, MAX_HEAD) is None


def test_long_request_line_is_414() -> None:
    buffer = _head(target="/" + "a" * 2000)
    failed = check_head(buffer, MAX_HEADERS, 1024)
    assert failed == ProtocolFailed(414, "request line too long")


def test_long_incomplete_request_line_is_414() -> None:
    buffer = b"GET /" + b"a" * 2000
    assert _check(buffer, max_head=1024) == 414


def test_large_headers_are_431() -> None:
    buffer = _head("X-Big: " + "b" * 2000)
    failed = check_head(buffer, MAX_HEADERS, 1024)
    assert failed == ProtocolFailed(431, "request head larger than 1024 bytes")


def test_large_incomplete_headers_are_431() -> None:
    buffer = b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 2000
    assert _check(buffer, max_head=1024) == 431


def test_size_cap_counts_the_head_only() -> None:
    head = _head()
    assert _check(head + b"x" * 5000, max_head=len(head)) is None
    assert _check(head, max_head=len(head) - 4) is None
    assert _check(head, max_head=len(head) - 5) == 431


# -- header_pairs ----------------------------------------------------------------------


def _parsed(head: bytes) -> h11.Request:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head)
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    return event


def test_header_pairs_are_lowercased_names_with_raw_values_in_order() -> None:
    event = _parsed(_head("X-Mixed-Case: Keep This", "accept: */*", "X-Mixed-Case: again"))
    assert header_pairs(event.headers) == [
        (b"host", b"example"),
        (b"x-mixed-case", b"Keep This"),
        (b"accept", b"*/*"),
        (b"x-mixed-case", b"again"),
    ]
    assert header_pairs(event.headers) == list(event.headers)  # what h11's own iteration gives


def test_header_pairs_fall_back_to_iterating() -> None:
    pairs = [(b"host", b"example"), (b"accept", b"*/*")]
    assert header_pairs(pairs) == pairs  # type: ignore[arg-type]  # no _full_items


# -- check_framing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"host", b"x")],
        [(b"content-length", b"3")],
        [(b"transfer-encoding", b"chunked")],
    ],
)
def test_framing_ok(headers: list[tuple[bytes, bytes]]) -> None:
    assert check_framing(headers) is None


def test_content_length_and_transfer_encoding_is_400() -> None:
    headers = [(b"transfer-encoding", b"chunked"), (b"host", b"x"), (b"content-length", b"3")]
    assert check_framing(headers) == ProtocolFailed(
        400, "both Content-Length and Transfer-Encoding"
    )


# -- ResponseHeaders ---------------------------------------------------------------------

DATE = b"Mon, 01 Jan 2024 00:00:00 GMT"


def test_defaults_are_added() -> None:
    builder = ResponseHeaders([(b"X-Default", b"1")], server_header=True)
    out = builder.build([(b"content-type", b"text/plain")], DATE)
    assert out == [
        (b"content-type", b"text/plain"),
        (b"x-default", b"1"),
        (b"server", b"devserve"),
        (b"date", DATE),
    ]


def test_app_headers_win_case_insensitively() -> None:
    builder = ResponseHeaders([(b"X-Default", b"1")], server_header=True)
    app = [(b"X-DEFAULT", b"app"), (b"Server", b"mine"), (b"Date", b"app-date")]
    assert builder.build(app, DATE) == app


def test_date_omitted_when_none() -> None:
    builder = ResponseHeaders([], server_header=False)
    assert builder.build([(b"a", b"1")], None) == [(b"a", b"1")]


def test_server_header_off() -> None:
    builder = ResponseHeaders([], server_header=False)
    assert builder.build([], DATE) == [(b"date", DATE)]


def test_build_accepts_bytearray_and_iterators() -> None:
    builder = ResponseHeaders(iter([(b"x-a", b"1")]), server_header=False)
    app_headers: list[tuple[Any, Any]] = [(bytearray(b"x-b"), bytearray(b"2"))]
    out = builder.build(iter(app_headers), None)
    assert out == [(b"x-b", b"2"), (b"x-a", b"1")]
    assert all(type(k) is bytes and type(v) is bytes for k, v in out)


def test_build_is_repeatable() -> None:
    builder = ResponseHeaders([(b"x-a", b"1")], server_header=True)
    first = builder.build([], DATE)
    assert builder.build([], DATE) == first


def test_default_server_header_replaces_builtin() -> None:
    builder = ResponseHeaders([(b"Server", b"custom")], server_header=True)
    assert builder.build([], None) == [(b"server", b"custom")]


# -- build_error_response ----------------------------------------------------------------


def _parse(data: bytes) -> tuple[h11.Response, bytes]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "example")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    response = client.next_event()
    assert isinstance(response, h11.Response)
    body = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
            continue
        assert isinstance(event, h11.EndOfMessage)
        break
    assert client.their_state is h11.MUST_CLOSE
    return response, body


def _headers(response: h11.Response) -> dict[bytes, bytes]:
    return dict(response.headers)


@pytest.mark.parametrize("status", [400, 408, 414, 431, 500, 503])
def test_error_response_from_idle_connection(status: int) -> None:
    conn = h11.Connection(h11.SERVER)
    response, body = _parse(build_error_response(conn, status, b"went wrong\n"))
    assert response.status_code == status
    headers = _headers(response)
    assert headers[b"content-length"] == b"11"
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert body == b"went wrong\n"


def test_error_response_after_remote_error() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"NOT HTTP AT ALL\r\n\r\n")
    with pytest.raises(h11.RemoteProtocolError):
        conn.next_event()
    response, body = _parse(build_error_response(conn, 400, b"bad"))
    assert response.status_code == 400
    assert body == b"bad"


def test_error_response_extra_headers() -> None:
    conn = h11.Connection(h11.SERVER)
    data = build_error_response(conn, 503, b"busy", [(b"retry-after", b"1")])
    response, _ = _parse(data)
    assert _headers(response)[b"retry-after"] == b"1"


def _broken_server() -> h11.Connection:
    conn = h11.Connection(h11.SERVER)
    with pytest.raises(h11.LocalProtocolError):
        conn.send(h11.Data(data=b"x"))
    assert conn.our_state is h11.ERROR
    return conn


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, b"Bad Request"), (414, b"URI Too Long"), (431, b"Request Header Fields Too Large")],
)
def test_error_response_fallback_when_h11_refuses(status: int, reason: bytes) -> None:
    data = build_error_response(_broken_server(), status, b"no", [(b"x-a", b"1")])
    assert data.startswith(b"HTTP/1.1 %d %s\r\n" % (status, reason))
    response, body = _parse(data)
    assert response.status_code == status
    assert response.reason == reason
    headers = _headers(response)
    assert headers[b"content-length"] == b"2"
    assert headers[b"connection"] == b"close"
    assert headers[b"x-a"] == b"1"
    assert body == b"no"


def test_error_response_fallback_unknown_status_reason() -> None:
    data = build_error_response(_broken_server(), 499, b"")
    response, body = _parse(data)
    assert response.status_code == 499
    assert response.reason == b"Error"
    assert body == b""


def test_error_response_fallback_after_response_already_sent() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
    conn.send(h11.EndOfMessage())
    response, _ = _parse(build_error_response(conn, 500, b"late"))
    assert response.status_code == 500
