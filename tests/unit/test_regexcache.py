"""Tests for devserve.regexcache: what a worker reports and what the fork server compiles."""

from __future__ import annotations

import re
import uuid

from devserve.regexcache import (
    MAX_PATTERN_CHARS,
    MAX_PATTERNS,
    cached_patterns,
    compile_patterns,
    new_patterns,
)


def _unique(label: str) -> str:
    return f"^/{label}/{uuid.uuid4().hex}/(?P<id>[^/]+)$"


def test_new_patterns_lists_what_was_compiled_since_known() -> None:
    known = frozenset(cached_patterns())
    text, data = _unique("route"), _unique("bytes").encode()
    re.compile(text)
    re.compile(data, re.IGNORECASE)
    fresh = new_patterns(known)
    assert ("s", text, 0) in fresh
    assert ("b", data.decode("latin-1"), int(re.IGNORECASE)) in fresh
    assert not set(fresh) & known


def test_patterns_with_debug_flags_or_huge_bodies_are_never_reported() -> None:
    known = frozenset(cached_patterns())
    huge = "a" * (MAX_PATTERN_CHARS + 1) + _unique("huge")
    re.compile(huge)
    assert all(text != huge for _, text, _ in new_patterns(known))


def test_compile_patterns_fills_the_cache_and_skips_what_cannot_compile() -> None:
    text, data = _unique("warm"), _unique("warmb").encode()
    count = compile_patterns(
        [
            ("s", text, 0),
            ("b", data.decode("latin-1"), 0),
            ("s", "(unbalanced", 0),  # re.error
            ("b", "\\d+", int(re.LOCALE)),  # LOCALE is fine on bytes
            ("s", "x", int(re.DEBUG)),  # would print: refused
            ("s", "[", 0),
        ]
    )
    assert count == 3
    assert ("s", text, 0) in cached_patterns()
    assert ("b", data.decode("latin-1"), 0) in cached_patterns()


def test_reports_are_bounded() -> None:
    known = frozenset(cached_patterns())
    for index in range(MAX_PATTERNS + 10):
        re.compile(_unique(f"many{index}"))
    assert len(new_patterns(known)) == MAX_PATTERNS
