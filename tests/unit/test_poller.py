"""Tests of `devserve.poller`: snapshots and their differences."""

from __future__ import annotations

from pathlib import Path

from watchfiles import Change

from devserve.poller import diff_snapshots, take_snapshot


def test_diff_snapshots() -> None:
    old = {"d": (True, 0, 1), "a": (False, 1, 1), "b": (False, 1, 1), "gone": (False, 1, 1)}
    new = {"d": (True, 0, 2), "a": (False, 1, 1), "b": (False, 1, 2), "new": (False, 1, 1)}
    assert diff_snapshots(old, new) == {
        (Change.modified, "b"),
        (Change.deleted, "gone"),
        (Change.added, "new"),
    }


def test_take_snapshot_flat_and_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("a")
    (tmp_path / "b.py").write_text("bb")
    flat = take_snapshot([str(tmp_path)], is_recursive=False)
    assert sorted(flat) == [str(tmp_path / "b.py"), str(tmp_path / "sub")]
    assert flat[str(tmp_path / "b.py")][:2] == (False, 2)
    deep = take_snapshot([str(tmp_path), str(tmp_path / "missing")], is_recursive=True)
    assert str(tmp_path / "sub" / "a.py") in deep
