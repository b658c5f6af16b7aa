"""Pure tests of `devserve.gitignore`: the .gitignore pattern rules."""

from __future__ import annotations

from devserve.gitignore import GitIgnore, parse_gitignore


def ignored(text: str, rel: str, *, is_dir: bool = False) -> bool:
    return GitIgnore().with_file("", text).is_ignored(rel, is_dir=is_dir)


def test_comments_blank_lines_and_escapes() -> None:
    text = "# a comment\n\n   \n\\#literal\n\\!bang\ntrailing   \nkept\\ \n"
    assert len(parse_gitignore(text)) == 4
    assert not ignored(text, "# a comment")
    assert ignored(text, "#literal")
    assert ignored(text, "!bang")
    assert ignored(text, "trailing")
    assert ignored(text, "kept ")
    assert not ignored(text, "kept")


def test_unanchored_pattern_matches_at_any_depth() -> None:
    assert ignored("*.log\n", "a.log")
    assert ignored("*.log\n", "deep/er/a.log")
    assert ignored("cache\n", "x/cache", is_dir=True)
    assert ignored("cache\n", "x/cache/inner.py")


def test_leading_and_middle_slash_anchor_the_pattern() -> None:
    assert ignored("/todo.py\n", "todo.py")
    assert not ignored("/todo.py\n", "sub/todo.py")
    assert ignored("doc/frotz\n", "doc/frotz")
    assert ignored("doc/frotz\n", "doc/frotz/x.py")
    assert not ignored("doc/frotz\n", "a/doc/frotz")


def test_star_and_question_mark_do_not_cross_slashes() -> None:
    assert ignored("a/*.py\n", "a/x.py")
    assert not ignored("a/*.py\n", "a/b/x.py")
    assert ignored("a?c.py\n", "abc.py")
    assert not ignored("a/?.py\n", "a//.py")


def test_dir_only_patterns() -> None:
    assert ignored("out/\n", "out", is_dir=True)
    assert not ignored("out/\n", "out")
    assert ignored("out/\n", "sub/out/file.py")
    assert not ignored("/out/\n", "sub/out/file.py")


def test_double_star_forms() -> None:
    assert ignored("**/logs\n", "logs", is_dir=True)
    assert ignored("**/logs\n", "a/b/logs/x.py")
    assert ignored("a/**/b.py\n", "a/b.py")
    assert ignored("a/**/b.py\n", "a/x/y/b.py")
    assert ignored("abc/**\n", "abc/x/y.py")
    assert not ignored("abc/**\n", "abc", is_dir=True)
    assert ignored("a**b.py\n", "axyb.py")
    assert not ignored("a**b.py\n", "ax/yb.py")


def test_negation_re_includes_and_last_match_wins() -> None:
    text = "*.py\n!keep.py\n"
    assert ignored(text, "x.py")
    assert not ignored(text, "keep.py")
    assert ignored("!keep.py\n*.py\n", "keep.py")


def test_negation_cannot_re_include_below_an_ignored_dir() -> None:
    assert ignored("build/\n!build/keep.py\n", "build/keep.py")
    text = "/*\n!/src/\n"
    assert not ignored(text, "src/app.py")
    assert ignored(text, "other.py")


def test_character_classes() -> None:
    assert ignored("[ab].py\n", "a.py")
    assert not ignored("[ab].py\n", "c.py")
    assert ignored("[!ab].py\n", "c.py")
    assert ignored("[a-c]x.py\n", "bx.py")
    assert ignored("[]x.py\n", "[]x.py")  # unterminated: "[" is literal


def test_nested_gitignore_applies_below_its_directory_and_overrides() -> None:
    rules = GitIgnore().with_file("", "*.gen\n").with_file("pkg", "!*.gen\n/local.py\n")
    assert rules.is_ignored("a.gen")
    assert not rules.is_ignored("pkg/a.gen")
    assert rules.is_ignored("pkg/local.py")
    assert not rules.is_ignored("local.py")
    assert not rules.is_ignored("pkgx/local.py")
