"""``--ui json``: one JSON object per event per line on stdout, for tools and agents.

Every event is written, as its fields plus two keys every object has::

    {"type": "request_completed", "time": "2026-12-01T05:50:00.123Z", "method": "GET",
     "path": "/", "status": 200, "duration_ms": 1.8, ..., "route": null}

(one line in the real output). ``type`` is the event's class name in snake case
(`event_type`); ``time`` is when devserve wrote it, UTC, millisecond precision. The other
keys are the event's dataclass fields (`devserve.events`), under the same names, with
tuples as arrays and floats rounded to 3 decimal places; an `AppErrored`'s ``frames`` are
objects. Field names only ever grow.
The app's own output arrives as ``{"type": "app_output", "stream": "stdout", "line": ...}``
and the exit summary as one ``{"type": "summary", ...}`` object (`devserve.summary`).

Lines are flushed as they are written unless ``is_batched``: then the lines of one
event-loop iteration are written together at its end (the supervisor's loop runs no app
code, so that is prompt; single-process mode writes each line at once).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TextIO

from devserve.events import Event
from devserve.linesink import LineSink
from devserve.summary import summary_record
from devserve.tui.stats import StatsSummary

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
#: One encoder for every line (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _type_name(cls: type[Any]) -> str:
    return _CAMEL.sub("_", cls.__name__).lower().replace("web_socket", "websocket")


#: event class -> (type name, field names), worked out once.
_KINDS: Mapping[type[Any], tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        cls: (_type_name(cls), tuple(f.name for f in dataclasses.fields(cls)))
        for cls in typing.get_args(Event)
    }
)


def event_type(event: Event) -> str:
    """The ``type`` of `event` in JSON output: ``RequestCompleted`` -> ``request_completed``."""
    return _KINDS[type(event)][0]


@functools.lru_cache(maxsize=4)
def _second(whole_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole_s))


def format_time(epoch_s: float) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-12-01T05:50:00.123Z``."""
    whole_s = int(epoch_s)
    return f"{_second(whole_s)}{int((epoch_s - whole_s) * 1000):03d}Z"


def rounded(value: Any) -> Any:
    """`value` with every float rounded to microseconds' worth of milliseconds (3 places)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def event_record(event: Event, epoch_s: float) -> dict[str, Any]:
    """The JSON object for `event` written at wall-clock time `epoch_s`.

    Built field by field (no deep copy): this runs once per request.
    """
    name, fields = _KINDS[type(event)]
    record: dict[str, Any] = {"type": name, "time": format_time(epoch_s)}
    for field in fields:
        value = getattr(event, field)
        if isinstance(value, float):
            value = round(value, 3)
        elif field == "frames":
            value = [dataclasses.asdict(frame) for frame in value]
        elif isinstance(value, tuple):  # ModulesLoaded.patterns holds tuples in a tuple
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        record[field] = value
    return record


class JsonReporter:
    """Write each event as one JSON line to `stream`.

    Args:
        stream: where lines go (stdout).
        is_batched: write the lines of one event-loop iteration together (see module notes).
        wall_clock: seconds since the epoch, for ``time``.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        is_batched: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.wall_clock = wall_clock
        self._sink = LineSink(stream, is_batched=is_batched)

    def __call__(self, event: Event) -> None:
        """Report one event."""
        self._write(event_record(event, self.wall_clock()))

    def finish(self, summary: StatsSummary) -> None:
        """Write the exit summary object, then flush."""
        self._write(
            {
                "type": "summary",
                "time": format_time(self.wall_clock()),
                **rounded(summary_record(summary)),
            }
        )
        self.flush()

    @property
    def is_batched(self) -> bool:
        """Whether lines wait for the end of the event-loop iteration."""
        return self._sink.is_batched

    def flush(self) -> None:
        """Write buffered lines now."""
        self._sink.flush()

    def _write(self, record: dict[str, Any]) -> None:
        self._sink.add(_ENCODER.encode(record) + "\n")
