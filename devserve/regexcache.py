"""Regular expressions a worker compiled, so that the fork server compiles them once for all.

Python keeps compiled patterns in a per-process cache (`re`'s private ``_cache``, plus
``_cache2`` from 3.12). A worker forked from the fork server starts with the server's cache,
so a pattern compiled there costs the worker nothing. Frameworks compile many on every app
import: a route regex per path, and, through `inspect.signature` on a builtin (pydantic
does it for ``default_factory=list``), the whole tokenizer grammar. On the reload bench's
FastAPI app that was 6-8 ms of CPU per reload, all of the difference between a cold and a
warmed process.

The worker reports the patterns added to its cache since it started (`new_patterns`); the
fork server compiles them (`compile_patterns`). Compiling a pattern runs no project code:
it is as safe as preloading third-party modules. Patterns with flags other than the plain
ones (``re.DEBUG`` prints, ``re.TEMPLATE`` warns) are never reported nor compiled.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Container, Iterable
from typing import TypeAlias

#: ("s" for str or "b" for bytes, the pattern (bytes as latin-1), the flags passed).
Pattern: TypeAlias = tuple[str, str, int]
#: Patterns per report (the cache itself holds 512 in CPython 3.10-3.13).
MAX_PATTERNS = 256
#: Longer patterns are left alone: rare, and not worth the channel.
MAX_PATTERN_CHARS = 8192
PLAIN_FLAGS = int(
    re.IGNORECASE | re.LOCALE | re.MULTILINE | re.DOTALL | re.UNICODE | re.VERBOSE | re.ASCII
)


def _as_pattern(key: object) -> Pattern | None:
    """A cache key ``(type, pattern, flags)`` as a `Pattern`, or None if it is not plain."""
    if not isinstance(key, tuple) or len(key) != 3:  # noqa: PLR2004 - the key's shape
        return None
    kind, text, flags = key
    if not isinstance(flags, int) or flags & ~PLAIN_FLAGS:
        return None
    if kind is str and isinstance(text, str) and len(text) <= MAX_PATTERN_CHARS:
        return ("s", text, flags)
    if kind is bytes and isinstance(text, bytes) and len(text) <= MAX_PATTERN_CHARS:
        return ("b", text.decode("latin-1"), flags)
    return None


def cached_patterns() -> list[Pattern]:
    """The plain patterns in this process's `re` cache, oldest first, each once."""
    found: dict[Pattern, None] = {}
    for name in ("_cache2", "_cache"):
        cache = getattr(re, name, None)
        if not isinstance(cache, dict):
            continue
        for key in list(cache):
            pattern = _as_pattern(key)
            if pattern is not None:
                found[pattern] = None
    return list(found)


def new_patterns(known: Container[Pattern]) -> tuple[Pattern, ...]:
    """Patterns compiled since `known` was taken, the newest `MAX_PATTERNS` of them."""
    fresh = [pattern for pattern in cached_patterns() if pattern not in known]
    return tuple(fresh[-MAX_PATTERNS:])


def is_pattern(value: object) -> bool:
    """Whether `value` is a well-formed `Pattern` (for validating what crossed the wire)."""
    return (
        isinstance(value, tuple)
        and len(value) == 3  # noqa: PLR2004 - the tuple's shape
        and value[0] in {"s", "b"}
        and isinstance(value[1], str)
        and isinstance(value[2], int)
        and not isinstance(value[2], bool)
    )


def compile_patterns(patterns: Iterable[Pattern]) -> int:
    """Compile each pattern (so it lands in `re`'s cache); return how many compiled."""
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind, text, flags in patterns:
            if flags & ~PLAIN_FLAGS or len(text) > MAX_PATTERN_CHARS:
                continue
            try:
                source: str | bytes = text if kind == "s" else text.encode("latin-1")
                re.compile(source, flags)
            except (re.error, ValueError, TypeError, OverflowError, RecursionError):
                continue
            count += 1
    return count
