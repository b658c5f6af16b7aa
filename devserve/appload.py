"""Import the user's application from an APP string (worker side only).

Accepted forms::

    module:attr          package.module:attr.sub        module (attr: app/api/application)
    path/to/file.py      path/to/file.py:attr

A file path is turned into a dotted module name by walking up through parent directories
that are packages (have ``__init__.py``), so relative imports inside the app keep working;
the first non-package directory is put on ``sys.path``.

Errors the user can cause raise `AppLoadError` with one clear sentence. An exception raised
*by the user's code while importing* is not ours to hide: it propagates with its traceback.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from devserve.errors import AppLoadError

if TYPE_CHECKING:
    from devserve.asgi import ASGIApp

DEFAULT_ATTRS = ("app", "api", "application")


def split_app_string(app: str, app_dir: Path) -> tuple[str, str | None, Path | None]:
    """Split an APP string into (module name, attribute or None, directory for sys.path)."""
    target, _, attr = app.partition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = (app_dir / target).resolve()
        if not path.is_file():
            msg = f"no such file {target!r} (APP {app!r})"
            raise AppLoadError(msg)
        parts = [path.stem] if path.stem != "__init__" else []
        parent = path.parent
        while (parent / "__init__.py").is_file() and parent.parent != parent:
            parts.insert(0, parent.name)
            parent = parent.parent
        return ".".join(parts), attr or None, parent
    if not target or not all(p.isidentifier() for p in target.split(".")):
        msg = f"APP must look like 'module:attribute' or 'path/to/file.py', got {app!r}"
        raise AppLoadError(msg)
    return target, attr or None, None


def load_app(app: str, *, app_dir: str = ".", factory: bool = False) -> ASGIApp:
    """Import and return the ASGI application named by `app`.

    Args:
        app: the APP string.
        app_dir: directory put first on ``sys.path``.
        factory: call the named attribute (with no arguments) to get the app.

    Raises:
        AppLoadError: the module or attribute does not exist, or is not an ASGI callable.
    """
    base = Path(app_dir).resolve()
    module_name, attr, extra_path = split_app_string(app, base)
    for entry in (extra_path, base):
        if entry is not None and str(entry) not in sys.path:
            sys.path.insert(0, str(entry))
    module = _import(module_name, app)
    obj = _resolve(module, attr, app)
    if factory:
        if not callable(obj):
            msg = f"{app!r} is not callable, so it cannot be an app factory (--factory)"
            raise AppLoadError(msg)
        obj = obj()
    return as_asgi3(obj, app)


def _import(module_name: str, app: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            msg = f"could not import module {module_name!r} (APP {app!r}): no such module"
            raise AppLoadError(msg) from None
        raise


def _resolve(module: Any, attr: str | None, app: str) -> Any:
    if attr is None:
        for name in DEFAULT_ATTRS:
            if hasattr(module, name):
                return getattr(module, name)
        msg = f"module {module.__name__!r} has no attribute named {' / '.join(DEFAULT_ATTRS)}"
        raise AppLoadError(msg)
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            msg = f"attribute {attr!r} not found in module {module.__name__!r} (APP {app!r})"
            raise AppLoadError(msg) from None
    return obj


def as_asgi3(obj: Any, app: str) -> ASGIApp:
    """Check that `obj` is an ASGI 3 callable; adapt an ASGI 2 class.

    Raises:
        AppLoadError: not callable, or a signature ASGI cannot call.
    """
    if not callable(obj):
        msg = f"{app!r} is a {type(obj).__name__}, not an ASGI application"
        raise AppLoadError(msg)
    target = obj.__call__ if not (inspect.isfunction(obj) or inspect.isclass(obj)) else obj
    if inspect.isclass(obj):
        try:
            arity = len(inspect.signature(obj).parameters)
        except (TypeError, ValueError):
            arity = -1
        if arity == 1:
            return _asgi2_adapter(obj)
    try:
        inspect.signature(target).bind(None, None, None)
    except TypeError:
        msg = f"{app!r} is callable but does not take (scope, receive, send)"
        raise AppLoadError(msg) from None
    except ValueError:  # builtins without signatures: trust them
        pass
    return cast("ASGIApp", obj)


def _asgi2_adapter(cls: Callable[[Any], Any]) -> ASGIApp:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        instance = cls(scope)
        await instance(receive, send)

    return app
