"""Tests for devserve.discovery: finding the app in a project tree without importing it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserve.discovery import Discovered, discover
from devserve.errors import AppLoadError

# Importing any of these would be visible in sys.modules (or print / raise).
BOOM = "raise RuntimeError('discovery must not import me')\n"


_TMP_NAMES = ("main", "app", "api", "asgi", "proj", "myproj", "notpkg", "web")


@pytest.fixture(autouse=True)
def _no_imports(tmp_path: Path) -> Iterator[None]:
    before = {name: sys.modules.get(name) for name in _TMP_NAMES}
    yield
    assert {name: sys.modules.get(name) for name in _TMP_NAMES} == before
    loaded_from_tmp = [
        name
        for name, module in list(sys.modules.items())
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path))
    ]
    assert loaded_from_tmp == []


def _write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_main_py_with_app(tmp_path: Path) -> None:
    source = _write(tmp_path, "main.py", BOOM + "app = object()\n")
    assert discover(tmp_path) == Discovered("main:app", str(tmp_path), source)


def test_app_py_with_api(tmp_path: Path) -> None:
    source = _write(tmp_path, "app.py", BOOM + "api: object = object()\n")
    assert discover(tmp_path) == Discovered("app:api", str(tmp_path), source)


def test_main_py_is_preferred_over_app_py(tmp_path: Path) -> None:
    _write(tmp_path, "app.py", "app = 1\n")
    _write(tmp_path, "main.py", "app = 1\n")
    assert discover(tmp_path).app_string == "main:app"


def test_file_without_app_is_passed_over(tmp_path: Path) -> None:
    _write(tmp_path, "main.py", "print('hello')\nother = 1\n")
    _write(tmp_path, "api.py", "def application(scope, receive, send): ...\n")
    assert discover(tmp_path).app_string == "api:application"


def test_app_is_preferred_over_api_and_application(tmp_path: Path) -> None:
    _write(tmp_path, "main.py", "application = 1\napi = 2\napp = 3\n")
    assert discover(tmp_path).app_string == "main:app"


def test_app_main_in_a_package(tmp_path: Path) -> None:
    _write(tmp_path, "app/__init__.py", "")
    source = _write(tmp_path, "app/main.py", "async def app(scope, receive, send): ...\n")
    assert discover(tmp_path) == Discovered("app.main:app", str(tmp_path), source)


def test_package_init(tmp_path: Path) -> None:
    source = _write(tmp_path, "app/__init__.py", "class app: ...\n")
    assert discover(tmp_path) == Discovered("app:app", str(tmp_path), source)


def test_src_main(tmp_path: Path) -> None:
    source = _write(tmp_path, "src/main.py", "app = 1\n")
    expected = Discovered("main:app", str(tmp_path / "src"), source)
    assert discover(tmp_path) == expected


def test_src_package_layout(tmp_path: Path) -> None:
    _write(tmp_path, "src/myproj/__init__.py", "")
    source = _write(tmp_path, "src/myproj/app.py", "app = 1\n")
    expected = Discovered("myproj.app:app", str(tmp_path / "src"), source)
    assert discover(tmp_path) == expected


def test_src_dir_without_init_is_not_a_package(tmp_path: Path) -> None:
    _write(tmp_path, "src/notpkg/main.py", "app = 1\n")
    with pytest.raises(AppLoadError):
        discover(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "from web import app\n",
        "from web import server as app\n",
        "from . import app\n",
        "import app\n",
    ],
)
def test_imports_count(tmp_path: Path, text: str) -> None:
    _write(tmp_path, "main.py", text)
    assert discover(tmp_path).app_string == "main:app"


def test_aliased_import_uses_the_alias(tmp_path: Path) -> None:
    _write(tmp_path, "main.py", "from web import app as web_app\n")
    with pytest.raises(AppLoadError):
        discover(tmp_path)


def test_nested_definitions_do_not_count(tmp_path: Path) -> None:
    _write(tmp_path, "main.py", "def make():\n    app = 1\n    return app\n")
    with pytest.raises(AppLoadError):
        discover(tmp_path)


def test_syntax_error_file_is_skipped(tmp_path: Path) -> None:
    _write(tmp_path, "main.py", "app = (\n")
    _write(tmp_path, "app.py", "app = 1\n")
    assert discover(tmp_path).app_string == "app:app"


def test_undecodable_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_bytes(b"app = '\xff\xfe'\n")
    _write(tmp_path, "api.py", "api = 1\n")
    assert discover(tmp_path).app_string == "api:api"


def test_django_style_asgi(tmp_path: Path) -> None:
    _write(tmp_path, "manage.py", "import sys\n")
    _write(tmp_path, "proj/__init__.py", "")
    _write(tmp_path, "proj/settings.py", "DEBUG = True\n")
    source = _write(
        tmp_path,
        "proj/asgi.py",
        "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n",
    )
    assert discover(tmp_path) == Discovered("proj.asgi:application", str(tmp_path), source)


def test_nothing_found(tmp_path: Path) -> None:
    _write(tmp_path, "main.py", "x = 1\n")
    _write(tmp_path, "README.md", "app = 1\n")
    with pytest.raises(AppLoadError) as info:
        discover(tmp_path)
    message = str(info.value)
    assert "no APP given and none found" in message
    assert "main.py" in message
    assert "devserve main:app" in message


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match="none found"):
        discover(tmp_path)
