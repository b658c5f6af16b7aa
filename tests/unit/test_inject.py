"""Script injection into HTML responses, and what is left alone (#7)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devserve.inject import (
    MAX_BUFFERED,
    InjectingSend,
    fix_headers,
    inject,
    injectable_length,
    wants_page,
)

TAG = b"<script data-x></script>"
PAGE = b"<!doctype html><html><body><p>hi</p></body></html>"
HTML = (b"content-type", b"text/html; charset=utf-8")


@pytest.mark.parametrize(
    ("accept", "dest", "expected"),
    [
        (b"text/html,*/*", None, True),
        (b"text/html", b"document", True),
        (b"text/html", b"iframe", True),
        (b"text/html", b"empty", False),  # fetch()
        (b"*/*", None, False),
        (b"application/json", None, False),
        (b"", None, False),
    ],
)
def test_wants_page(accept: bytes, dest: bytes | None, expected: bool) -> None:
    assert wants_page(accept, dest) is expected


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, [HTML], -1),
        (200, [(b"Content-Type", b"TEXT/HTML"), (b"Content-Length", b"51")], 51),
        (404, [HTML], -1),
        (200, [(b"content-type", b"application/json")], None),
        (200, [(b"content-type", b"text/plain")], None),
        (200, [], None),
        (200, [HTML, (b"content-encoding", b"gzip")], None),
        (200, [HTML, (b"content-encoding", b"identity")], -1),
        (200, [HTML, (b"content-length", b"x")], None),
        (200, [HTML, (b"content-length", str(MAX_BUFFERED + 1).encode())], None),
        (200, [HTML, (b"trailer", b"x-checksum")], None),
        (204, [HTML], None),
        (206, [HTML], None),
        (304, [HTML], None),
        (101, [HTML], None),
    ],
)
def test_injectable_length(
    status: int, headers: list[tuple[bytes, bytes]], expected: int | None
) -> None:
    assert injectable_length(status, headers) == expected


def test_inject_before_the_last_body_tag() -> None:
    body = b"<html><body><pre></body></pre></BODY></html>"
    assert inject(body, TAG) == b"<html><body><pre></body></pre>" + TAG + b"</BODY></html>"
    assert inject(b"<html><p>x</html>", TAG) == b"<html><p>x" + TAG + b"</html>"
    assert inject(b"<li>a fragment</li>", TAG) is None


def test_fix_headers() -> None:
    headers = [
        HTML,
        (b"Content-Length", b"5"),
        (b"ETag", b'"x"'),
        (b"last-modified", b"y"),
        (b"x-a", b"1"),
    ]
    assert fix_headers(headers, 9) == [HTML, (b"x-a", b"1"), (b"content-length", b"9")]


def _run(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def downstream(message: Any) -> None:
        sent.append(dict(message))

    async def main() -> None:
        injector = InjectingSend(downstream, TAG)
        for message in messages:
            await injector.send(message)

    asyncio.run(main())
    return sent


def _start(*headers: tuple[bytes, bytes], status: int = 200) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def _body(data: bytes, *, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def _length(start: dict[str, Any]) -> int | None:
    values = [int(v) for k, v in start["headers"] if k.lower() == b"content-length"]
    assert len(values) <= 1
    return values[0] if values else None


def test_one_chunk_page_gets_the_tag_and_a_right_content_length() -> None:
    start, body = _run([_start(HTML, (b"content-length", b"%d" % len(PAGE))), _body(PAGE)])
    assert TAG in body["body"] and body["body"].endswith(b"</body></html>")
    assert _length(start) == len(body["body"]) == len(PAGE) + len(TAG)


def test_one_chunk_page_without_content_length_gets_one() -> None:
    start, body = _run([_start(HTML), _body(PAGE)])
    assert _length(start) == len(body["body"])


def test_chunks_of_a_known_length_are_buffered_then_injected() -> None:
    half = len(PAGE) // 2
    sent = _run(
        [
            _start(HTML, (b"content-length", b"%d" % len(PAGE))),
            _body(PAGE[:half], more=True),
            _body(PAGE[half:], more=True),
            _body(b""),
        ]
    )
    start, body = sent
    assert body["body"] == PAGE.replace(b"</body>", TAG + b"</body>")
    assert _length(start) == len(body["body"])


def test_streaming_html_of_unknown_length_is_left_alone() -> None:
    sent = _run([_start(HTML), _body(b"<html><body>", more=True), _body(b"</body></html>")])
    assert [m.get("body") for m in sent[1:]] == [b"<html><body>", b"</body></html>"]
    assert _length(sent[0]) is None


@pytest.mark.parametrize(
    "start",
    [
        _start((b"content-type", b"application/json")),
        _start(HTML, (b"content-encoding", b"br")),
        _start(HTML, status=304),
    ],
)
def test_other_responses_pass_through_untouched(start: dict[str, Any]) -> None:
    sent = _run([start, _body(PAGE)])
    assert sent == [start, _body(PAGE)]


def test_a_fragment_is_left_alone() -> None:
    sent = _run([_start(HTML, (b"content-length", b"9")), _body(b"<p>hi</p>")])
    assert sent[1]["body"] == b"<p>hi</p>" and _length(sent[0]) == 9


def test_more_bytes_than_announced_pass_through() -> None:
    sent = _run(
        [_start(HTML, (b"content-length", b"4")), _body(b"12345678", more=True), _body(b"")]
    )
    assert [m.get("body") for m in sent[1:]] == [b"12345678", b""]
