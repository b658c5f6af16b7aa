"""Tests of `devserve.warmup`: routes are matched, and nothing of the app runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Receive, Scope, Send

from devserve.warmup import WARM_UP_PATH, is_starlette_app, warm_up


class Recorder:
    """Counts what ran: endpoints, middleware, dependencies, route handling."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.matched: list[str] = []


class RecordingRoute(BaseRoute):
    def __init__(self, recorder: Recorder, *, fails: bool = False) -> None:
        self.recorder = recorder
        self.fails = fails

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.fails:
            raise KeyError("a route that wants a header")
        self.recorder.matched.append(scope["path"])
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.recorder.ran.append("route handle")


def recording_middleware(recorder: Recorder) -> type:
    class RecordingMiddleware:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            recorder.ran.append(f"middleware {scope['type']}")
            await self.app(scope, receive, send)

    return RecordingMiddleware


def test_a_starlette_app_is_matched_and_nothing_of_it_runs() -> None:
    recorder = Recorder()

    async def endpoint(request: Any) -> PlainTextResponse:
        recorder.ran.append("endpoint")
        return PlainTextResponse("x")

    app = Starlette(
        routes=[
            Route("/{anything}", endpoint),  # would match the made-up path: matched, not run
            RecordingRoute(recorder, fails=True),  # raises: skipped
            RecordingRoute(recorder),
            Mount("/", routes=[Route("/x", endpoint)]),
        ],
        middleware=[Middleware(recording_middleware(recorder))],
    )
    assert is_starlette_app(app)
    assert warm_up(app) == 3
    assert recorder.matched == [WARM_UP_PATH]
    assert recorder.ran == []


def test_fastapi_routes_are_built_without_calling_endpoints_or_dependencies() -> None:
    recorder = Recorder()

    def dependency() -> int:
        recorder.ran.append("dependency")
        return 1

    router = APIRouter(prefix="/api")

    @router.get("/items/{item_id}")
    def get_item(item_id: int, value: int = Depends(dependency)) -> dict[str, int]:
        recorder.ran.append("endpoint")
        return {"id": item_id}

    app = FastAPI()
    app.include_router(router)
    app.add_middleware(recording_middleware(recorder))

    @app.get("/version")
    def version() -> str:
        recorder.ran.append("version")
        return "v1"

    assert warm_up(app) == len(app.router.routes)
    assert recorder.ran == []
    # FastAPI 0.16x builds an included router's route state on first use: now built.
    included = [r for r in app.router.routes if hasattr(r, "_effective_candidates_version")]
    assert all(r._effective_candidates_version is not None for r in included)


def test_other_apps_are_left_alone() -> None:
    calls: list[object] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope)

    class NotStarlette:
        router = Starlette().router

    assert not is_starlette_app(app)
    assert warm_up(app) == 0
    assert warm_up(NotStarlette()) == 0
    assert calls == []
