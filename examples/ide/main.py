"""The app the IDE recipes beside this file run: ``main:app``.

``/`` says which process served it; ``/debug`` calls ``breakpoint()``, so a debugger (or
pdb in the terminal) stops there when devserve runs without ``--reload``.
"""

from __future__ import annotations

import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with the serving process's PID."""
    if scope["type"] != "http":
        return
    answer = f"served by pid {os.getpid()}"
    if scope["path"] == "/debug":
        breakpoint()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer.encode()})
