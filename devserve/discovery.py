"""Find the app when no APP is given, without importing anything.

Looks, in order, at ``main.py``, ``app.py``, ``api.py``, ``asgi.py``, ``app/main.py``,
``app/__init__.py``, ``api/main.py``, ``src/main.py``, ``src/app.py``, ``src/<pkg>/main.py``
and ``src/<pkg>/app.py``, then any ``<dir>/asgi.py`` one level down (Django), for a
top-level assignment, import or definition of ``app``, ``api`` or ``application``. Files are
parsed with `ast`, so a broken or slow-to-import module cannot hurt discovery.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from devserve.appload import DEFAULT_ATTRS
from devserve.errors import AppLoadError

_CANDIDATES = (
    "main.py",
    "app.py",
    "api.py",
    "asgi.py",
    "app/main.py",
    "app/__init__.py",
    "api/main.py",
    "src/main.py",
    "src/app.py",
)


@dataclass(frozen=True, slots=True)
class Discovered:
    """A found application: ``app_string`` relative to ``app_dir``."""

    app_string: str
    app_dir: str
    source: Path


def discover(root: Path) -> Discovered:
    """Find the application under `root`.

    Raises:
        AppLoadError: nothing that looks like an ASGI app was found.
    """
    for path in _candidate_files(root):
        name = _app_name(path)
        if name is None:
            continue
        base = root / "src" if path.relative_to(root).parts[0] == "src" else root
        module = ".".join(path.relative_to(base).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        return Discovered(f"{module}:{name}", str(base), path)
    msg = (
        "no APP given and none found: looked for app/api/application in main.py, app.py, "
        "api.py, app/main.py, src/... (give one, like 'devserve main:app')"
    )
    raise AppLoadError(msg)


def _candidate_files(root: Path) -> list[Path]:
    files = [root / c for c in _CANDIDATES]
    src = root / "src"
    if src.is_dir():
        for pkg in sorted(p for p in src.iterdir() if (p / "__init__.py").is_file()):
            files += [pkg / "main.py", pkg / "app.py", pkg / "asgi.py"]
    files += sorted(root.glob("*/asgi.py"))
    return [f for f in files if f.is_file()]


def _app_name(path: Path) -> str | None:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return None
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    return next((n for n in DEFAULT_ATTRS if n in defined), None)
