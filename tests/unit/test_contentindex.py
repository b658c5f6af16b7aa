"""Pure tests of `devserve.contentindex`: the content checks."""

from __future__ import annotations

from devserve.contentindex import (
    ContentIndex,
    FileState,
    Observation,
    reconcile,
    significant_changes,
)


def test_significant_changes_drops_unchanged_content() -> None:
    index = ContentIndex(
        {"a": FileState(1, 10, b"A"), "b": FileState(1, 10, b"B"), "big": FileState(9, 10)}
    )
    observations = [
        Observation("a", FileState(1, 99, b"A")),  # rewritten, same bytes
        Observation("b", FileState(1, 99, b"b")),  # real edit
        Observation("new", FileState(1, 1, b"N")),  # first seen
        Observation("big", FileState(9, 10)),  # no digest, same stat
    ]
    assert significant_changes(observations, index) == {"b", "new"}


def test_significant_changes_deletions() -> None:
    index = ContentIndex({"a": FileState(1, 10, b"A"), "big": FileState(9, 10)})
    observations = [Observation("a", None), Observation("tmp", None)]
    assert significant_changes(observations, index) == {"a"}
    incomplete = ContentIndex({}, is_complete=False)
    assert significant_changes([Observation("tmp", None)], incomplete) == {"tmp"}
    assert significant_changes([Observation("big", FileState(9, 11))], index) == {"big"}


def test_index_records_observations() -> None:
    index = ContentIndex({"a": FileState(1, 10, b"A")})
    index.record([Observation("a", None), Observation("b", FileState(2, 3, b"B"))])
    assert index.paths() == ("b",)
    assert index.get("b") == FileState(2, 3, b"B")


def test_reconcile_reports_new_and_restatted_files() -> None:
    index = ContentIndex({"a": FileState(1, 10, b"A"), "b": FileState(1, 10, b"B")})
    assert reconcile([("a", 1, 10), ("b", 1, 11), ("c", 5, 5)], index) == {"b", "c"}
