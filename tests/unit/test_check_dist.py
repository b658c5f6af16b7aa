"""The packaging check's own logic: what the wheel must hold (scripts/check_dist.py).

The check itself (build, twine, fresh venv, one request) runs in CI: ``.ci/run``.
"""

from __future__ import annotations

from pathlib import Path

from tests.scripts import load_script

check_dist = load_script("check_dist")


def test_every_template_and_module_is_expected(tmp_path: Path) -> None:
    (tmp_path / "devserve" / "protocol").mkdir(parents=True)
    (tmp_path / "devserve" / "__init__.py").write_text("")
    (tmp_path / "devserve" / "protocol" / "http11.py").write_text("")
    (tmp_path / "templates" / "css").mkdir(parents=True)
    (tmp_path / "templates" / "error.html").write_text("<html>")
    (tmp_path / "templates" / "css" / "page.css").write_text("")
    (tmp_path / "templates" / ".keep").write_text("")
    assert check_dist.expected_wheel_files(tmp_path) == {
        "devserve/py.typed",
        "devserve/__init__.py",
        "devserve/protocol/http11.py",
        "devserve/templates/error.html",
        "devserve/templates/css/page.css",
    }


def test_no_templates_directory_expects_only_the_package(tmp_path: Path) -> None:
    (tmp_path / "devserve").mkdir()
    (tmp_path / "devserve" / "cli.py").write_text("")
    assert check_dist.expected_wheel_files(tmp_path) == {"devserve/py.typed", "devserve/cli.py"}


def test_missing_lists_what_is_absent() -> None:
    assert check_dist.missing(["a", "b", "c"], ["b"]) == ["a", "c"]
    assert check_dist.missing(["a"], ["a", "z"]) == []


def test_the_real_repository_ships_its_templates() -> None:
    root = Path(__file__).resolve().parents[2]
    expected = check_dist.expected_wheel_files(root)
    templates = [p for p in (root / "templates").rglob("*") if p.is_file() and p.name != ".keep"]
    assert len([n for n in expected if n.startswith("devserve/templates/")]) == len(templates)
