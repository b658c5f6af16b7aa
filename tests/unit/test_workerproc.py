"""Tests for the pure helpers of devserve.workerproc (no processes)."""

from __future__ import annotations

import importlib.util
import py_compile
import types
from pathlib import Path

from devserve.workerproc import drop_saved_bytecode, split_modules


def _module(name: str, filename: str | None) -> types.ModuleType:
    module = types.ModuleType(name)
    if filename is not None:
        module.__file__ = filename
    return module


def test_split_modules_gives_third_party_names_and_project_sources(tmp_path: Path) -> None:
    project, site = tmp_path / "project", tmp_path / "site"
    modules = {
        "__main__": _module("__main__", str(site / "x.py")),
        "sys": _module("sys", None),
        "devserve.worker": _module("devserve.worker", str(site / "devserve/worker.py")),
        "main": _module("main", str(project / "main.py")),
        "pkg": _module("pkg", str(project / "pkg/__init__.py")),
        "pkg.native": _module("pkg.native", str(project / "pkg/native.so")),
        "fastapi": _module("fastapi", str(site / "fastapi/__init__.py")),
        "pydantic": _module("pydantic", str(site / "pydantic/__init__.py")),
        "anyio._backends._asyncio": _module("a", str(site / "anyio/_backends/_asyncio.py")),
    }
    names, sources = split_modules(modules, [str(project)])
    assert names == ("anyio._backends._asyncio", "fastapi", "pydantic")
    assert sources == (str(project / "main.py"), str(project / "pkg/__init__.py"))
    # A forked worker starts with the fork server's preloads: only newer imports count.
    known = frozenset({"fastapi", "pydantic", "main"})
    assert split_modules(modules, [str(project)], known) == (
        ("anyio._backends._asyncio",),
        (str(project / "pkg/__init__.py"),),
    )


def test_saved_files_lose_their_cached_bytecode(tmp_path: Path) -> None:
    other = tmp_path / "other"
    sources = [tmp_path / "app" / "models.py", other / "tool.py", tmp_path / "kept.py"]
    for source in sources:
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("X = 1\n")
        py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)))
    cached = [Path(importlib.util.cache_from_source(str(s))) for s in sources]
    assert all(c.is_file() for c in cached)
    # Relative to the first root holding them, as batches name them; or absolute.
    drop_saved_bytecode(
        ["app/models.py", str(other / "tool.py"), "page.html", "gone.py"], [str(tmp_path)]
    )
    assert [c.is_file() for c in cached] == [False, False, True]
