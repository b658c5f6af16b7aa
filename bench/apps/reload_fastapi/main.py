"""Reload bench app (FastAPI): ~11 routes over pydantic models; GET /version is plain text."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from routes import router
from version import VERSION

app = FastAPI(title="reload bench", version=VERSION)
app.include_router(router)


@app.get("/version", response_class=PlainTextResponse)
def version() -> str:
    """Return the version string the reload bench rewrites."""
    return VERSION


@app.get("/health")
def health() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok"}
