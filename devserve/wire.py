"""Events on the wire: each one a JSON-able dict tagged with its kind, and back.

`to_wire` reads an event's fields into a dict with the class name under ``"k"``;
`from_wire` rebuilds the event, turning JSON arrays back into the tuples events hold and
validating through the event's own constructor. `devserve.ipc` frames lists of them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from devserve.events import (
    AppErrored,
    ChangeDetected,
    Event,
    ModulesLoaded,
    ReloadFinished,
    ServerStarted,
    TracebackFrame,
    WebSocketOpened,
)

#: Every event class by name (the members of the `Event` union).
_KINDS: Mapping[str, type[Any]] = MappingProxyType(
    {cls.__name__: cls for cls in typing.get_args(Event)}
)


_TUPLE_FIELDS: Mapping[type[Any], tuple[str, ...]] = MappingProxyType(
    {
        ServerStarted: ("urls",),
        ModulesLoaded: ("names", "sources"),
        ChangeDetected: ("files",),
        ReloadFinished: ("files",),
    }
)


#: Field names per kind, read once: `dataclasses.asdict` deep-copies and cost 46 us for a
#: `RequestCompleted`, which a reload worker encodes for every request (now under 3 us).
_FIELD_NAMES: Mapping[type[Any], tuple[str, ...]] = MappingProxyType(
    {kind: tuple(f.name for f in dataclasses.fields(kind)) for kind in _KINDS.values()}
)
_FRAME_FIELDS = tuple(f.name for f in dataclasses.fields(TracebackFrame))


def to_wire(event: Event) -> dict[str, Any]:
    """Return a JSON-able dict for `event`, tagged with its kind under ``"k"``."""
    kind = type(event)
    wire = {name: getattr(event, name) for name in _FIELD_NAMES[kind]}
    if kind is AppErrored:  # the one event holding dataclasses
        wire["frames"] = [{n: getattr(f, n) for n in _FRAME_FIELDS} for f in wire["frames"]]
    wire["k"] = kind.__name__
    return wire


def from_wire(wire: Mapping[str, Any]) -> Event:
    """Rebuild an event from `to_wire` output.

    Raises:
        ValueError: unknown kind or fields that do not validate.
    """
    data = dict(wire)
    kind = _KINDS.get(str(data.pop("k", "")))
    if kind is None:
        msg = f"unknown event kind {wire.get('k')!r}"
        raise ValueError(msg)
    try:
        if kind is AppErrored:
            data["frames"] = tuple(TracebackFrame(**f) for f in data["frames"])
        for name in _TUPLE_FIELDS.get(kind, ()):  # JSON has arrays, events hold tuples
            data[name] = tuple(data[name])
        if kind is ModulesLoaded:
            data["patterns"] = tuple(tuple(p) for p in data.get("patterns", ()))
        if kind is WebSocketOpened and data["client"] is not None:
            data["client"] = tuple(data["client"])
        event: Event = kind(**data)
    except (TypeError, KeyError) as exc:
        msg = f"invalid {kind.__name__} event: {exc}"
        raise ValueError(msg) from None
    return event
