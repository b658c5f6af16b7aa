"""The pages devserve serves itself: error pages, the "could not start" page, the 403 page.

PURE: values in, text out. The templates live in the top-level ``templates/`` directory,
shipped in the wheel as ``devserve/templates`` and read with `importlib.resources` (in an
editable install, from the source tree). They are `string.Template` files; everything that
comes from the application or the request is HTML-escaped here before it is substituted.

Every failure has three renderings, picked by `choose_format` from the request's
``Accept`` header: an HTML page for browsers, JSON (``{"error", "type", "traceback"}``)
for API clients that ask for JSON, plain text otherwise.
"""

from __future__ import annotations

import functools
import html
import json
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from devserve.inject import PREFIX

Format = Literal["html", "json", "text"]
_SOURCE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_REDACTED = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
_CONTENT_TYPES: dict[Format, bytes] = {
    "html": b"text/html; charset=utf-8",
    "json": b"application/json",
    "text": b"text/plain; charset=utf-8",
}


@functools.cache
def template_text(name: str) -> str:
    """The text of ``templates/name``: package data, or the source tree when editable."""
    packaged = resources.files("devserve").joinpath("templates", name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (_SOURCE_TEMPLATES / name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Frame:
    """One traceback frame as a page shows it.

    ``context`` holds (line number, text) around ``lineno``; ``shown`` is the file name
    to display (relative to the project when inside it).
    """

    shown: str
    lineno: int
    name: str
    line: str
    is_user: bool
    context: tuple[tuple[int, str], ...] = ()
    package: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """The request that failed."""

    method: str
    path: str
    query: str
    client: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong, ready to render.

    ``stage`` is empty for an exception raised while handling a request, else the startup
    step that failed ("import", "lifespan startup", "exit"), or "crash" when the worker
    process died without an exception (#7). ``changed`` names the files whose change
    started this worker, when known. ``output`` holds the last lines a crashed worker
    wrote; ``hint``, when set, replaces the usual "fix the code and save" advice.
    """

    status: int
    exc_type: str
    message: str
    frames: tuple[Frame, ...]
    traceback_text: str
    stage: str = ""
    request: RequestSummary | None = None
    changed: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
    hint: str = ""


#: The `Failure.stage` of a worker that died without a Python exception.
CRASH_STAGE = "crash"


def stage_headline(stage: str) -> str:
    """What the page says happened at `stage` (a startup step or a crash)."""
    if stage == CRASH_STAGE:
        return "the application crashed"
    return f"the application could not start ({stage})"


def choose_format(accept: str) -> Format:
    """HTML when the client asks for it (browsers), JSON when it asks for JSON, else text.

    Wildcards (``*/*``, as curl and httpx send) do not count: they get plain text.
    """
    best: dict[Format, float] = {"html": 0.0, "json": 0.0}
    for item in accept.split(","):
        kind, _, params = item.strip().partition(";")
        kind = kind.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        fmt: Format | None = None
        if kind in {"text/html", "application/xhtml+xml"}:
            fmt = "html"
        elif kind == "application/json" or (
            kind.startswith("application/") and kind.endswith("+json")
        ):
            fmt = "json"
        if fmt is not None:
            best[fmt] = max(best[fmt], quality)
    if best["html"] > 0 and best["html"] >= best["json"]:
        return "html"
    return "json" if best["json"] > 0 else "text"


def render_failure(failure: Failure, fmt: Format, *, script: str = "") -> tuple[bytes, bytes]:
    """(content type, body) of `failure` in `fmt`; `script` goes at the end of the page."""
    if fmt == "html":
        body = render_html(failure, script=script)
    elif fmt == "json":
        body = render_json(failure)
    else:
        body = render_text(failure)
    return _CONTENT_TYPES[fmt], body.encode("utf-8")


def render_json(failure: Failure) -> str:
    """The JSON body for API clients."""
    document: dict[str, object] = {
        "error": failure.message or failure.exc_type,
        "type": failure.exc_type,
        "status": failure.status,
        "traceback": [
            {
                "file": frame.shown,
                "line": frame.lineno,
                "function": frame.name,
                "code": frame.line,
                "user_code": frame.is_user,
            }
            for frame in failure.frames
        ],
    }
    if failure.stage:
        document["stage"] = failure.stage
    if failure.request is not None:
        document["request"] = f"{failure.request.method} {failure.request.path}"
    if failure.changed:
        document["changed"] = list(failure.changed)
    if failure.output:
        document["output"] = list(failure.output)
    return json.dumps(document, indent=2) + "\n"


def render_text(failure: Failure) -> str:
    """The plain-text body (curl, logs)."""
    user = [frame for frame in failure.frames if frame.is_user]
    where = f" at {user[-1].path or user[-1].shown}:{user[-1].lineno}" if user else ""
    if failure.stage:
        head = f"devserve: {stage_headline(failure.stage)}{where}"
        if failure.stage == CRASH_STAGE:
            head += f": {failure.message}"
    else:
        head = "devserve: the application raised an exception"
        if failure.request is not None:
            head += f" handling {failure.request.method} {failure.request.path}"
        head += where
    lines = [head, ""]
    if failure.changed:
        lines += [f"after a change to: {', '.join(failure.changed)}", ""]
    lines.append(failure.traceback_text.rstrip("\n"))
    if failure.output:
        lines += ["", "Last output of the worker:", *failure.output]
    if failure.stage:
        lines += ["", failure.hint or "Fix the code and save: devserve reloads by itself."]
    return "\n".join(lines) + "\n"


def render_html(failure: Failure, *, script: str = "") -> str:
    """The HTML page for browsers."""
    esc = html.escape
    user = [frame for frame in failure.frames if frame.is_user]
    where = ""
    if user:
        last = user[-1]
        where = (
            f'<p class="where">in <code>{esc(last.name)}</code> at '
            f"<code>{esc(last.shown)}:{last.lineno}</code></p>"
        )
    if failure.stage:
        template = "startup.html"
        eyebrow = f"{failure.status} &middot; {esc(stage_headline(failure.stage))}"
        hint = (
            '<p class="hint"><strong>Fix the code and save.</strong> devserve keeps serving this '
            "page until the next save brings the application back.</p>"
        )
        if failure.hint:
            hint = f'<p class="hint">{esc(failure.hint)}</p>'
        title = f"Could not start: {failure.exc_type}"
    else:
        template = "error.html"
        eyebrow = f"{failure.status} &middot; unhandled exception"
        request = failure.request
        if request is not None:
            eyebrow += f" &middot; {esc(request.method)} {esc(request.path)}"
        hint = ""
        title = f"{failure.exc_type} - devserve"
    return string.Template(template_text(template)).substitute(
        title=esc(title),
        style=template_text("style.css"),
        eyebrow=eyebrow,
        exc_type=esc(failure.exc_type),
        message=esc(failure.message) or "<em>(no message)</em>",
        where=where,
        hint=hint,
        change=_change_html(failure.changed),
        output=_output_html(failure.output),
        frames=_crash_note_html(failure) or frames_html(failure.frames),
        request=_request_html(failure.request),
        traceback_text=esc(failure.traceback_text),
        script=script,
    )


def frames_html(frames: tuple[Frame, ...]) -> str:
    """User frames open with their source; runs of library frames folded into one line."""
    if not frames:
        return '<p class="where">(no frames)</p>'
    parts: list[str] = []
    run: list[Frame] = []

    def flush() -> None:
        if not run:
            return
        packages = sorted({frame.package for frame in run if frame.package})
        label = f"{len(run)} library frame{'s' if len(run) > 1 else ''}"
        if packages:
            label += " &middot; " + ", ".join(html.escape(p) for p in packages[:4])
        inner = "".join(_frame_html(frame, is_open=False) for frame in run)
        parts.append(f'<details class="library"><summary>{label}</summary>{inner}</details>')
        run.clear()

    for frame in frames:
        if frame.is_user:
            flush()
            parts.append(_frame_html(frame, is_open=True))
        else:
            run.append(frame)
    flush()
    return "\n".join(parts)


def _frame_html(frame: Frame, *, is_open: bool) -> str:
    esc = html.escape
    css = "frame user" if frame.is_user else "frame"
    tag = '<span class="tag">your code</span>' if frame.is_user else ""
    summary = (
        f'<summary><span class="fn">{esc(frame.name)}</span>'
        f'<span class="file">{esc(frame.shown)}:{frame.lineno}</span>{tag}</summary>'
    )
    context = frame.context
    if not context and frame.line:
        context = ((frame.lineno, frame.line),)
    lines = "".join(
        f'<span class="l{" hit" if number == frame.lineno else ""}" data-n="{number}">'
        f"{esc(text) or ' '}</span>"
        for number, text in context
    )
    code = f'<pre class="code">{lines}</pre>' if lines else ""
    return f'<details class="{css}"{" open" if is_open else ""}>{summary}{code}</details>'


def _change_html(changed: tuple[str, ...]) -> str:
    if not changed:
        return ""
    shown = ", ".join(f"<code>{html.escape(path)}</code>" for path in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""  # noqa: PLR2004
    return (
        '<section><h2>What changed</h2><p class="hint">This code was loaded after you saved '
        f"{shown}{more}.</p></section>"
    )


def _crash_note_html(failure: Failure) -> str:
    """Where a traceback would be: why a crash has none."""
    if failure.stage != CRASH_STAGE or failure.frames:
        return ""
    return f'<p class="where">{html.escape(failure.traceback_text.strip())}</p>'


def _output_html(output: tuple[str, ...]) -> str:
    if not output:
        return ""
    text = html.escape("\n".join(output))
    return f'<section><h2>Last output of the worker</h2><pre class="output">{text}</pre></section>'


def _request_html(request: RequestSummary | None) -> str:
    if request is None:
        return ""
    esc = html.escape
    rows = [("Request", f"{request.method} {request.path}")]
    if request.query:
        rows.append(("Query string", request.query))
    rows.append(("Client", request.client))
    for name, value in request.headers:
        shown = "[hidden]" if name.lower() in _REDACTED else value
        rows.append((name, shown))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<section><h2>Request</h2><table class="kv">{body}</table></section>'


def render_blocked(
    host: str, allowed: tuple[str, ...], app: str, fmt: Format
) -> tuple[bytes, bytes]:
    """(content type, body) of the 403 for a request whose Host is not allowed."""
    hint = f"devserve: host {host!r} is not allowed; allow it with --allowed-hosts {host or '*'}"
    if fmt == "json":
        body = json.dumps({"error": hint, "type": "HostNotAllowed", "traceback": []}) + "\n"
    elif fmt == "text":
        body = hint + " (or '*' for every host)\n"
    else:
        esc = html.escape
        body = string.Template(template_text("blocked.html")).substitute(
            style=template_text("style.css"),
            host=esc(host or "(none)"),
            host_arg=esc(host or "'*'"),
            app=esc(app),
            allowed=", ".join(f"<code>{esc(name)}</code>" for name in allowed),
        )
    return _CONTENT_TYPES[fmt], body.encode("utf-8")


def livereload_script() -> bytes:
    """The browser side of live reload (served at ``/__devserve/livereload.js``)."""
    return template_text("livereload.js").encode("utf-8")


def script_tag(*, token: str, boot: str, base: str = "", seq: int = 0) -> str:
    """The tag injected into HTML pages: the script, its per-run token and the boot id.

    ``seq``: the last asset notice the worker had seen when it rendered the page, so that a
    change announced before the page's stream connected is not missed.
    """
    esc = html.escape
    return (
        f'<script src="{esc(base)}{PREFIX}livereload.js" data-token="{esc(token)}" '
        f'data-boot="{esc(boot)}" data-base="{esc(base)}" data-seq="{seq:d}" async></script>'
    )
