"""Tests for devserve.appload: APP strings, imports, attribute lookup and ASGI checks."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserve.appload import as_asgi3, load_app, split_app_string
from devserve.errors import AppLoadError

_counter = itertools.count()

ASGI3 = """
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": MARK})
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A fresh project directory; sys.path and sys.modules are restored afterwards."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    importlib.invalidate_caches()
    yield tmp_path
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        del sys.modules[name]


def _name(prefix: str = "dsapp") -> str:
    return f"{prefix}_{next(_counter)}_{id(_counter)}"


def _write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _app_module(root: Path, name: str, mark: bytes = b"ok", extra: str = "") -> Path:
    return _write(root, f"{name}.py", f"MARK = {mark!r}\n{ASGI3}\n{textwrap.dedent(extra)}")


async def _call(app: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": "/"}, receive, send)
    return sent


def _body(app: Any) -> bytes:
    messages = asyncio.run(_call(app))
    return b"".join(m.get("body", b"") for m in messages)


# -- split_app_string --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("main:app", ("main", "app", None)),
        ("pkg.mod:obj.sub", ("pkg.mod", "obj.sub", None)),
        ("main", ("main", None, None)),
        ("main:", ("main", None, None)),
    ],
)
def test_split_module_strings(app: str, expected: tuple[str, str | None, None]) -> None:
    assert split_app_string(app, Path()) == expected


@pytest.mark.parametrize("app", ["", ":app", "my-app:app", "1main:app", "a..b:app"])
def test_split_rejects_bad_module_names(app: str) -> None:
    with pytest.raises(AppLoadError, match="APP must look like"):
        split_app_string(app, Path())


def test_split_missing_file(project: Path) -> None:
    with pytest.raises(AppLoadError, match=r"no such file 'nope\.py'"):
        split_app_string("nope.py:app", project)


def test_split_file_in_nested_packages(project: Path) -> None:
    _write(project, "outer/__init__.py", "")
    _write(project, "outer/inner/__init__.py", "")
    _write(project, "outer/inner/web.py", "")
    result = split_app_string("outer/inner/web.py:app", project)
    assert result == ("outer.inner.web", "app", project.resolve())


def test_split_package_init_file(project: Path) -> None:
    _write(project, "pkg/__init__.py", "")
    assert split_app_string("pkg/__init__.py", project) == ("pkg", None, project.resolve())


# -- load_app ----------------------------------------------------------------------------


def test_module_colon_attr(project: Path) -> None:
    name = _name()
    _app_module(project, name, b"module:attr")
    app = load_app(f"{name}:app", app_dir=str(project))
    assert _body(app) == b"module:attr"
    assert sys.path[0] == str(project.resolve())


def test_module_colon_dotted_attr(project: Path) -> None:
    name = _name()
    extra = """
    class Holder:
        pass

    holder = Holder()
    holder.inner = Holder()
    holder.inner.app = app
    """
    _app_module(project, name, b"dotted", extra)
    app = load_app(f"{name}:holder.inner.app", app_dir=str(project))
    assert _body(app) == b"dotted"


def test_file_path(project: Path) -> None:
    name = _name()
    _app_module(project, name, b"file")
    assert _body(load_app(f"{name}.py", app_dir=str(project))) == b"file"


def test_file_path_with_attr(project: Path) -> None:
    name = _name()
    _app_module(project, name, b"file attr", "other = app\napp = None\n")
    assert _body(load_app(f"{name}.py:other", app_dir=str(project))) == b"file attr"


def test_file_in_package_with_relative_import(project: Path) -> None:
    pkg = _name("dspkg")
    _write(project, f"{pkg}/__init__.py", "")
    _write(project, f"{pkg}/helpers.py", "MARK = b'relative'\n")
    _write(project, f"{pkg}/web.py", "from .helpers import MARK\n" + ASGI3)
    app = load_app(f"{pkg}/web.py:app", app_dir=str(project))
    assert _body(app) == b"relative"
    assert f"{pkg}.web" in sys.modules


def test_file_in_package_below_plain_dir(project: Path) -> None:
    pkg = _name("dspkg")
    _write(project, f"services/{pkg}/__init__.py", "")
    _write(project, f"services/{pkg}/web.py", "from . import helpers\nMARK = helpers.M\n" + ASGI3)
    _write(project, f"services/{pkg}/helpers.py", "M = b'deep'\n")
    app = load_app(f"services/{pkg}/web.py", app_dir=str(project))
    assert _body(app) == b"deep"
    assert str((project / "services").resolve()) in sys.path


@pytest.mark.parametrize(
    ("defined", "expected"),
    [
        ({"app": b"a", "api": b"b", "application": b"c"}, b"a"),
        ({"api": b"b", "application": b"c"}, b"b"),
        ({"application": b"c"}, b"c"),
    ],
)
def test_default_attribute_order(project: Path, defined: dict[str, bytes], expected: bytes) -> None:
    name = _name()
    lines = []
    for attr, mark in defined.items():
        lines.append(
            f"async def {attr}(scope, receive, send):\n"
            f"    await send({{'type': 'http.response.body', 'body': {mark!r}}})\n"
        )
    _write(project, f"{name}.py", "\n".join(lines))
    assert _body(load_app(name, app_dir=str(project))) == expected


def test_no_default_attribute(project: Path) -> None:
    name = _name()
    _write(project, f"{name}.py", "web = None\n")
    with pytest.raises(AppLoadError, match=f"module '{name}' has no attribute named app / api"):
        load_app(name, app_dir=str(project))


def test_factory(project: Path) -> None:
    name = _name()
    extra = """
    calls = []

    def create_app():
        calls.append(1)
        return app
    """
    _app_module(project, name, b"factory", extra)
    app = load_app(f"{name}:create_app", app_dir=str(project), factory=True)
    assert _body(app) == b"factory"
    assert sys.modules[name].calls == [1]


def test_factory_not_callable(project: Path) -> None:
    name = _name()
    _write(project, f"{name}.py", "thing = 3\n")
    with pytest.raises(AppLoadError, match=r"not callable, so it cannot be an app factory"):
        load_app(f"{name}:thing", app_dir=str(project), factory=True)


def test_without_factory_a_factory_has_the_wrong_signature(project: Path) -> None:
    name = _name()
    _app_module(project, name, extra="def create_app():\n    return app\n")
    with pytest.raises(AppLoadError, match="does not take"):
        load_app(f"{name}:create_app", app_dir=str(project))


def test_missing_module(project: Path) -> None:
    name = _name("dsmissing")
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:app", app_dir=str(project))
    assert str(info.value) == (
        f"could not import module {name!r} (APP '{name}:app'): no such module"
    )
    assert info.value.__cause__ is None


def test_missing_submodule_of_missing_package(project: Path) -> None:
    name = _name("dsmissing")
    with pytest.raises(AppLoadError, match="no such module"):
        load_app(f"{name}.web:app", app_dir=str(project))


def test_missing_submodule_of_existing_package(project: Path) -> None:
    pkg = _name("dspkg")
    _write(project, f"{pkg}/__init__.py", "")
    with pytest.raises(AppLoadError, match="no such module"):
        load_app(f"{pkg}.nope:app", app_dir=str(project))


def test_import_error_of_another_module_propagates(project: Path) -> None:
    name = _name()
    missing = _name("dsdependency")
    _write(project, f"{name}.py", f"import {missing}\napp = None\n")
    with pytest.raises(ModuleNotFoundError) as info:
        load_app(f"{name}:app", app_dir=str(project))
    assert not isinstance(info.value, AppLoadError)
    assert info.value.name == missing


def test_other_exceptions_during_import_propagate(project: Path) -> None:
    name = _name()
    _write(project, f"{name}.py", "raise RuntimeError('user bug')\n")
    with pytest.raises(RuntimeError, match="user bug"):
        load_app(f"{name}:app", app_dir=str(project))


def test_missing_attribute(project: Path) -> None:
    name = _name()
    _app_module(project, name)
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:nope.sub", app_dir=str(project))
    assert str(info.value) == (
        f"attribute 'nope.sub' not found in module {name!r} (APP '{name}:nope.sub')"
    )


def test_not_callable(project: Path) -> None:
    name = _name()
    _write(project, f"{name}.py", "app = {'not': 'an app'}\n")
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:app", app_dir=str(project))
    assert str(info.value) == f"'{name}:app' is a dict, not an ASGI application"


def test_wrong_signature(project: Path) -> None:
    name = _name()
    _write(project, f"{name}.py", "def app(environ, start_response):\n    return []\n")
    with pytest.raises(AppLoadError, match=r"is callable but does not take \(scope, receive"):
        load_app(f"{name}:app", app_dir=str(project))


def test_asgi2_class_is_adapted(project: Path) -> None:
    name = _name()
    source = """
    class App:
        def __init__(self, scope):
            self.scope = scope

        async def __call__(self, receive, send):
            message = await receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            body = b"asgi2 " + self.scope["path"].encode() + b" " + message["type"].encode()
            await send({"type": "http.response.body", "body": body})
    """
    _write(project, f"{name}.py", source)
    app = load_app(f"{name}:App", app_dir=str(project))
    assert _body(app) == b"asgi2 / http.request"


# -- as_asgi3 ----------------------------------------------------------------------------


class _CallableInstance:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"instance"})


class _BadInstance:
    def __call__(self, scope: Any) -> None:
        return None


def test_callable_instance_is_accepted() -> None:
    app = _CallableInstance()
    result: object = as_asgi3(app, "x:app")
    assert result is app
    assert _body(app) == b"instance"


def test_callable_instance_with_wrong_signature() -> None:
    with pytest.raises(AppLoadError, match="does not take"):
        as_asgi3(_BadInstance(), "x:app")


def test_star_args_function_is_accepted() -> None:
    def app(*args: Any) -> None:
        return None

    result: object = as_asgi3(app, "x:app")
    assert result is app


def test_builtin_without_signature_is_trusted() -> None:
    result: object = as_asgi3(print, "x:app")
    assert result is print
