"""Do a framework's first-request set-up while the swap happens, not inside the first request.

FastAPI (0.16x) builds the state of every route of an included router (its dependant, its
pydantic fields and type adapters) the first time a request is routed through that router:
about 10-14 ms for the reload bench's 9 included routes, paid by the first request after
every reload. Starlette routes answer `matches(scope)` without running anything of the app,
so walking the top-level routes once with a request no route serves (a made-up path holding
a NUL byte, which no HTTP request can carry) makes FastAPI build that state, and calls no
endpoint, no middleware, no dependency and no exception handler.

The worker does it right after it reported ready (`devserve.worker.Worker.serve`): the
supervisor is then telling the previous worker to stop accepting, which takes a few
milliseconds in which the new worker would otherwise sit idle, so the set-up overlaps the
swap instead of following it. A request arriving meanwhile waits in the backlog for the
same work it would have waited for inside the first request.

Only Starlette applications (FastAPI's included) are warmed up, recognised without importing
Starlette; anything else, and any exception a route raises while matching (the work is then
left to the first request, as without warm-up), is left alone.
"""

from __future__ import annotations

import sys
from typing import Any

#: The path routes are matched against: HTTP cannot carry a NUL byte, so no real request
#: (and no route meant for one) has it.
WARM_UP_PATH = "/\x00devserve-warm-up"


def warm_up_scope() -> dict[str, Any]:
    """A fresh HTTP scope for the made-up request the routes are matched against."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": WARM_UP_PATH,
        "raw_path": WARM_UP_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": None,
        "server": None,
        "state": {},
    }


def is_starlette_app(app: object) -> bool:
    """Whether `app` is a Starlette application (FastAPI is one); never imports Starlette."""
    applications = sys.modules.get("starlette.applications")
    starlette_class = getattr(applications, "Starlette", None)
    return isinstance(starlette_class, type) and isinstance(app, starlette_class)


def warm_up(app: object) -> int:
    """Match `app`'s top-level routes against a request none serves; return how many ran.

    Returns 0 for an app that is not a Starlette application. A route whose ``matches``
    raises is skipped (the first real request will do its work).
    """
    if not is_starlette_app(app):
        return 0
    routes = getattr(getattr(app, "router", None), "routes", None)
    if not isinstance(routes, list):
        return 0
    matched = 0
    for route in list(routes):
        matches = getattr(route, "matches", None)
        if not callable(matches):
            continue
        try:
            matches(warm_up_scope())
        except Exception:  # noqa: BLE001, S112 - the app's own code: leave it to the first request
            continue
        matched += 1
    return matched
