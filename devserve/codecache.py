"""The project's modules, compiled by the fork server ahead of the next reload.

A reload re-imports every module of the project, not just the saved one, and importing a
module whose source has no valid ``.pyc`` (``PYTHONDONTWRITEBYTECODE``, common in
containers; a read-only tree; the saved file itself) compiles it: about 1 ms per 100 lines,
the same work on every reload for the files nobody touched.

After each reload the worker reports the source files of the project modules it imported
(`devserve.events.ModulesLoaded`); the fork server reads them and compiles the ones whose
bytes changed (`refresh`). Compiling runs no code of the module. Its workers inherit the
compiled code and, once `install` ran, the import system takes it instead of compiling
again, but only for a file whose source bytes, as the import system just read them, are
exactly those that were compiled; anything else (a changed file, another optimisation
level) compiles as usual. A file whose compilation warns (an invalid escape sequence...) is
not kept, so the worker's own compilation still shows the warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from importlib.machinery import SourceFileLoader
from types import CodeType
from typing import Any

#: Source files larger than this are left to the import system (generated code...).
MAX_FILE_BYTES = 1024 * 1024
#: At most this much source is kept in all.
MAX_TOTAL_BYTES = 32 * 1024 * 1024

#: path (as the import system names it: the module's ``__file__``) -> (source, its code).
_compiled: dict[str, tuple[bytes, CodeType]] = {}


def refresh(paths: Iterable[str], between: Callable[[], None] = lambda: None) -> int:
    """Compile each file of `paths` whose bytes are new or changed; return how many.

    `between` runs after each compilation (the fork server serves a waiting fork request
    there). A file that cannot be read or compiled is forgotten: the import will report it.
    """
    compiled = 0
    total = sum(len(source) for source, _ in _compiled.values())
    for path in dict.fromkeys(paths):
        known = _compiled.pop(path, None)
        total -= len(known[0]) if known is not None else 0
        try:
            with open(path, "rb") as file:
                source = file.read(MAX_FILE_BYTES + 1)
        except OSError:
            continue
        if known is not None and known[0] == source:
            _compiled[path] = known
            total += len(source)
            continue
        if len(source) > MAX_FILE_BYTES or total + len(source) > MAX_TOTAL_BYTES:
            continue
        code = _compile_quietly(source, path)
        if code is not None:
            _compiled[path] = (source, code)
            total += len(source)
            compiled += 1
        between()
    return compiled


def _compile_quietly(source: bytes, path: str) -> CodeType | None:
    """Compile `source` as the import system would; None if it fails or warns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = compile(source, path, "exec", dont_inherit=True)
        except Exception:  # noqa: BLE001 - SyntaxError, RecursionError...: the import reports it
            return None
    return None if caught else code


def cached_paths() -> list[str]:
    """The files whose compiled code is kept, sorted."""
    return sorted(_compiled)


def install() -> None:
    """Make this process's imports take the kept code for unchanged source (a worker).

    Nothing happens when nothing is kept (a spawned worker, the first start).
    """
    if not _compiled or getattr(SourceFileLoader.source_to_code, "_devserve_cache", False):
        return
    compile_source = SourceFileLoader.source_to_code

    def source_to_code(self: Any, data: Any, path: Any, *, _optimize: int = -1) -> Any:
        known = _compiled.get(path) if _optimize == -1 else None
        if known is not None and known[0] == data:
            return known[1]
        return compile_source(self, data, path, _optimize=_optimize)

    source_to_code._devserve_cache = True  # type: ignore[attr-defined]
    source_to_code.__doc__ = compile_source.__doc__
    setattr(SourceFileLoader, "source_to_code", source_to_code)  # noqa: B010 - a method
