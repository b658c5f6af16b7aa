"""Dashboard states for snapshot tests and the README's SVG (scripts/render_tui_svg.py).

Each scenario feeds scripted events into a fresh `DashboardState` on a made-up clock and
returns it with the time its frame is drawn at, so the rendering is the same on every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from devserve.events import (
    AppErrored,
    AppOutput,
    ChangeDetected,
    Event,
    LogLine,
    ReloadFinished,
    RequestCompleted,
    ServerStarted,
    StartupFailed,
    TracebackFrame,
    WebSocketOpened,
)
from devserve.tui.state import DashboardState

ROOT = "/home/dev/shop"
URLS = ("http://127.0.0.1:8000",)
ROUTES = (
    ("GET", "/", "/", 1.2),
    ("GET", "/items/42", "/items/{item_id}", 3.5),
    ("GET", "/items/7", "/items/{item_id}", 2.9),
    ("POST", "/cart", "/cart", 8.0),
    ("GET", "/search?q=shoes", "/search", 45.0),
    ("GET", "/static/app.js", "/static/{path}", 0.6),
)


def _request(method: str, path: str, route: str, ms: float, status: int = 200) -> RequestCompleted:
    return RequestCompleted(
        method=method,
        path=path.split("?", maxsplit=1)[0],
        status=status,
        duration_ms=ms,
        bytes_in=0 if method == "GET" else 120,
        bytes_out=412 if status < 400 else 22,
        client="127.0.0.1:52144",
        http_version="1.1",
        scheme="http",
        route=route,
    )


ERROR = AppErrored(
    exc_type="KeyError",
    message="'price'",
    traceback=(
        "Traceback (most recent call last):\n"
        '  File "/venv/lib/python3.11/site-packages/starlette/routing.py", line 74, in app\n'
        "    response = await func(request)\n"
        f'  File "{ROOT}/app/routes.py", line 31, in checkout\n'
        "    total = cart_total(cart)\n"
        f'  File "{ROOT}/app/models.py", line 18, in cart_total\n'
        '    return sum(item["price"] * item["qty"] for item in cart)\n'
        "KeyError: 'price'\n"
    ),
    frames=(
        TracebackFrame(
            "/venv/lib/python3.11/site-packages/starlette/routing.py",
            74,
            "app",
            "response = await func(request)",
            is_user_code=False,
        ),
        TracebackFrame(
            f"{ROOT}/app/routes.py", 31, "checkout", "total = cart_total(cart)", is_user_code=True
        ),
        TracebackFrame(
            f"{ROOT}/app/models.py",
            18,
            "cart_total",
            'return sum(item["price"] * item["qty"] for item in cart)',
            is_user_code=True,
        ),
    ),
    method="POST",
    path="/checkout",
    response_started=False,
)

FAILURE = StartupFailed(
    stage="import",
    exc_type="SyntaxError",
    message="'(' was never closed",
    traceback=(
        f'  File "{ROOT}/app/models.py", line 22\n'
        "    def cart_total(cart:\n"
        "                  ^\n"
        "SyntaxError: '(' was never closed\n"
    ),
    filename=f"{ROOT}/app/models.py",
    lineno=22,
)


def _feed(state: DashboardState, events: list[tuple[float, Event]]) -> None:
    for at, event in events:
        state.apply(event, at)


def _started() -> DashboardState:
    state = DashboardState(root=ROOT)
    state.apply(ServerStarted(pid=4242, urls=URLS, app="app.main:app", startup_ms=48.0), 0.0)
    return state


def idle() -> tuple[DashboardState, float]:
    """Just started: no request yet."""
    return _started(), 1.0


def busy() -> tuple[DashboardState, float]:
    """A minute of traffic, a slow search, a websocket, a reload, app output."""
    state = _started()
    rng = random.Random(4)  # noqa: S311 - made-up traffic, the same on every run
    events: list[tuple[float, Event]] = []
    for second in range(60):
        for _ in range(rng.randint(5, 40)):
            method, path, route, ms = rng.choice(ROUTES)
            at = 1.0 + second + rng.random()
            status = 404 if rng.random() < 0.02 else 200
            events.append((at, _request(method, path, route, ms * rng.uniform(0.5, 2.0), status)))
    events.sort(key=lambda pair: pair[0])
    _feed(state, events)
    _feed(
        state,
        [
            (55.0, ChangeDetected(("app/models.py",))),
            (55.1, ReloadFinished(2, 84.0, ("app/models.py",), "swap", "fork", ok=True)),
            (58.0, WebSocketOpened("/ws/updates", ("127.0.0.1", 52150), None)),
            (59.0, AppOutput("stdout", "cart updated: 3 items")),
            (60.5, _request("GET", "/search?q=boots", "/search", 812.0)),
            (60.6, _request("GET", "/items/42", "/items/{item_id}", 2.1)),
            (60.7, _request("GET", "/items/42", "/items/{item_id}", 2.4)),
            (60.8, _request("GET", "/items/42", "/items/{item_id}", 1.9)),
        ],
    )
    return state, 61.0


def error() -> tuple[DashboardState, float]:
    """A request broke: its 500 and the user's frames."""
    state, _ = busy()
    _feed(state, [(61.0, ERROR), (61.01, _request("POST", "/checkout", "/checkout", 6.3, 500))])
    return state, 61.2


def reloading() -> tuple[DashboardState, float]:
    """A save was seen; the new worker is not ready yet."""
    state, _ = busy()
    state.apply(ChangeDetected(("app/routes.py", "app/models.py")), 61.0)
    return state, 61.1


def broken() -> tuple[DashboardState, float]:
    """The saved code does not import: the error is served until the next save."""
    state, _ = busy()
    _feed(
        state,
        [
            (61.0, ChangeDetected(("app/models.py",))),
            (61.05, FAILURE),
            (61.06, ReloadFinished(3, 41.0, ("app/models.py",), "swap", "fork", ok=False)),
            (61.5, LogLine("warning", "serving the error until the next save")),
        ],
    )
    return state, 62.0


SCENARIOS: dict[str, Callable[[], tuple[DashboardState, float]]] = {
    "idle": idle,
    "busy": busy,
    "error": error,
    "reloading": reloading,
    "broken": broken,
}
