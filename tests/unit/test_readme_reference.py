"""README.md cannot drift from the command: the option reference, the recipes, the examples.

When an option is added or its help changes, regenerate with ``python scripts/gen_readme.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devserve.cli import load_pyproject_defaults, serve_command
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
gen_readme = load_script("gen_readme")
STALE = "README.md's option reference is stale: run `python scripts/gen_readme.py`"


def _block() -> str:
    start, end = README.index(gen_readme.BEGIN), README.index(gen_readme.END)
    return README[start : end + len(gen_readme.END)]


def test_reference_block_is_what_the_generator_writes() -> None:
    assert _block() == gen_readme.render_reference(), STALE


def test_every_option_of_devserve_help_is_in_the_reference() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devserve", "--help"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    flags = set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", result.stdout, re.MULTILINE))
    flags |= set(re.findall(r" / (--[a-z0-9-]+)", result.stdout))
    flags -= {"--help", "--version"}
    assert len(flags) > 40
    block = _block()
    missing = sorted(flag for flag in flags if f"`{flag}" not in block and f" {flag}" not in block)
    assert not missing, f"{STALE} (missing {missing})"


def test_reference_names_each_environment_variable() -> None:
    block = _block()
    for param in serve_command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            assert f"`{envvar}`" in block, envvar


def test_replace_block_needs_both_markers() -> None:
    text = f"a\n{gen_readme.BEGIN}\nold\n{gen_readme.END}\nb"
    assert gen_readme.replace_block(text, "NEW") == "a\nNEW\nb"
    with pytest.raises(ValueError, match="no"):
        gen_readme.replace_block("no markers", "NEW")


def test_cells_escape_pipes_and_stars() -> None:
    assert gen_readme._cell("[auto|none] '*.py'") == "[auto\\|none] '\\*.py'"


def test_pyproject_example_is_accepted(tmp_path: Path) -> None:
    example = README.split("```toml\n[tool.devserve]", 1)[1].split("```", 1)[0]
    (tmp_path / "pyproject.toml").write_text("[tool.devserve]" + example)
    defaults = load_pyproject_defaults(tmp_path, serve_command)
    assert defaults["reload"] is True and defaults["port"] == 8001
    ctx = serve_command.make_context("devserve", [], default_map=defaults)
    assert ctx.params["reload_includes"] == ("*.html", "*.toml")
    assert ctx.params["forwarded_allow_ips"] == ("10.0.0.1", "10.0.0.2")


def test_vscode_recipe_in_readme_is_the_tested_file() -> None:
    launch = (ROOT / "examples" / "ide" / ".vscode" / "launch.json").read_text().rstrip("\n")
    assert f"```json\n{launch}\n```" in README
    assert json.loads(launch)["configurations"]


def test_completion_commands_in_readme_use_the_right_variable() -> None:
    for shell in ("bash", "zsh", "fish"):
        assert f"_DEVSERVE_COMPLETE={shell}_source devserve" in README
