"""The dev-mode ASGI layer in process: host check, reserved prefix, stream, error pages (#7)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from devserve.config import Config
from devserve.devmode import QUIET_KEY, DevMode, LiveReload, dev_mode
from devserve.events import Event, LogLine
from devserve.pages import Failure

TOKEN = "tok-123"  # noqa: S105 - a test value
PAGE = b"<html><body>app</body></html>"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["path"] == "/boom":
        raise ValueError("bad <value>")
    body = PAGE if scope["path"] != "/api" else b"{}"
    kind = b"text/html" if scope["path"] != "/api" else b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": body + scope["path"].encode()})


def _dev(*, live: bool = True, **options: Any) -> tuple[DevMode, list[Event]]:
    events: list[Event] = []
    config = Config.from_options({"app": "main:app", "reload": live, **options})
    livereload = LiveReload(TOKEN, "7-abc") if live else None
    dev = dev_mode(config, events.append, urls=("http://127.0.0.1:8000",), livereload=livereload)
    assert dev is not None
    return dev, events


def _scope(path: str = "/", *headers: tuple[bytes, bytes], query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "client": ("127.0.0.1", 5000),
        "headers": [(b"host", b"localhost:8000"), *headers],
    }


def _call(
    dev: DevMode, scope: dict[str, Any], *, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Run one request through the wrapped app; close the dev mode after `stop_after` sends."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))
        if stop_after is not None and len(sent) == stop_after:
            dev.close()

    asyncio.run(asyncio.wait_for(dev.wrap(_app)(scope, receive, send), 5))
    return sent


def _body(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_refused_host_gets_403_and_never_reaches_the_app() -> None:
    dev, events = _dev()
    sent = _call(
        dev,
        _scope("/", (b"accept", b"text/html"))
        | {"headers": [(b"host", b"evil.test"), (b"accept", b"text/html")]},
    )
    assert sent[0]["status"] == 403
    assert b"--allowed-hosts evil.test" in _body(sent) and PAGE not in _body(sent)
    assert any(isinstance(e, LogLine) and "evil.test" in e.message for e in events)


def test_allowed_hosts_option() -> None:
    dev, _ = _dev(allowed_hosts=("evil.test",))
    sent = _call(dev, _scope() | {"headers": [(b"host", b"evil.test")]})
    assert sent[0]["status"] == 200


def test_a_websocket_from_a_refused_host_is_closed() -> None:
    dev, _ = _dev()
    scope = _scope() | {"type": "websocket", "headers": [(b"host", b"evil.test")]}
    assert _call(dev, scope) == [{"type": "websocket.close", "code": 1008}]


def test_pages_get_the_script_other_responses_do_not() -> None:
    dev, _ = _dev()
    page = _body(_call(dev, _scope("/", (b"accept", b"text/html"))))
    assert b'data-token="tok-123" data-boot="7-abc"' in page
    assert _body(_call(dev, _scope("/", (b"accept", b"*/*")))) == PAGE + b"/"
    api = _body(_call(dev, _scope("/api", (b"accept", b"text/html"))))
    assert api == b"{}/api"


def test_without_live_reload_nothing_is_injected_and_the_prefix_is_the_apps() -> None:
    dev, _ = _dev(live=False)
    page = _body(_call(dev, _scope("/", (b"accept", b"text/html"))))
    assert page == PAGE + b"/"
    reserved = _call(dev, _scope("/__devserve/events", query=b"token=" + TOKEN.encode()))
    assert _body(reserved) == PAGE + b"/__devserve/events"  # the app answered


def test_the_script_endpoint() -> None:
    dev, _ = _dev()
    scope = _scope("/__devserve/livereload.js")
    sent = _call(dev, scope)
    assert sent[0]["status"] == 200 and b"EventSource" in _body(sent)
    assert scope[QUIET_KEY] is True  # not in the request log
    assert _call(dev, _scope("/__devserve/nope"))[0]["status"] == 404


def test_the_stream_needs_the_token() -> None:
    dev, _ = _dev()
    for query in (b"", b"token=wrong"):
        sent = _call(dev, _scope("/__devserve/events", query=query))
        assert sent[0]["status"] == 403


def test_the_stream_refuses_other_origins() -> None:
    dev, _ = _dev()
    query = b"token=" + TOKEN.encode()
    for header in ((b"origin", b"http://evil.test"), (b"sec-fetch-site", b"cross-site")):
        sent = _call(dev, _scope("/__devserve/events", header, query=query))
        assert sent[0]["status"] == 403


def test_the_stream_says_hello_then_bye_when_the_worker_drains() -> None:
    dev, _ = _dev()
    origin = (b"origin", b"http://localhost:8000")
    sent = _call(
        dev, _scope("/__devserve/events", origin, query=b"token=" + TOKEN.encode()), stop_after=2
    )
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream") in sent[0]["headers"]
    text = _body(sent).decode()
    assert 'event: hello\ndata: {"boot": "7-abc", "broken": false, "seq": 0}' in text
    assert text.endswith("event: bye\ndata: {}\n\n")
    assert sent[-1].get("more_body", False) is False
    assert not dev.streams


def test_pages_and_hello_name_the_last_asset_notice_seen() -> None:
    # A change announced between rendering a page and its stream connecting is not missed:
    # the page carries the notice count it was rendered at, the hello the current one.
    dev, _ = _dev()
    assert b'data-seq="0"' in dev.tag
    dev.last_seq = 3  # as _on_notice leaves it after three notices
    assert b'data-seq="3"' in dev.tag
    assert dev.tag is dev.tag  # built once per notice count
    origin = (b"origin", b"http://localhost:8000")
    sent = _call(
        dev, _scope("/__devserve/events", origin, query=b"token=" + TOKEN.encode()), stop_after=2
    )
    assert '"seq": 3}' in _body(sent).decode()


def test_a_stream_opened_while_draining_is_sent_on_at_once() -> None:
    dev, _ = _dev()
    dev.close()
    sent = _call(dev, _scope("/__devserve/events", query=b"token=" + TOKEN.encode()))
    assert _body(sent) == b"event: bye\ndata: {}\n\n"


def _raise() -> ValueError:
    try:
        raise ValueError("bad <value>")
    except ValueError as exc:
        return exc


def test_error_response_by_accept() -> None:
    dev, _ = _dev()
    html = dev.error_response(_raise(), _scope("/boom", (b"accept", b"text/html")))
    assert html is not None and html[0].startswith(b"text/html")
    assert b"bad &lt;value&gt;" in html[1] and b"__devserve/livereload.js" in html[1]
    data = dev.error_response(_raise(), _scope("/boom", (b"accept", b"application/json")))
    assert data is not None and json.loads(data[1])["type"] == "ValueError"
    text = dev.error_response(_raise(), _scope("/boom"))
    assert text is not None and text[1].startswith(b"devserve: the application raised")


def test_no_tracebacks_without_debug_pages_or_cross_origin() -> None:
    dev, _ = _dev(debug_pages=False)
    assert dev.error_response(_raise(), _scope("/boom", (b"accept", b"text/html"))) is None
    dev, _ = _dev()
    scope = _scope("/boom", (b"accept", b"application/json"), (b"origin", b"http://evil.test"))
    assert dev.error_response(_raise(), scope) is None


def test_startup_app() -> None:
    dev, _ = _dev()
    failure = Failure(503, "SyntaxError", "invalid syntax", (), "Traceback", stage="import")
    app = dev.startup_app(failure)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    asyncio.run(dev.wrap(app)(_scope("/", (b"accept", b"text/html")), receive, send))
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    assert b"Could not start: SyntaxError" in _body(sent)
    assert b"__devserve/livereload.js" in _body(sent)  # it reloads by itself once fixed
    assert dev.is_broken


def test_nothing_to_do_means_no_dev_mode() -> None:
    config = Config.from_options({"app": "main:app", "debug_pages": False, "allowed_hosts": ("*",)})
    assert dev_mode(config, lambda _e: None, urls=()) is None


def test_unix_sockets_serve_every_host() -> None:
    dev, _ = _dev(live=False, uds="/tmp/x.sock")
    assert dev.settings.hosts.allows("anything.example")
