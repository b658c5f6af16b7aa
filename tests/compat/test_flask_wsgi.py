"""A Flask (WSGI) app behind asgiref's ``WsgiToAsgi`` adapter: the ``flask run`` migration path.

devserve serves ASGI only; a WSGI app needs the adapter (documented in the README's
migration section). Routes, a form POST and an edit under ``--reload``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.compat.serving import devserve, reload_after_edit, write_files

pytest.importorskip("flask", reason="Flask is not installed (pip install -e '.[test]')")
pytest.importorskip("asgiref", reason="asgiref (WsgiToAsgi) is not installed")

MAIN = """
from asgiref.wsgi import WsgiToAsgi
from flask import Flask, request

flask_app = Flask(__name__)


@flask_app.route("/")
def index():
    return "flask v1"


@flask_app.post("/echo")
def echo():
    return {"name": request.form["name"], "length": request.content_length}


app = WsgiToAsgi(flask_app)
"""


def test_flask_through_wsgi_to_asgi(tmp_path: Path) -> None:
    write_files(tmp_path, {"main.py": MAIN})
    with devserve(tmp_path, "main:app") as cli, httpx.Client(base_url=cli.url, timeout=5) as client:
        assert client.get("/").text == "flask v1"
        assert client.post("/echo", data={"name": "x" * 10}).json() == {
            "name": "x" * 10,
            "length": 15,
        }
        assert client.get("/missing").status_code == 404
        # asgiref's bridge keeps state in context variables: none may leak between the
        # requests of one keep-alive connection (it used to fail about 1 in 10 with a 500).
        statuses = [
            (client.get("/") if n % 2 else client.post("/echo", data={"name": "n"})).status_code
            for n in range(40)
        ]
        assert statuses == [200] * 40


def test_flask_reload_edits_a_view(tmp_path: Path) -> None:
    write_files(tmp_path, {"main.py": MAIN})
    with devserve(tmp_path, "main:app", reload=True) as cli:
        reload_after_edit(cli, tmp_path / "main.py", "/", "flask v1", "flask v2")
