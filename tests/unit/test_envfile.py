"""Tests for devserve.envfile: dotenv parsing, reading files and applying values."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.envfile import apply_env, load_env_file, parse_env
from devserve.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1", {"A": "1"}),
        ("  A = 1  ", {"A": "1"}),
        ("export A=1", {"A": "1"}),
        ("export   A=1", {"A": "1"}),
        ("A=", {"A": ""}),
        ("a.b_C9=x", {"a.b_C9": "x"}),
        ("A=x=y", {"A": "x=y"}),
        ("export=1", {"export": "1"}),
        ("A=one two", {"A": "one two"}),
    ],
)
def test_assignments(text: str, expected: dict[str, str]) -> None:
    assert parse_env(text) == expected


def test_comments_and_blank_lines_are_skipped() -> None:
    text = "# header\n\n   \n  # indented comment\nA=1\n\nB=2\n"
    assert parse_env(text) == {"A": "1", "B": "2"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=value # comment", "value"),
        ("A=value\t# comment", "value"),
        ("A=value#not-a-comment", "value#not-a-comment"),
        ("A=http://x/#frag", "http://x/#frag"),
        ("A=#", "#"),
    ],
)
def test_inline_comments_only_after_whitespace(text: str, expected: str) -> None:
    assert parse_env(text) == {"A": expected}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A='a b'", "a b"),
        ("A='a # b'", "a # b"),
        (r"A='a\nb'", r"a\nb"),
        ("A=''", ""),
        ('A="a b"', "a b"),
        ('A="a # b"', "a # b"),
        ('A=""', ""),
        ('A="it\'s"', "it's"),
        ("A='say \"hi\"'", 'say "hi"'),
    ],
)
def test_quotes(text: str, expected: str) -> None:
    assert parse_env(text) == {"A": expected}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"a\nb", "a\nb"),
        (r"a\tb", "a\tb"),
        (r"a\rb", "a\rb"),
        (r"say \"hi\"", 'say "hi"'),
        (r"back\\slash", "back\\slash"),
        (r"\\n", "\\n"),
        (r"keep \q", r"keep \q"),
    ],
)
def test_double_quote_escapes(raw: str, expected: str) -> None:
    assert parse_env(f'A="{raw}"') == {"A": expected}


def test_unquoted_values_keep_backslashes() -> None:
    assert parse_env(r"A=a\nb") == {"A": r"a\nb"}


def test_later_assignment_wins() -> None:
    assert parse_env("A=1\nA=2") == {"A": "2"}


def test_crlf_line_endings() -> None:
    assert parse_env("A=1\r\nB=2\r\n") == {"A": "1", "B": "2"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("A=1\nnot an assignment\n", 2),
        ("# c\n\nA=1\n1A=2", 4),
        ("A B=1", 1),
        ("export A", 1),
    ],
)
def test_malformed_line_names_line_number(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_env(text, source=".env")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f".env, line {line}: expected KEY=value, got ")


def test_malformed_line_default_source() -> None:
    with pytest.raises(ConfigError, match=r"^env file, line 1: expected KEY=value, got 'oops'$"):
        parse_env("oops")


def test_quoted_value_then_comment() -> None:
    assert parse_env("A='x' # c\nB=\"y\" # c") == {"A": "x", "B": "y"}


def test_load_env_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("export A=1\n# c\nB='two words'\n", encoding="utf-8")
    assert load_env_file(str(path)) == {"A": "1", "B": "two words"}


def test_load_env_file_error_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nbroken\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_env_file(str(path))
    assert info.value.problems == [f"{path}, line 2: expected KEY=value, got 'broken'"]


def test_load_missing_env_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.env"
    with pytest.raises(ConfigError) as info:
        load_env_file(str(path))
    assert info.value.problems == [f"cannot read --env-file {path}: No such file or directory"]


def test_load_env_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read --env-file"):
        load_env_file(str(tmp_path))


def test_apply_env_into_plain_dict() -> None:
    environ = {"KEEP": "k", "A": "old"}
    apply_env({"A": "new", "B": "2"}, environ)
    assert environ == {"KEEP": "k", "A": "new", "B": "2"}


def test_apply_env_empty_changes_nothing() -> None:
    environ = {"KEEP": "k"}
    apply_env({}, environ)
    assert environ == {"KEEP": "k"}
