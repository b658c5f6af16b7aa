"""Tests for devserve.codecache: the fork server's compiled project code (no processes)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from devserve import codecache


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty cache, and the import system's own compiler back after each test."""
    monkeypatch.setattr(codecache, "_compiled", {})
    monkeypatch.setattr(SourceFileLoader, "source_to_code", SourceFileLoader.source_to_code)
    yield


def _source(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_refresh_compiles_new_and_changed_files_only(tmp_path: Path) -> None:
    a, b = _source(tmp_path, "a.py", "A = 1\n"), _source(tmp_path, "b.py", "B = 2\n")
    assert codecache.refresh([a, b, a]) == 2
    assert codecache.cached_paths() == sorted([a, b])
    assert codecache.refresh([a, b]) == 0  # unchanged bytes: nothing compiled
    Path(a).write_text("A = 3\n")
    assert codecache.refresh([a, b]) == 1
    namespace: dict[str, object] = {}
    exec(codecache._compiled[a][1], namespace)  # noqa: S102 - the test's own source
    assert namespace["A"] == 3


def test_refresh_forgets_files_it_cannot_keep(tmp_path: Path) -> None:
    kept = _source(tmp_path, "kept.py", "X = 1\n")
    gone = _source(tmp_path, "gone.py", "X = 1\n")
    broken = _source(tmp_path, "broken.py", "X = 1\n")
    warns = _source(tmp_path, "warns.py", "X = 1\n")
    assert codecache.refresh([kept, gone, broken, warns]) == 4
    Path(gone).unlink()
    Path(broken).write_text("def f(:\n")
    Path(warns).write_text("PATTERN = '\\d'\n")  # an invalid escape: the worker must warn
    assert codecache.refresh([kept, gone, broken, warns]) == 0
    assert codecache.cached_paths() == [kept]


def test_refresh_leaves_large_files_to_the_import_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codecache, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(codecache, "MAX_TOTAL_BYTES", 150)
    small = _source(tmp_path, "small.py", "X = 1\n" * 10)  # 60 bytes
    large = _source(tmp_path, "large.py", "X = 1\n" * 20)  # 120 bytes
    more = _source(tmp_path, "more.py", "Y = 2\n" * 16)  # 96: over the total with small
    assert codecache.refresh([small, large, more]) == 1
    assert codecache.cached_paths() == [small]


def test_refresh_calls_between_after_each_compilation(tmp_path: Path) -> None:
    calls: list[int] = []
    paths = [_source(tmp_path, f"m{i}.py", f"N = {i}\n") for i in range(3)]
    codecache.refresh(paths, between=lambda: calls.append(1))
    assert len(calls) == 3
    codecache.refresh(paths, between=lambda: calls.append(1))
    assert len(calls) == 3  # nothing compiled, nothing to interleave


def _load(path: str, name: str) -> object:
    loader = SourceFileLoader(name, path)
    return loader.get_code(name)


def test_installed_imports_take_the_kept_code_for_identical_source_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path = _source(tmp_path, "cached_mod.py", "VALUE = 'kept'\n")
    codecache.refresh([path])
    kept = codecache._compiled[path][1]
    assert _load(path, "cached_mod") is not kept  # not installed: the import compiles
    codecache.install()
    codecache.install()  # twice is once
    assert _load(path, "cached_mod") is kept
    Path(path).write_text("VALUE = 'edit'\n")  # same length, new bytes: compiled afresh
    code = _load(path, "cached_mod")
    assert code is not kept
    namespace: dict[str, object] = {}
    exec(code, namespace)  # noqa: S102 - the test's own source
    assert namespace["VALUE"] == "edit"
    other = _source(tmp_path, "other_mod.py", "VALUE = 1\n")
    assert _load(other, "other_mod") is not None  # not kept: compiled as usual


def test_install_without_kept_code_changes_nothing() -> None:
    original = SourceFileLoader.source_to_code
    codecache.install()
    assert SourceFileLoader.source_to_code is original
