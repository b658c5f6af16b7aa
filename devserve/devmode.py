"""Dev mode in the worker: host checks, error pages, live reload, around the user's app.

`DevMode.wrap` puts one thin ASGI layer around the app:

1. **Host check** (`devserve.hosts`): a request whose ``Host`` is not allowed gets a 403
   page saying how to allow it, and never reaches the app or a dev endpoint.
2. **Dev endpoints**, only while live reload is on, under ``/__devserve/``:
   ``livereload.js`` (the browser script) and ``events`` (Server-Sent Events; needs the
   per-run token and a same-origin request). With live reload off the prefix is the app's.
3. **Injection** (`devserve.inject`): for GET page loads only, the send channel is wrapped
   to put the script tag into complete HTML documents. Other requests go straight to the
   app with the original ``send``: non-HTML traffic pays one header scan, nothing more.

`DevMode.error_response` renders the 500 for an exception the request cycle caught (by
``Accept``; None when debug pages are off or the request is cross-origin: a plain 500).
`DevMode.startup_app` is what a worker serves when the user's app could not start.

Live-reload streams: ``hello`` names this worker (boot id) and the last asset notice it saw,
which pages carry too (a page that missed one while loading reloads); asset changes come as
``change`` messages (`devserve.livenotice`); `close` ends every stream when the worker drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from devserve.asgi import ASGIApp, Receive, Scope, Send
from devserve.config import Config
from devserve.events import Event, LogLine
from devserve.hosts import HostPolicy, is_cross_origin, machine_name, token_matches
from devserve.inject import PREFIX, InjectingSend, wants_page

if TYPE_CHECKING:
    from devserve.failures import FrameClassifier
    from devserve.pages import Failure

# Pages, tracebacks and notices are imported on first use (a tenth of single-process start).

HEARTBEAT_S = 15.0
#: The last message of a stream whose worker drains: reconnect now, to the next worker.
_BYE = b"event: bye\ndata: {}\n\n"
MAX_LOGGED_HOSTS = 32
MAX_CACHED_HOSTS = 256
#: Scope key telling the request cycle not to report the request (dev endpoints).
QUIET_KEY = "devserve.quiet"


@dataclass(frozen=True, slots=True)
class LiveReload:
    """What one worker needs for live reload: the run's token, its boot id, the notice file."""

    token: str
    boot: str
    notice_path: str | None = None


@dataclass(frozen=True, slots=True)
class DevSettings:
    """Dev-mode settings of one worker."""

    hosts: HostPolicy
    debug_pages: bool
    app_name: str
    root_path: str = ""
    project_dirs: tuple[str, ...] = (".",)
    changed: tuple[str, ...] = ()
    livereload: LiveReload | None = None

    @property
    def is_needed(self) -> bool:
        """Whether any dev feature is on (else the app is served unwrapped)."""
        return self.debug_pages or not self.hosts.allow_all or self.livereload is not None


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class DevMode:
    """The dev features of one worker (see the module docstring)."""

    def __init__(self, settings: DevSettings, emit: Callable[[Event], None]) -> None:
        self.settings = settings
        self.emit = emit
        self.is_broken = False
        self.is_closing = False
        self.streams: set[asyncio.Queue[bytes | None]] = set()
        self.last_seq = 0
        self.logged_hosts: set[str] = set()
        live = settings.livereload
        self._tag = (-1, b"")  # (seq, the script tag for pages rendered at that seq)
        if live is not None and live.notice_path is not None:
            from devserve.livenotice import read_notices  # noqa: PLC0415 - see the imports

            self.last_seq = max((n.seq for n in read_notices(live.notice_path, 0)), default=0)

    @property
    def tag(self) -> bytes:
        """The script tag for a page rendered now, naming the last notice seen (or empty)."""
        live = self.settings.livereload
        if live is None:
            return b""
        if self._tag[0] != self.last_seq:
            from devserve.pages import script_tag  # noqa: PLC0415 - see the imports

            text = script_tag(
                token=live.token, boot=live.boot, base=self.settings.root_path, seq=self.last_seq
            )
            self._tag = (self.last_seq, text.encode())
        return self._tag[1]

    @cached_property
    def classifier(self) -> FrameClassifier:
        """Which frames of a traceback are the user's (made on the first error)."""
        from devserve.failures import FrameClassifier  # noqa: PLC0415 - see the imports

        return FrameClassifier(self.settings.project_dirs)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen for the supervisor's asset notices (SIGUSR1)."""
        live = self.settings.livereload
        if live is not None and live.notice_path is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGUSR1, self._on_notice)

    def close(self) -> None:
        """End every live-reload stream (the worker drains): browsers move to the next one."""
        self.is_closing = True
        for queue in list(self.streams):
            queue.put_nowait(None)

    def _on_notice(self) -> None:
        live = self.settings.livereload
        if live is None or live.notice_path is None:
            return
        from devserve.livenotice import read_notices  # noqa: PLC0415 - see the imports

        for notice in read_notices(live.notice_path, self.last_seq):
            self.last_seq = max(self.last_seq, notice.seq)
            data = json.dumps(
                {"kind": notice.kind, "paths": list(notice.paths), "message": notice.message}
            )
            self._broadcast(f"event: change\ndata: {data}\n\n".encode())

    def _broadcast(self, message: bytes) -> None:
        for queue in list(self.streams):
            queue.put_nowait(message)

    # -- the ASGI layer -----------------------------------------------------------------

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the host check, the dev endpoints and the script injection."""
        settings = self.settings
        hosts = settings.hosts
        prefix = settings.root_path + PREFIX
        is_live = settings.livereload is not None
        verdicts: dict[bytes | None, bool] = {}  # Host header -> allowed (a few distinct values)

        async def dev_app(scope: Scope, receive: Receive, send: Send) -> None:
            kind = scope["type"]
            if kind == "lifespan":
                await app(scope, receive, send)
                return
            found = dict(scope["headers"])  # in C: cheaper than scanning twice in Python
            host = found.get(b"host")
            allowed = verdicts.get(host)
            if allowed is None:
                allowed = hosts.allows(None if host is None else host.decode("latin-1"))
                if len(verdicts) < MAX_CACHED_HOSTS:
                    verdicts[host] = allowed
            if not allowed:
                await self._blocked(scope, send, (host or b"").decode("latin-1"))
                return
            if is_live and kind == "http":
                if scope["path"].startswith(prefix):
                    await self._endpoint(scope, receive, send, scope["path"][len(prefix) :])
                    return
                accept = found.get(b"accept", b"")
                if (
                    b"text/html" in accept  # first: most traffic stops here
                    and scope["method"] == "GET"
                    and wants_page(accept, found.get(b"sec-fetch-dest"))
                ):
                    await app(scope, receive, InjectingSend(send, self.tag).send)
                    return
            await app(scope, receive, send)

        return dev_app

    async def _blocked(self, scope: Scope, send: Send, host: str) -> None:
        if host not in self.logged_hosts and len(self.logged_hosts) < MAX_LOGGED_HOSTS:
            self.logged_hosts.add(host)
            self.emit(
                LogLine(
                    "warning",
                    f"refused a request for host {host!r} (DNS-rebinding protection); "
                    f"allow it with --allowed-hosts {host}",
                )
            )
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        from devserve.pages import choose_format, render_blocked  # noqa: PLC0415 - see the imports

        fmt = choose_format(_header(scope["headers"], b"accept") or "")
        content_type, body = render_blocked(
            host, self.settings.hosts.describe(), self.settings.app_name, fmt
        )
        await respond(send, 403, content_type, body)

    async def _endpoint(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        scope[QUIET_KEY] = True
        if name == "livereload.js":
            from devserve.pages import livereload_script  # noqa: PLC0415 - see the imports

            headers = [(b"cache-control", b"no-cache")]
            await respond(
                send, 200, b"text/javascript; charset=utf-8", livereload_script(), headers
            )
            return
        if name != "events":
            await respond(send, 404, b"text/plain; charset=utf-8", b"devserve: no such endpoint\n")
            return
        headers = scope["headers"]
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        live = self.settings.livereload
        token = query.get("token", [""])[0]
        if live is None or not token_matches(token, live.token) or self._is_cross_origin(headers):
            await respond(send, 403, b"text/plain; charset=utf-8", b"devserve: forbidden\n")
            return
        await self._stream(receive, send, live)

    def _is_cross_origin(self, headers: list[tuple[bytes, bytes]]) -> bool:
        return is_cross_origin(
            _header(headers, b"host"),
            _header(headers, b"origin"),
            _header(headers, b"sec-fetch-site"),
            _header(headers, b"sec-fetch-mode"),
        )

    async def _stream(self, receive: Receive, send: Send, live: LiveReload) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.streams.add(queue)
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            if self.is_closing:
                # A reconnect on a kept-alive connection to this draining worker: send the
                # browser on at once (this connection closes after the response).
                await send({"type": "http.response.body", "body": _BYE})
                return
            hello = json.dumps({"boot": live.boot, "broken": self.is_broken, "seq": self.last_seq})
            first = f"retry: 500\nevent: hello\ndata: {hello}\n\n".encode()
            await send({"type": "http.response.body", "body": first, "more_body": True})
            while not gone.done():
                item = asyncio.ensure_future(queue.get())
                await asyncio.wait({item, gone}, timeout=HEARTBEAT_S, return_when="FIRST_COMPLETED")
                if not item.done():
                    item.cancel()
                    if not gone.done():
                        await send(
                            {"type": "http.response.body", "body": b": ping\n\n", "more_body": True}
                        )
                    continue
                message = item.result()
                if message is None:
                    break
                await send({"type": "http.response.body", "body": message, "more_body": True})
            if not gone.done():
                await send({"type": "http.response.body", "body": _BYE})
        finally:
            self.streams.discard(queue)
            gone.cancel()

    # -- failures -----------------------------------------------------------------------

    def error_response(self, exc: BaseException, scope: Scope) -> tuple[bytes, bytes] | None:
        """(content type, body) of the 500 page for `exc`, or None for a plain 500."""
        headers = scope.get("headers", [])
        if not self.settings.debug_pages or self._is_cross_origin(headers):
            return None
        from devserve.failures import exception_failure, request_summary  # noqa: PLC0415
        from devserve.pages import choose_format, render_failure  # noqa: PLC0415

        fmt = choose_format(_header(headers, b"accept") or "")
        failure = exception_failure(
            exc,
            self.classifier,
            status=500,
            request=request_summary(scope),
            changed=self.settings.changed,
        )
        return render_failure(failure, fmt, script=self.tag.decode() if fmt == "html" else "")

    def startup_app(self, failure: Failure) -> ASGIApp:
        """The app served while the user's cannot start: every request gets `failure`."""
        from devserve.pages import (  # noqa: PLC0415 - see the imports
            choose_format,
            render_failure,
            stage_headline,
        )

        self.is_broken = True
        plain = (
            f"devserve: {stage_headline(failure.stage)}; "
            "see the terminal. Fix the code and save: devserve reloads by itself.\n"
        ).encode()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1011})
                return
            if scope["type"] != "http":
                return
            headers = scope["headers"]
            extra = [(b"retry-after", b"1")]
            if not self.settings.debug_pages or self._is_cross_origin(headers):
                await respond(send, failure.status, b"text/plain; charset=utf-8", plain, extra)
                return
            fmt = choose_format(_header(headers, b"accept") or "")
            content_type, body = render_failure(failure, fmt)
            await respond(send, failure.status, content_type, body, extra)

        return app


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole small dev-page response (length known, never cached)."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def dev_mode(
    config: Config,
    emit: Callable[[Event], None],
    *,
    urls: tuple[str, ...],
    project_dirs: tuple[str, ...] = (),
    changed: tuple[str, ...] = (),
    livereload: LiveReload | None = None,
) -> DevMode | None:
    """The dev mode for `config` (None when every dev feature is off)."""
    bound = tuple(urlsplit(url).hostname or "" for url in urls if "://" in url)
    extra = (*config.allowed_hosts, "*") if config.uds is not None else config.allowed_hosts
    hosts = HostPolicy.build(extra, bound_hosts=(config.host, *bound), machine=machine_name())
    settings = DevSettings(
        hosts=hosts,
        debug_pages=config.debug_pages,
        app_name=config.app or "APP",
        root_path=config.root_path,
        project_dirs=project_dirs or (config.app_dir,),
        changed=changed,
        livereload=livereload,
    )
    return DevMode(settings, emit) if settings.is_needed else None
