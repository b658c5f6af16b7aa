"""Error pages: content negotiation, escaping, the three renderings, the templates (#7)."""

from __future__ import annotations

import json

import pytest

from devserve.pages import (
    Failure,
    Frame,
    RequestSummary,
    choose_format,
    livereload_script,
    render_blocked,
    render_failure,
    script_tag,
    template_text,
)

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (BROWSER, "html"),
        ("application/json", "json"),
        ("application/problem+json", "json"),
        ("application/json, text/html;q=0.5", "json"),
        ("text/html;q=0.9, application/json;q=0.9", "html"),
        ("*/*", "text"),
        ("", "text"),
        ("text/plain", "text"),
        ("text/html;q=0", "text"),
        ("text/html;q=bogus, application/json", "json"),
        ("TEXT/HTML", "html"),
    ],
)
def test_choose_format(accept: str, expected: str) -> None:
    assert choose_format(accept) == expected


def _failure(**changes: object) -> Failure:
    frames = (
        Frame(
            "venv/site-packages/starlette/routing.py",
            70,
            "app",
            "await func()",
            False,
            package="starlette",
        ),
        Frame(
            "views.py",
            12,
            "index",
            "return 1 / 0",
            True,
            ((11, "def index():"), (12, "    return 1 / 0")),
            path="/p/views.py",
        ),
    )
    values: dict[str, object] = {
        "status": 500,
        "exc_type": "ZeroDivisionError",
        "message": "division by zero <script>alert(1)</script>",
        "frames": frames,
        "traceback_text": "Traceback ...\nZeroDivisionError: division by zero <b>",
        "request": RequestSummary(
            "GET", "/x<y>", "a=1", "127.0.0.1:5000", (("cookie", "secret=1"), ("accept", "*/*"))
        ),
        "changed": ("views.py",),
    }
    values.update(changes)
    return Failure(**values)  # type: ignore[arg-type]


def test_html_page_escapes_everything_from_the_app() -> None:
    content_type, body = render_failure(_failure(), "html", script="<script src=x></script>")
    page = body.decode()
    assert content_type == b"text/html; charset=utf-8"
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "/x&lt;y&gt;" in page and "&lt;b&gt;" in page
    assert "secret=1" not in page and "[hidden]" in page  # cookies are not shown
    assert page.rstrip().endswith("</html>") and "<script src=x></script>" in page


def test_html_page_emphasises_user_frames_and_folds_library_frames() -> None:
    page = render_failure(_failure(), "html")[1].decode()
    assert '<details class="frame user" open>' in page
    assert '<details class="library"><summary>1 library frame &middot; starlette</summary>' in page
    assert 'class="l hit" data-n="12"' in page  # the failing line is highlighted
    assert "views.py</code>" in page  # what changed
    assert "in <code>index</code> at <code>views.py:12</code>" in page


def test_html_page_is_self_contained() -> None:
    page = render_failure(_failure(), "html")[1].decode()
    assert "http://" not in page and "https://" not in page  # no CDN, no web fonts
    assert "prefers-color-scheme: dark" in page


def test_json_body() -> None:
    content_type, body = render_failure(_failure(), "json")
    document = json.loads(body)
    assert content_type == b"application/json"
    assert document["error"].startswith("division by zero")
    assert document["type"] == "ZeroDivisionError"
    assert document["traceback"][-1] == {
        "file": "views.py",
        "line": 12,
        "function": "index",
        "code": "return 1 / 0",
        "user_code": True,
    }
    assert document["request"] == "GET /x<y>"


def test_text_body_names_the_place() -> None:
    content_type, body = render_failure(_failure(), "text")
    text = body.decode()
    assert content_type.startswith(b"text/plain")
    assert text.startswith(
        "devserve: the application raised an exception handling GET /x<y> at /p/views.py:12"
    )
    assert "ZeroDivisionError: division by zero" in text


def test_startup_page() -> None:
    failure = _failure(status=503, stage="import", request=None, exc_type="SyntaxError")
    page = render_failure(failure, "html")[1].decode()
    assert "<title>Could not start: SyntaxError</title>" in page
    assert "could not start (import)" in page
    text = render_failure(failure, "text")[1].decode()
    assert text.startswith("devserve: the application could not start (import) at /p/views.py:12")
    assert "reloads by itself" in text


def test_blocked_page_says_how_to_allow_the_host() -> None:
    _, html_body = render_blocked("evil.test<x>", ("localhost",), "main:app", "html")
    page = html_body.decode()
    assert "--allowed-hosts evil.test&lt;x&gt;" in page and "<x>" not in page
    _, text = render_blocked("evil.test", ("localhost",), "main:app", "text")
    assert b"--allowed-hosts evil.test" in text
    _, data = render_blocked("evil.test", ("localhost",), "main:app", "json")
    assert json.loads(data)["type"] == "HostNotAllowed"


def test_script_tag_and_script() -> None:
    tag = script_tag(token='t"k', boot="1-ab", base="/api")  # noqa: S106
    assert tag.startswith('<script src="/api/__devserve/livereload.js"')
    assert 'data-token="t&quot;k"' in tag
    assert b"EventSource" in livereload_script()


@pytest.mark.parametrize(
    "name", ["error.html", "startup.html", "blocked.html", "style.css", "livereload.js"]
)
def test_templates_are_found(name: str) -> None:
    assert template_text(name).strip()
