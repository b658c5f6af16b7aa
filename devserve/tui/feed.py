"""Turn the event stream into `Stats` calls: one place decides what each fact counts as. Pure.

Every output mode feeds the same `Stats` through `record_event`, so the live dashboard, the
exit summary of ``--ui plain`` and that of ``--ui json`` agree exactly.

What counts:

- `RequestCompleted`: one request, under its route template when the app exposes one, else
  its path.
- `AppErrored`: an app exception, but only when the response had already started. One
  raised before the response is answered with a 500 whose `RequestCompleted` already counts
  as an error, and counting both would count the request twice (see `devserve.tui.stats`).
  A lifespan error (no method) counts with no route.
- `WebSocketOpened` / `WebSocketClosed`: the open-websocket gauge.
- `ReloadFinished`: one reload (``ok`` False: a failed one).
- `EventsDropped`: the worker's dropped-event count.

Everything else (lifecycle, log lines, app output) changes no figure.
"""

from __future__ import annotations

from devserve.events import (
    AppErrored,
    Event,
    EventsDropped,
    ReloadFinished,
    RequestCompleted,
    WebSocketClosed,
    WebSocketOpened,
)
from devserve.tui.stats import Stats


def record_event(stats: Stats, event: Event, now_s: float) -> None:
    """Count `event` in `stats` at monotonic time `now_s` (see the module notes)."""
    if type(event) is RequestCompleted:  # one per request: before the match, positionally
        stats.record_request(
            now_s,
            event.method,
            event.route or event.path,
            event.status,
            event.duration_ms,
            event.bytes_in,
            event.bytes_out,
        )
        return
    match event:
        case AppErrored():
            if not event.method:
                stats.record_error(now_s, None)
            elif event.response_started:
                stats.record_error(now_s, event.path)
        case WebSocketOpened():
            stats.websocket_opened()
        case WebSocketClosed():
            stats.websocket_closed()
        case ReloadFinished():
            stats.record_reload(now_s, event.duration_ms, event.files, event.strategy, event.ok)
        case EventsDropped():
            stats.record_dropped(event.count)
        case _:
            pass
