"""Write README.md's configuration reference from the ``devserve`` click command.

    python scripts/gen_readme.py          # rewrite the marked block in README.md
    python scripts/gen_readme.py --check  # exit 1 if the block is out of date

The block between `BEGIN` and `END` is generated: one table per ``devserve --help`` topic
(see `devserve.helptext`), each row the option's flags, its ``DEVSERVE_*`` variable and the
very help text ``--help`` prints. tests/unit/test_readme_reference.py fails when the block
and the command disagree, so an option added without regenerating cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from devserve.cli import serve_command
from devserve.helptext import group_params

README = Path(__file__).resolve().parent.parent / "README.md"
COMMAND = "python scripts/gen_readme.py"
BEGIN = f"<!-- BEGIN generated options: run `{COMMAND}`; do not edit by hand -->"
END = "<!-- END generated options -->"


def _cell(text: str) -> str:
    """Escape a table cell: pipes split cells (even in code), stars make emphasis."""
    return text.replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def render_reference(command: click.Command = serve_command) -> str:
    """The generated block, markers included, for `command`."""
    ctx = click.Context(command, info_name="devserve")
    lines = [BEGIN]
    for section, options in group_params(command.get_params(ctx)):
        rows = []
        for option in options:
            record = option.get_help_record(ctx)
            if record is None or not option.envvar:  # --help, --version: not configuration
                continue
            flags, help_text = record
            envvar = option.envvar if isinstance(option.envvar, str) else option.envvar[0]
            rows.append(f"| `{_cell(flags)}` | `{envvar}` | {_cell(help_text)} |")
        if rows:
            lines += ["", f"**{section}**", "", "| option | environment | meaning |"]
            lines += ["|---|---|---|", *rows]
    lines.append(END)
    return "\n".join(lines)


def replace_block(readme: str, block: str) -> str:
    """`readme` with the text from `BEGIN` to `END` replaced by `block`.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        msg = f"README.md has no {BEGIN!r} ... {END!r} block"
        raise ValueError(msg)
    return readme[:start] + block + readme[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, verify) README.md's block; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    updated = replace_block(current, render_reference())
    if args.check:
        if updated != current:
            print(f"README.md's option reference is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        README.write_text(updated, encoding="utf-8")
        print("README.md: option reference regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
