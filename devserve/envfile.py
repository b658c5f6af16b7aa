r"""Parse ``--env-file`` files (the dotenv format) and apply them to a process environment.

Pure parsing: ``KEY=value`` lines, optional ``export`` prefix, ``#`` comments (whole-line,
or after whitespace in unquoted values), single quotes (literal), double quotes (with
``\\n``, ``\\t``, ``\\"`` and ``\\\\`` escapes), blank lines ignored. A line that is not an
assignment is an error naming the line number: silently skipping it hides typos.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

from devserve.errors import ConfigError

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


def parse_env(text: str, *, source: str = "env file") -> dict[str, str]:
    """Parse dotenv text into a dict.

    Raises:
        ConfigError: a line is neither blank, a comment nor an assignment.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            msg = f"{source}, line {number}: expected KEY=value, got {stripped[:40]!r}"
            raise ConfigError([msg])
        values[match.group(1)] = _value(match.group(2))
    return values


_QUOTED = re.compile(r"""^(['"])(.*?)(?<!\\)\1\s*(?:#.*)?$""", re.DOTALL)


def _value(raw: str) -> str:
    quoted = _QUOTED.match(raw)
    if quoted is not None:
        quote, inner = quoted.group(1), quoted.group(2)
        if quote == "'":
            return inner
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), inner)
    comment = re.search(r"\s#", raw)
    return raw[: comment.start()].rstrip() if comment else raw


def load_env_file(path: str) -> dict[str, str]:
    """Read and parse an env file.

    Raises:
        ConfigError: unreadable or malformed.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read --env-file {path}: {exc.strerror or exc}"
        raise ConfigError([msg]) from None
    return parse_env(text, source=path)


def apply_env(values: dict[str, str], environ: MutableMapping[str, str] | None = None) -> None:
    """Set `values` in the environment (the process's by default): the feature itself."""
    target = os.environ if environ is None else environ
    target.update(values)
