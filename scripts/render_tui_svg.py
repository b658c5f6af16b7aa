"""Render the live dashboard to SVG for the README: ``python scripts/render_tui_svg.py``.

Draws the same scripted scenarios the snapshot tests use (tests/tui_scenarios.py) with the
real view code into a recording rich Console, and saves them with ``save_svg``:

- docs/dashboard.svg: the inline view (request log above the status region) after an error;
- docs/dashboard-full.svg: the full-screen dashboard (the ``d`` key).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from rich.console import Console, Group, RenderableType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devserve.tui.dashview import dashboard  # noqa: E402
from devserve.tui.keys import press  # noqa: E402
from devserve.tui.view import Size, log_lines, status_region  # noqa: E402
from tests.tui_scenarios import SCENARIOS  # noqa: E402

SIZE = Size(110, 30)


def save(renderable: RenderableType, path: Path, title: str, size: Size) -> None:
    console = Console(
        file=io.StringIO(),
        record=True,
        width=size.width,
        height=size.height,
        force_terminal=True,
        color_system="truecolor",
    )
    console.print(renderable)
    console.save_svg(str(path), title=title)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)

    state, now = SCENARIOS["error"]()
    items = state.take_log(now)
    region = status_region(state, now, SIZE)
    # what the terminal shows: the last rows of the log, then the region
    tail = log_lines(items[-14:], SIZE.width, state.root)
    save(Group(*tail, region), docs / "dashboard.svg", "devserve --reload", SIZE)

    state, now = SCENARIOS["busy"]()
    press(state, "d")
    press(state, "s")  # sorted by p95
    save(dashboard(state, now, SIZE), docs / "dashboard-full.svg", "devserve: d", SIZE)


if __name__ == "__main__":
    main()
