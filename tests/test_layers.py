"""The module map holds: who may import whom, what the supervisor and protocols avoid, size.

The map is the one in shared/STYLE.md, grown with the modules DESIGN.md adds (fork server,
certificate store, watch plan...). An import not listed here fails this test: change the
map on purpose, never by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "devserve"
MAX_LINES = 400
#: Modules still over the size limit, with the split that is owed (see CHANGELOG/notes).
OVERSIZE_ALLOWED = {"server", "protocol.websocket", "trust"}

# What the supervisor process imports must never pull in the app stack.
SUPERVISOR_SIDE = {
    "reloader",
    "supervisor",
    "policy",
    "lifecycle",
    "crashes",
    "process",
    "forklauncher",
    "earlyfork",
    "handoff",
    "ipc",
    "events",
    "wire",
    "regexcache",
    "watch",
    "inotify",
    "watchplan",
    "contentindex",
    "mounts",
    "poller",
    "gitignore",
    "accesslog",
    "jsonlog",
    "linesink",
    "summary",
    "reporting",
    "uimode",
    "outputpipe",
    "sockets",
    "helptext",
    "config",
    "errors",
    "livenotice",
}
SERVER_STACK = {"h11", "wsproto", "uvloop"}
PROTOCOL_FORBIDDEN = {"asyncio", "socket", "devserve.events"}
WORKER_FORBIDDEN = {"rich", "watchfiles"}
WORKER_SIDE = {
    "worker",
    "stepaside",
    "codecache",
    "spare",
    "workerproc",
    "server",
    "cycle",
    "websocket_server",
    "protocol.wsframes",
    "wssettings",
    "lifespan",
    "appload",
    "devmode",
    "failures",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _devserve_closure(module: str, modules: dict[str, Path]) -> set[str]:
    """Every devserve module `module` imports, directly or not (top-level imports only)."""
    seen: set[str] = set()
    stack = [module]
    while stack:
        current = stack.pop()
        if current in seen or current not in modules:
            continue
        seen.add(current)
        tree = ast.parse(modules[current].read_text())
        for node in tree.body:  # module level only: lazy imports inside functions are allowed
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            for target in targets:
                if target.startswith("devserve."):
                    stack.append(target.removeprefix("devserve."))
    return seen


MODULES = _modules()


@pytest.mark.parametrize("name", sorted(SUPERVISOR_SIDE & set(MODULES)))
def test_supervisor_side_never_loads_the_server_stack(name: str) -> None:
    for module in _devserve_closure(name, MODULES):
        roots = {i.split(".")[0] for i in _top_level_imports(MODULES[module])}
        assert not roots & SERVER_STACK, f"{name} -> {module} imports {roots & SERVER_STACK}"
        assert module not in WORKER_SIDE, f"{name} pulls in worker-side module {module}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("protocol")))
def test_protocols_are_sans_io(name: str) -> None:
    imports = _imports(MODULES[name])
    assert not imports & PROTOCOL_FORBIDDEN, f"{name} imports {imports & PROTOCOL_FORBIDDEN}"


@pytest.mark.parametrize("name", sorted(WORKER_SIDE & set(MODULES)))
def test_worker_never_imports_ui_or_watcher(name: str) -> None:
    for module in _devserve_closure(name, MODULES):
        roots = {i.split(".")[0] for i in _top_level_imports(MODULES[module])}
        assert not roots & WORKER_FORBIDDEN, (
            f"{name} -> {module} imports {roots & WORKER_FORBIDDEN}"
        )


#: What the dashboard may read besides events and itself: the summary's wording, and the
#: configuration when the shell builds itself (`devserve.tui.live.live_ui`).
TUI_EXTRA = {"tui.live": ("devserve.config", "devserve.summary")}
#: The dashboard's modules: pure ones never touch the terminal, the clock or the loop.
TUI_PURE = {
    "tui.state",
    "tui.logitems",
    "tui.keys",
    "tui.view",
    "tui.dashview",
    "tui.stats",
    "tui.histogram",
    "tui.routes",
    "tui.feed",
}
TUI_SHELL = {"tui.live", "tui.terminal", "tui.paint"}
IMPURE = {"asyncio", "os", "time", "signal", "termios", "subprocess", "sys", "socket"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("tui")))
def test_tui_only_reads(name: str) -> None:
    allowed = ("devserve.tui", "devserve.events", *TUI_EXTRA.get(name, ()))
    for imported in _imports(MODULES[name]):
        if imported.startswith("devserve."):
            assert imported.startswith(allowed), imported


@pytest.mark.parametrize("name", sorted(TUI_PURE & set(MODULES)))
def test_tui_views_are_pure(name: str) -> None:
    roots = {i.split(".")[0] for i in _imports(MODULES[name])}
    assert not roots & IMPURE, f"{name} imports {roots & IMPURE}"


def test_every_tui_module_is_mapped() -> None:
    tui = {n for n in MODULES if n.startswith("tui.")}
    assert tui <= TUI_PURE | TUI_SHELL, tui - TUI_PURE - TUI_SHELL


def test_errors_module_is_a_leaf() -> None:
    assert not {i for i in _imports(MODULES["errors"]) if i.startswith("devserve")}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    if name in OVERSIZE_ALLOWED:
        return
    assert lines <= MAX_LINES, f"{name} has {lines} lines (limit {MAX_LINES}): split it"


def test_no_environment_writes_outside_the_env_file_feature() -> None:
    for name, path in MODULES.items():
        text = path.read_text()
        if name == "envfile":
            continue
        assert "os.environ[" not in text or "] =" not in text, name


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.If):  # TYPE_CHECKING blocks do not run
            continue
    return names
