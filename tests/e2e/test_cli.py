"""The real `devserve` command: startup, errors users cause, frameworks, shutdown."""

from __future__ import annotations

import contextlib
import signal
import socket
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from devserve import __version__
from tests.helpers import (
    SLOW_APP,
    assert_no_children,
    has_open_connection,
    run_cli,
    start_cli,
    start_server_cli,
    stop_cli,
    wait_until,
)

HELLO = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_version(tmp_path: Path) -> None:
    result = run_cli(["--version"], tmp_path)
    assert result.returncode == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["main:app", "--port", "abc"], {}, "invalid value for --port (from command line)"),
        (["main:app"], {"DEVSERVE_PORT": "70000"}, "(from environment variable DEVSERVE_PORT)"),
        (["main:app", "--loop", "tokio"], {}, "invalid value for --loop (from command line)"),
        (
            ["main:app", "--timeout-keep-alive", "-1"],
            {},
            "--timeout-keep-alive (from command line)",
        ),
        (["main:app", "--forwarded-allow-ips", "nope"], {}, "--forwarded-allow-ips"),
    ],
)
def test_bad_values_name_option_and_source(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    write(tmp_path / "main.py", HELLO)
    result = run_cli(args, tmp_path, env=env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_pyproject_values_and_their_errors(tmp_path: Path) -> None:
    write(tmp_path / "main.py", HELLO)
    write(tmp_path / "pyproject.toml", '[tool.devserve]\nport = "eighty"\n')
    result = run_cli(["main:app"], tmp_path)
    assert result.returncode == 2
    assert "invalid value for --port (from pyproject.toml [tool.devserve])" in result.stderr
    write(tmp_path / "pyproject.toml", "[tool.devserve]\nprot = 1\n")
    result = run_cli(["main:app"], tmp_path)
    assert result.returncode == 2
    assert "unknown key 'prot' in [tool.devserve]" in result.stderr


@pytest.mark.parametrize(
    ("app", "source", "expected"),
    [
        ("nosuchmodule:app", HELLO, "could not import module 'nosuchmodule'"),
        ("main:nope", HELLO, "attribute 'nope' not found in module 'main'"),
        ("main:app", "app = 42\n", "is a int, not an ASGI application"),
        ("main:app", "def app(scope):\n    pass\n", "does not take (scope, receive, send)"),
        ("not a module", HELLO, "APP must look like"),
    ],
)
def test_bad_app_is_one_line_and_exit_3(
    tmp_path: Path, app: str, source: str, expected: str
) -> None:
    write(tmp_path / "main.py", source)
    result = run_cli([app, "--port", "0"], tmp_path)
    assert result.returncode in {2, 3}
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_import_error_in_user_code_shows_its_traceback(tmp_path: Path) -> None:
    write(tmp_path / "main.py", "import json\nraise ValueError('broken config')\n")
    result = run_cli(["main:app", "--port", "0"], tmp_path)
    assert result.returncode == 3
    assert "ValueError: broken config" in result.stderr
    assert 'main.py", line 2' in result.stderr


def test_port_in_use(tmp_path: Path) -> None:
    write(tmp_path / "main.py", HELLO)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["main:app", "--port", str(port)], tmp_path)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_lifespan_startup_failure_exits_nonzero_with_message(tmp_path: Path) -> None:
    write(
        tmp_path / "main.py",
        """
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                await receive()
                await send({"type": "lifespan.startup.failed", "message": "database is down"})
        """,
    )
    result = run_cli(["main:app", "--port", "0"], tmp_path)
    assert result.returncode == 3
    assert "application startup failed: database is down" in result.stderr


def test_discovers_app_and_says_so(tmp_path: Path) -> None:
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "main.py", "from .views import app\n")
    write(tmp_path / "app" / "views.py", HELLO)
    cli = start_server_cli([], tmp_path)
    try:
        assert "using app app.main:app (found in app/main.py)" in cli.output()
        assert httpx.get(cli.url, timeout=5).text == "hello"
    finally:
        assert stop_cli(cli) == 0
    assert_no_children(cli.proc.pid)


def test_file_path_app(tmp_path: Path) -> None:
    write(tmp_path / "svc" / "api.py", HELLO)
    cli = start_server_cli(["svc/api.py"], tmp_path)
    try:
        assert httpx.get(cli.url, timeout=5).text == "hello"
    finally:
        assert stop_cli(cli) == 0


FASTAPI_APP = """
from contextlib import asynccontextmanager
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

@asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hi"}

app = FastAPI(lifespan=lifespan)

class Item(BaseModel):
    name: str
    price: float

@app.get("/items/{item_id}")
async def read_item(item_id: int, request: Request):
    return {"item_id": item_id, "greeting": request.state.greeting}

@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "price": item.price}

@app.get("/stream")
async def stream():
    async def gen():
        for i in range(3):
            yield f"{i}\\n"
    return StreamingResponse(gen())
"""

STARLETTE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def home(request):
    body = await request.body()
    return PlainTextResponse(f"starlette {request.method} {len(body)}")

app = Starlette(routes=[Route("/", home, methods=["GET", "POST"])])
"""


def test_fastapi_end_to_end(tmp_path: Path) -> None:
    write(tmp_path / "main.py", FASTAPI_APP)
    cli = start_server_cli(["main:app"], tmp_path)
    try:
        with httpx.Client(base_url=cli.url, timeout=5) as client:
            assert client.get("/items/3").json() == {"item_id": 3, "greeting": "hi"}
            assert client.post("/items", json={"name": "a", "price": 2}).json() == {
                "name": "a",
                "price": 2.0,
            }
            assert client.post("/items", json={"name": "a"}).status_code == 422
            assert client.get("/stream").text == "0\n1\n2\n"
            assert client.get("/missing").status_code == 404
            assert client.get("/items/4", params={"q": "a b"}).status_code == 200
        cli.wait_for(r'"GET /items/3 HTTP/1.1" 200 OK [0-9.]+ ms')
        cli.wait_for(r'"GET /items/4\?q=a\+b HTTP/1.1" 200 OK')  # the query is logged, as sent
    finally:
        assert stop_cli(cli) == 0
    assert_no_children(cli.proc.pid)


def test_starlette_end_to_end(tmp_path: Path) -> None:
    write(tmp_path / "main.py", STARLETTE_APP)
    cli = start_server_cli(["main:app", "--no-access-log"], tmp_path)
    try:
        assert httpx.post(cli.url, content=b"abc", timeout=5).text == "starlette POST 3"
    finally:
        assert stop_cli(cli) == 0


def test_ctrl_c_lets_in_flight_request_finish(tmp_path: Path) -> None:
    write(tmp_path / "main.py", SLOW_APP)
    cli = start_server_cli(["main:app"], tmp_path)
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(httpx.get(cli.url + "/?1", timeout=10)))
    thread.start()
    wait_until(lambda: any("GET" in line for line in cli.lines) or thread.is_alive(), 5)
    # The request is in flight when the signal arrives.
    wait_until(lambda: has_open_connection(cli.proc.pid), 5)
    code = stop_cli(cli, signal.SIGINT)
    thread.join(10)
    assert code == 0
    assert result and result[0].text == "finished"
    assert "lifespan shutdown ran" in cli.output()
    assert_no_children(cli.proc.pid)


def test_graceful_shutdown_is_bounded_and_second_signal_forces(tmp_path: Path) -> None:
    write(tmp_path / "main.py", SLOW_APP)
    cli = start_server_cli(["main:app", "--timeout-graceful-shutdown", "30"], tmp_path)
    thread = threading.Thread(
        target=lambda: _swallow(lambda: httpx.get(cli.url + "/?60", timeout=20))
    )
    thread.start()
    wait_until(lambda: has_open_connection(cli.proc.pid), 5)
    cli.proc.send_signal(signal.SIGINT)
    cli.wait_for("shutting down")
    code = stop_cli(cli, signal.SIGINT, timeout_s=5)
    assert code == 0
    thread.join(10)
    assert_no_children(cli.proc.pid)


def _swallow(func: object) -> None:
    with contextlib.suppress(httpx.HTTPError):
        func()  # type: ignore[operator]


def test_bundled_examples_serve(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    for app, path, expected in (
        ("hello.py", "/x", "Hello from devserve! You asked for /x\n"),
        ("fastapi_app.py", "/", '{"message":"Hello from devserve"}'),
    ):
        cli = start_server_cli([str(examples / app)], tmp_path)
        try:
            assert httpx.get(cli.url + path, timeout=5).text == expected
        finally:
            assert stop_cli(cli) == 0
        assert_no_children(cli.proc.pid)


def test_serves_an_inherited_socket_with_fd(tmp_path: Path) -> None:
    write(tmp_path / "main.py", HELLO)
    outer = socket.create_server(("127.0.0.1", 0))
    with outer:
        port = outer.getsockname()[1]
        cli = start_cli(
            ["main:app", "--fd", str(outer.fileno())], tmp_path, pass_fds=(outer.fileno(),)
        )
        try:
            cli.wait_for(rf"on http://127\.0\.0\.1:{port} ")
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "hello"
        finally:
            assert stop_cli(cli) == 0
