"""Pure tests of `devserve.watchplan`: the path filter and the watch plan."""

from __future__ import annotations

import os

import pytest
from watchfiles import Change

from devserve.gitignore import GitIgnore
from devserve.watchplan import (
    DEFAULT_IGNORED_DIRS,
    DEFAULT_IGNORED_FILES,
    PathFilter,
    plan_watch_roots,
)

ROOT = os.path.join(os.sep, "proj")


def p(rel: str) -> str:
    return os.path.join(ROOT, *rel.split("/"))


def make_filter(**kwargs: object) -> PathFilter:
    return PathFilter((ROOT,), **kwargs)  # type: ignore[arg-type]


# --- PathFilter ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEFAULT_IGNORED_DIRS))
def test_every_default_ignored_dir_is_dropped(name: str) -> None:
    path_filter = make_filter()
    assert not path_filter(Change.modified, p(f"{name}/mod.py"))
    assert not path_filter(Change.modified, p(f"pkg/{name}/deep/mod.py"))
    assert path_filter.is_ignored_dir(p(name))
    assert path_filter.is_ignored_dir(p(f"pkg/{name}"))


EDITOR_DROPPINGS = (
    "a.pyc", "a.pyo", ".a.py.swp", ".a.py.swx", "a.py~", ".#a.py", "#a.py#", "4913", "a.tmp",
    ".DS_Store",
)  # fmt: skip


@pytest.mark.parametrize("name", EDITOR_DROPPINGS)
def test_every_default_ignored_file_is_dropped(name: str) -> None:
    path_filter = make_filter(includes=("*",))
    assert not path_filter(Change.added, p(name))
    assert not path_filter(Change.added, p(f"pkg/{name}"))


def test_default_file_globs_cover_the_brief() -> None:
    expected = {"*.pyc", "*.pyo", "*.swp", "*.swx", "*~", ".#*", "#*#", "4913", "*.tmp"}
    assert expected | {".DS_Store"} <= set(DEFAULT_IGNORED_FILES)


def test_includes_match_name_or_relative_path() -> None:
    path_filter = make_filter(includes=("*.py", "templates/*.html"))
    assert path_filter(Change.modified, p("app.py"))
    assert path_filter(Change.modified, p("pkg/deep/app.py"))
    assert path_filter(Change.modified, p("templates/index.html"))
    assert not path_filter(Change.modified, p("static/index.html"))
    assert not path_filter(Change.modified, p("README.md"))


def test_excludes_match_name_relative_path_or_directory() -> None:
    path_filter = make_filter(excludes=("*_test.py", "migrations", "docs/*"))
    assert not path_filter(Change.modified, p("pkg/a_test.py"))
    assert not path_filter(Change.modified, p("app/migrations/0001.py"))
    assert not path_filter(Change.modified, p("docs/conf.py"))
    assert path_filter(Change.modified, p("app/models.py"))
    assert path_filter.is_ignored_dir(p("app/migrations"))
    assert not path_filter.is_ignored_dir(p("app"))


def test_extra_files_bypass_every_rule_and_other_paths_outside_roots_are_dropped() -> None:
    env = os.path.join(os.sep, "elsewhere", ".env")
    lock = p(".venv/uv.lock")
    ignore = GitIgnore().with_file("", ".env\n")
    path_filter = make_filter(extra_files=frozenset({env, lock, p(".env")}), gitignores=(ignore,))
    assert path_filter(Change.modified, env)
    assert path_filter(Change.modified, lock)
    assert path_filter(Change.modified, p(".env"))
    assert not path_filter(Change.modified, os.path.join(os.sep, "elsewhere", "x.py"))
    assert not path_filter.is_ignored_dir(os.path.join(os.sep, "elsewhere"))


def test_gitignore_is_honoured_for_files_and_dirs() -> None:
    ignore = GitIgnore().with_file("", "generated/\n*.gen.py\n")
    path_filter = make_filter(gitignores=(ignore,))
    assert not path_filter(Change.modified, p("generated/a.py"))
    assert not path_filter(Change.modified, p("pkg/x.gen.py"))
    assert path_filter(Change.modified, p("pkg/x.py"))
    assert path_filter.is_ignored_dir(p("generated"))


def test_first_root_holding_a_path_is_used() -> None:
    inner = p("src")
    path_filter = PathFilter((inner, ROOT), gitignores=(GitIgnore(), GitIgnore()))
    assert path_filter.locate(p("src/a.py")) == (0, "a.py")
    assert path_filter.locate(p("b.py")) == (1, "b.py")
    assert path_filter.locate(ROOT + "x/b.py") is None


# --- planning ------------------------------------------------------------------------------


def test_plan_watches_clean_roots_recursively() -> None:
    plan = plan_watch_roots([ROOT], [ROOT, p("pkg")], has_ignored_dirs=False)
    assert plan.paths == (ROOT,)
    assert plan.is_recursive


def test_plan_lists_kept_dirs_flat_when_something_is_ignored() -> None:
    plan = plan_watch_roots([ROOT], [ROOT, p("pkg"), p("pkg/sub")], has_ignored_dirs=True)
    assert plan.paths == tuple(sorted([ROOT, p("pkg"), p("pkg/sub")]))
    assert not plan.is_recursive


def test_plan_adds_parents_of_extra_files_outside_the_tree() -> None:
    env = os.path.join(os.sep, "etc", "app", ".env")
    plan = plan_watch_roots([ROOT], [ROOT], has_ignored_dirs=False, extra_files=[env, p("uv.lock")])
    assert plan.paths == tuple(sorted([ROOT, os.path.dirname(env)]))
    assert not plan.is_recursive


def test_plan_falls_back_to_recursive_roots_when_the_walk_was_capped() -> None:
    env = os.path.join(os.sep, "etc", "app", ".env")
    plan = plan_watch_roots(
        [ROOT], [ROOT], has_ignored_dirs=True, extra_files=[env, p("x.lock")], is_dir_capped=True
    )
    assert plan.paths == (ROOT, env)
    assert plan.is_recursive
