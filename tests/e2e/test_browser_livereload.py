"""Live reload in a real headless Chromium: the page follows the code by itself (#7).

``devserve --reload`` serves an app whose page shows a marker. The test opens it in Chromium
(over the DevTools protocol, see `tests.e2e.cdp`), then edits files and watches the page:

* new code: the marker changes without anyone touching the browser;
* a syntax error: the browser shows the "could not start" page; fixing it brings the page back;
* an exception in a view: the error page with the user's frame (screenshots, light and dark,
  are saved to ``docs/`` for the README);
* a template read at request time: the page reloads without a new worker;
* a stylesheet: swapped in place, the page is not reloaded;
* new code whose process dies while starting: the old page stays, with a banner saying so.

Skipped when ``chromium`` is missing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.e2e.cdp import Page, chromium_page, require_chromium
from tests.e2e.test_reload import reload_server

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: How long the page may take to follow a save. It takes about 0.25 s here (watcher, new
#: worker, reconnect, page load); the suite's machine is shared, so the bound allows 8x that.
FOLLOW_S = 2.0

APP = """
from pathlib import Path

HERE = Path(__file__).parent


def orders_total(orders):
    return sum(order["price"] * order["qty"] for order in orders)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/style.css":
        body, kind = (HERE / "style.css").read_bytes(), b"text/css"
    elif path == "/orders":
        total = orders_total([{"price": 3, "qty": 2}, {"price": 5, "quantity": 1}])
        body, kind = str(total).encode(), b"text/plain"
    else:
        note = (HERE / "note.html").read_text()
        body = (
            "<!doctype html><html><head><link rel='stylesheet' href='/style.css'></head>"
            f"<body><p id='marker'>MARKER</p><div id='note'>{note}</div></body></html>"
        ).encode()
        kind = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""

MARKER = "document.getElementById('marker') && document.getElementById('marker').textContent"
TITLE = "document.querySelector('h1') && document.querySelector('h1').textContent"


def _write_app(directory: Path, marker: str, *, broken: bool = False) -> None:
    source = textwrap.dedent(APP).replace("MARKER", marker)
    if broken:
        source = source.replace("def orders_total(orders):", "def orders_total(orders)")
    (directory / "main.py").write_text(source)


def _project(tmp_path: Path) -> Path:
    """A project serving v1 of the app, with a template and a stylesheet it reads."""
    require_chromium()
    project = tmp_path / "project"
    project.mkdir()
    _write_app(project, "v1")
    (project / "note.html").write_text("note one")
    (project / "style.css").write_text("#marker { color: rgb(0, 0, 255); }")
    return project


CONNECTED = "document.documentElement.classList.contains('devserve-connected')"


def _probe(page: Page) -> None:
    """Mark the current document (a reload loses the mark), once its live stream is up.

    A change announced before the stream's hello makes the page reload ("changed while the
    page loaded"), so a test that expects an in-place swap must wait for the stream first.
    """
    page.wait_for(CONNECTED, True, timeout_s=10)
    page.evaluate("window.__probe = 'kept'")


@pytest.mark.timeout(120)
def test_the_page_follows_saves_errors_and_fixes(tmp_path: Path) -> None:
    project = _project(tmp_path)
    # Chromium outside the server's block: that block adopts orphans (reload_server), and
    # Chromium's helpers must not become this process's zombies.
    with chromium_page(tmp_path / "profile") as page, reload_server(project) as cli:
        url = cli.url.replace("127.0.0.1", "localhost").rstrip("/") + "/"
        page.call("Page.navigate", url=url)
        page.wait_for(MARKER, "v1", timeout_s=15)
        page.wait_for("document.documentElement.classList.contains('devserve-live')", True, 10)

        _write_app(project, "v2")
        took = page.wait_for(MARKER, "v2", timeout_s=FOLLOW_S)
        print(f"new code on the page {took * 1000:.0f} ms after the save")

        _write_app(project, "v3", broken=True)
        page.wait_for("document.title.startsWith('Could not start')", True, FOLLOW_S)
        assert page.evaluate(TITLE) == "SyntaxError"
        page.screenshot(DOCS / "startup-error-light.png", dark=False)
        page.screenshot(DOCS / "startup-error-dark.png", dark=True)

        _write_app(project, "v4")
        page.wait_for(MARKER, "v4", timeout_s=FOLLOW_S)

        page.call("Page.navigate", url=url + "orders")
        page.wait_for(TITLE, "KeyError", timeout_s=10)
        user_frame = "[...document.querySelectorAll('.frame.user .fn')].pop().textContent"
        assert page.evaluate(user_frame) == "<genexpr>"
        page.screenshot(DOCS / "error-page-light.png", dark=False)
        page.screenshot(DOCS / "error-page-dark.png", dark=True)

        page.call("Page.navigate", url=url)
        page.wait_for(MARKER, "v4", timeout_s=10)
        _probe(page)
        (project / "note.html").write_text("note two")
        page.wait_for("document.getElementById('note').textContent", "note two", FOLLOW_S)
        assert page.evaluate("window.__probe") is None  # reloaded

        _probe(page)
        (project / "style.css").write_text("#marker { color: rgb(255, 0, 0); }")
        color = "getComputedStyle(document.getElementById('marker')).color"
        page.wait_for(color, "rgb(255, 0, 0)", FOLLOW_S)
        assert page.evaluate("window.__probe") == "kept"  # swapped in place

        (project / "main.py").write_text("import os\nos._exit(4)\n")  # dies while starting
        banner = "document.getElementById('devserve-banner') !== null"
        page.wait_for(banner, True, timeout_s=10)
        assert "exit code 4" in page.evaluate(
            "document.getElementById('devserve-banner').textContent"
        )
        assert page.evaluate(MARKER) == "v4" and page.evaluate("window.__probe") == "kept"
        output = cli.output()
        assert "note.html changed: reloading pages in browsers" in output
        assert "style.css changed: swapping stylesheets in browsers" in output
        assert output.count("reloaded in") == 2, output  # v2 and v4: assets needed no worker
        # One page load per change, no storm: v1, v2, v3 (broken), v4, back from /orders, note.
        assert output.count('"GET / HTTP/1.1"') == 6, output


@pytest.mark.timeout(90)
def test_a_change_before_the_page_listens_still_reloads_it(tmp_path: Path) -> None:
    # The page's event stream is held back (blocked in the browser) while note.html changes,
    # so the worker announces the change to nobody. When the stream comes through, its hello
    # says a change was seen after this page was rendered, and the page reloads.
    project = _project(tmp_path)
    note = "document.getElementById('note') && document.getElementById('note').textContent"
    with chromium_page(tmp_path / "profile") as page, reload_server(project) as cli:
        page.call("Network.enable")
        page.call("Network.setBlockedURLs", urls=["*/__devserve/events*"])
        page.call("Page.navigate", url=cli.url.replace("127.0.0.1", "localhost") + "/")
        page.wait_for(note, "note one", timeout_s=15)
        (project / "note.html").write_text("note two")
        cli.wait_for("note.html changed: reloading pages in browsers")
        page.call("Network.setBlockedURLs", urls=[])
        page.wait_for(note, "note two", timeout_s=10)
