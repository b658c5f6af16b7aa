"""Rich renderables to the escape-coded text a frame writes. Shell (rich, no terminal).

`Painter` owns a private rich Console that writes to memory, sized like the terminal.
`region_lines` is the hot path, run ten times a second: a one-line part of the status
region that was drawn before (same text, same styles, same width) is taken from a small
cache, and a new one-line part is rendered straight from its segments, without rich's
layout pass. Anything else (a traceback block, the help box, the dashboard) goes through
`render`, i.e. ``Console.print``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from rich.color import ColorSystem
from rich.console import Console, Group, RenderableType
from rich.text import Text

from devserve.tui.view import Size

LINE_CACHE = 256


class Painter:
    """Turn renderables into text with escape codes.

    Args:
        environ: ``NO_COLOR`` turns colors off; ``COLORTERM`` allows 24-bit color.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._buffer = io.StringIO()
        truecolor = bool(environ.get("COLORTERM"))
        self._console = Console(
            file=self._buffer,
            force_terminal=True,
            color_system="truecolor" if truecolor else "256",
            no_color=bool(environ.get("NO_COLOR")),
            highlight=False,
            emoji=False,
            soft_wrap=False,
            legacy_windows=False,
        )
        self._color_system: ColorSystem | None = None
        if not environ.get("NO_COLOR"):
            self._color_system = ColorSystem.TRUECOLOR if truecolor else ColorSystem.EIGHT_BIT
        self._cache: dict[tuple[object, ...], list[str]] = {}

    def resize(self, size: Size) -> None:
        """Render for a terminal of ``size`` from now on."""
        self._console.size = (size.width, size.height)

    def render(self, *renderables: RenderableType) -> str:
        """The renderables one below the other, each line ending in a newline."""
        self._console.print(Group(*renderables))
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def region_lines(self, region: RenderableType, width: int) -> list[str]:
        """The rows of ``region`` (a `Group` of parts), without newlines."""
        parts = region.renderables if isinstance(region, Group) else [region]
        rows: list[str] = []
        cache = self._cache
        for part in parts:
            if not isinstance(part, Text):
                rows.extend(self.render(part).split("\n")[:-1])
                continue
            key = (part.plain, tuple(part.spans), part.style, width)
            lines = cache.get(key)
            if lines is None:
                if len(cache) >= LINE_CACHE:
                    cache.clear()
                if part.no_wrap and "\n" not in part.plain:
                    lines = [self.one_line(part, width)]
                else:
                    lines = self.render(part).split("\n")[:-1]
                cache[key] = lines
            rows.extend(lines)
        return rows

    def one_line(self, text: Text, width: int) -> str:
        """A one-line Text cut to ``width``, straight from its segments (no layout pass)."""
        line = text.copy()
        line.truncate(width, overflow="ellipsis")
        system = self._color_system
        return "".join(
            seg.style.render(seg.text, color_system=system) if seg.style else seg.text
            for seg in line.render(self._console)
        )
