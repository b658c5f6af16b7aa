"""Dev pages with the real CLI on 127.0.0.1: error pages, Host checks, the live-reload stream (#7).

Single-process ``devserve APP`` serves the error pages and the Host check; ``--reload``
adds the live-reload endpoints, whose stream is read here with a raw socket: ``hello`` with
the worker's boot id, ``bye`` when a save replaced the worker, ``change`` for an asset.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.e2e.test_reload import reload_server, wait_served, write
from tests.helpers import CLIProcess, assert_no_children, recv_until, start_server_cli, stop_cli

APP = """
import gzip

VERSION = {version!r}


def compute(value):
    return 10 / value


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    body = ("<html><body><p>" + VERSION + "</p></body></html>").encode()
    if path == "/boom":
        compute(0)
    elif path == "/silent":
        return
    elif path == "/api":
        headers, body = [(b"content-type", b"application/json")], b'{{"ok": true}}'
    elif path == "/gz":
        headers.append((b"content-encoding", b"gzip"))
        body = gzip.compress(body)
    elif path.startswith("/__devserve/"):
        body = b"the app's own " + path.encode()
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": body}})
"""
HELLO = re.compile(rb"event: hello\ndata: [^\n]*\n\n")
TAG = re.compile(
    rb'<script src="/__devserve/livereload.js" data-token="([^"]+)" data-boot="([^"]+)"'
)


def _source(version: str) -> str:
    return textwrap.dedent(APP.format(version=version))


@contextlib.contextmanager
def _single(tmp_path: Path, *args: str) -> Iterator[CLIProcess]:
    (tmp_path / "main.py").write_text(_source("v1"))
    cli = start_server_cli(["main:app", *args], tmp_path)
    try:
        yield cli
    finally:
        stop_cli(cli)
        assert_no_children(cli.proc.pid)


def test_error_pages_are_negotiated(tmp_path: Path) -> None:
    with _single(tmp_path) as cli:
        page = httpx.get(cli.url + "/boom", headers={"Accept": "text/html"}, timeout=5)
        assert page.status_code == 500
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert int(page.headers["content-length"]) == len(page.content)
        assert "ZeroDivisionError" in page.text and "10 / value" in page.text
        assert "__devserve" not in page.text  # no live reload without --reload
        data = httpx.get(cli.url + "/boom", headers={"Accept": "application/json"}, timeout=5)
        document = data.json()
        assert document["type"] == "ZeroDivisionError" and document["error"] == "division by zero"
        assert [f["function"] for f in document["traceback"]] == ["app", "compute"]
        text = httpx.get(cli.url + "/boom", timeout=5)
        assert text.headers["content-type"].startswith("text/plain")
        assert text.text.startswith(
            "devserve: the application raised an exception handling GET /boom"
        )
        silent = httpx.get(cli.url + "/silent", headers={"Accept": "application/json"}, timeout=5)
        assert silent.status_code == 500
        assert silent.json()["error"] == "the application returned without sending a response"
        ok = httpx.get(cli.url + "/", headers={"Accept": "text/html"}, timeout=5)
        assert ok.status_code == 200 and ok.text == "<html><body><p>v1</p></body></html>"


def test_no_debug_pages_gives_a_plain_500(tmp_path: Path) -> None:
    with _single(tmp_path, "--no-debug-pages") as cli:
        page = httpx.get(cli.url + "/boom", headers={"Accept": "text/html"}, timeout=5)
        assert page.status_code == 500 and page.text == "Internal Server Error\n"


def test_hosts_are_checked(tmp_path: Path) -> None:
    with _single(tmp_path, "--allowed-hosts", "myapp.test") as cli:
        refused = httpx.get(
            cli.url + "/", headers={"Host": "evil.test", "Accept": "text/html"}, timeout=5
        )
        assert refused.status_code == 403
        assert "--allowed-hosts evil.test" in refused.text
        allowed = httpx.get(cli.url + "/", headers={"Host": "myapp.test:8000"}, timeout=5)
        assert allowed.status_code == 200
        cross = httpx.get(
            cli.url + "/boom",
            headers={"Origin": "http://evil.test", "Accept": "application/json"},
            timeout=5,
        )
        assert cross.status_code == 500 and cross.text == "Internal Server Error\n"
        cli.wait_for(r"refused a request for host 'evil.test'")


def test_the_prefix_is_the_apps_without_live_reload(tmp_path: Path) -> None:
    with _single(tmp_path) as cli:
        reply = httpx.get(cli.url + "/__devserve/events", timeout=5)
        assert reply.text == "the app's own /__devserve/events"


def _stream(port: int, token: str, *extra: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = [
        f"GET /__devserve/events?token={token} HTTP/1.1",
        f"Host: localhost:{port}",
        "Accept: text/event-stream",
        *extra,
    ]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return sock


def _hello(sock: socket.socket) -> str:
    data = recv_until(sock, lambda d: HELLO.search(d) is not None)
    assert data.startswith(b"HTTP/1.1 200"), data
    match = re.search(rb'data: \{"boot": "([^"]+)"', data)
    assert match is not None, data
    return match.group(1).decode()


def test_live_reload_stream_follows_workers_and_assets(tmp_path: Path) -> None:
    write(tmp_path / "main.py", _source("v1"))
    write(tmp_path / "static" / "site.css", "p { color: red }")
    with reload_server(tmp_path) as cli:
        port = int(cli.url.rsplit(":", 1)[1].strip("/"))
        page = httpx.get(cli.url + "/", headers={"Accept": "text/html"}, timeout=5)
        match = TAG.search(page.content)
        assert match is not None, page.text
        token, boot = match.group(1).decode(), match.group(2).decode()
        assert int(page.headers["content-length"]) == len(page.content)
        assert page.content.endswith(b"</script></body></html>")

        api = httpx.get(cli.url + "/api", headers={"Accept": "text/html"}, timeout=5)
        assert api.content == b'{"ok": true}'  # not HTML: untouched
        gz = httpx.get(cli.url + "/gz", headers={"Accept": "text/html"}, timeout=5)
        assert gz.headers["content-encoding"] == "gzip"
        assert gz.content == b"<html><body><p>v1</p></body></html>"  # compressed: untouched
        assert b"__devserve" not in httpx.get(cli.url + "/", timeout=5).content  # curl-like Accept

        for bad in (_stream(port, "wrong"), _stream(port, token, "Origin: http://evil.test")):
            with bad:
                assert recv_until(bad, lambda d: b"\r\n\r\n" in d).startswith(b"HTTP/1.1 403")

        with _stream(port, token, f"Origin: http://localhost:{port}") as sock:
            assert _hello(sock) == boot
            write(tmp_path / "static" / "site.css", "p { color: blue }")
            change = recv_until(
                sock, lambda d: re.search(rb"event: change\ndata: [^\n]*\n\n", d) is not None
            )
            assert b'"kind": "css", "paths": ["static/site.css"]' in change
            cli.wait_for(r"static/site\.css changed: swapping stylesheets in browsers")
            assert "reloaded in" not in cli.output()  # the worker stayed

            write(tmp_path / "main.py", _source("v2"))
            end = recv_until(sock, lambda d: b"event: bye" in d and d.endswith(b"0\r\n\r\n"))
            assert b"event: bye" in end
        with _stream(port, token) as sock:
            assert _hello(sock) != boot
        assert "/__devserve/events" not in cli.output()  # dev endpoints stay out of the log

        write(tmp_path / "main.py", "def broken(:\n")
        wait_served(cli, 503, "could not start")
        reply = httpx.get(cli.url + "/", headers={"Accept": "application/json"}, timeout=5)
        document = json.loads(reply.text)
        assert reply.status_code == 503 and document["type"] == "SyntaxError"
        assert document["stage"] == "import" and document["changed"] == ["main.py"]
        with _stream(port, token) as sock:
            data = recv_until(sock, lambda d: HELLO.search(d) is not None)
            assert b'"broken": true' in data


def test_browsers_hear_when_new_code_crashes_while_the_old_serves(tmp_path: Path) -> None:
    write(tmp_path / "main.py", _source("v1"))
    with reload_server(tmp_path) as cli:
        port = int(cli.url.rsplit(":", 1)[1].strip("/"))
        page = httpx.get(cli.url + "/", headers={"Accept": "text/html"}, timeout=5)
        match = TAG.search(page.content)
        assert match is not None
        with _stream(port, match.group(1).decode()) as sock:
            _hello(sock)
            write(tmp_path / "main.py", "import os\nos._exit(4)\n")
            notice = rb"event: change\ndata: [^\n]*\n\n"
            data = recv_until(sock, lambda d: re.search(notice, d) is not None, timeout_s=10)
            assert b'"kind": "crash"' in data and b"exit code 4" in data, data
        assert httpx.get(cli.url + "/", timeout=5).text.endswith("v1</p></body></html>")
        cli.wait_for(r"stopped unexpectedly \(exit code 4\)")


LIFESPAN_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        connect_db()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})


def connect_db():
    raise ConnectionRefusedError("database refused the connection")
"""


def test_a_failing_lifespan_shows_the_apps_own_exception(tmp_path: Path) -> None:
    write(tmp_path / "main.py", LIFESPAN_APP.replace("        connect_db()\n", ""))
    with reload_server(tmp_path, "--lifespan", "on") as cli:
        write(tmp_path / "main.py", LIFESPAN_APP)
        wait_served(cli, 503, "could not start (lifespan startup)")
        reply = httpx.get(cli.url + "/", headers={"Accept": "application/json"}, timeout=5)
        document = reply.json()
        assert reply.status_code == 503 and document["stage"] == "lifespan startup"
        assert document["type"] == "ConnectionRefusedError"
        assert [f["function"] for f in document["traceback"]] == ["app", "connect_db"]


FASTAPI_APP = """
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


def total(orders):
    return sum(order["qty"] for order in orders)


@app.get("/boom")
async def boom():
    return {"total": total([{"qty": 1}, {}])}


@app.get("/custom")
async def custom():
    return PlainTextResponse("the app's own 500", status_code=500)
"""


def test_fastapi_errors_get_the_error_page_and_its_own_500s_pass(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(FASTAPI_APP)
    cli = start_server_cli(["main:app"], tmp_path)
    try:
        data = httpx.get(cli.url + "/boom", headers={"Accept": "application/json"}, timeout=5)
        document = data.json()
        assert data.status_code == 500 and document["type"] == "KeyError"
        user = [f["function"] for f in document["traceback"] if f["user_code"]]
        assert user == ["boom", "total", "<genexpr>"]
        assert any(not f["user_code"] for f in document["traceback"])  # Starlette's, folded
        page = httpx.get(cli.url + "/boom", headers={"Accept": "text/html"}, timeout=5).text
        assert "library frames &middot; fastapi, starlette" in page
        custom = httpx.get(cli.url + "/custom", headers={"Accept": "application/json"}, timeout=5)
        assert custom.status_code == 500 and custom.text == "the app's own 500"
    finally:
        stop_cli(cli)
        assert_no_children(cli.proc.pid)
