r"""A small, pure `.gitignore` matcher.

Theory of operation: each `.gitignore` file is parsed into `IgnoreRule`s, one per pattern line,
each remembering the directory (relative to the watched root, ``""`` for the root itself) whose
`.gitignore` it came from. A `GitIgnore` holds the rules of every `.gitignore` found so far, in
the order git gives them precedence: shallower files first, and lines in file order, so that the
*last* matching rule decides (a `!negated` rule re-includes).

Matching follows gitignore(5):

* blank lines and ``#`` comments are skipped; ``\#`` and ``\!`` escape a leading ``#``/``!``;
  trailing spaces are dropped unless escaped with a backslash;
* a trailing ``/`` makes the rule match directories only;
* a ``/`` at the start or in the middle anchors the pattern to its `.gitignore`'s directory;
  otherwise the pattern matches the name at any depth below it;
* ``*`` and ``?`` never match ``/``; ``[...]`` is a character class (``!`` or ``^`` negates);
  ``**/`` matches zero or more directories, a trailing ``/**`` everything inside;
* a path whose parent directory is ignored stays ignored, whatever later rules say (git never
  descends into an ignored directory, so it cannot re-include anything below it).

Not handled: ``.git/info/exclude``, ``core.excludesFile``, `.gitignore` files above the watched
root, and ``core.ignoreCase`` (matching is case-sensitive). Everything here is pure: callers read
the files and pass their text in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class IgnoreRule:
    """One pattern line of a `.gitignore` file.

    Attributes:
        base: directory of the `.gitignore` holding the rule, relative to the root, using ``/``
            separators; ``""`` for the root's own `.gitignore`.
        regex: compiled pattern, matched in full against the path relative to `base` when
            `is_anchored`, otherwise against the last path component.
        is_negated: the line started with ``!``: a match re-includes the path.
        is_dir_only: the line ended with ``/``: the rule only matches directories.
        is_anchored: the pattern held a ``/`` before its end.
    """

    base: str
    regex: re.Pattern[str]
    is_negated: bool
    is_dir_only: bool
    is_anchored: bool

    def matches(self, rel_path: str, *, is_dir: bool) -> bool:
        """Tell whether this rule matches a path.

        Args:
            rel_path: path relative to the watched root, ``/``-separated, without a leading ``/``.
            is_dir: whether the path is a directory.

        Returns:
            True if the pattern matches (regardless of negation).
        """
        if self.is_dir_only and not is_dir:
            return False
        if self.base:
            if not rel_path.startswith(self.base + "/"):
                return False
            rel_path = rel_path[len(self.base) + 1 :]
        subject = rel_path if self.is_anchored else rel_path.rpartition("/")[2]
        return self.regex.fullmatch(subject) is not None


def _translate_class(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate a ``[...]`` class starting at ``pattern[start] == "["``.

    Returns:
        The regex fragment and the index just past ``]``, or None if the class is unterminated.
    """
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    body: list[str] = []
    first = True
    while i < len(pattern):
        char = pattern[i]
        if char == "]" and not first:
            inner = "".join(body)
            return (f"(?!/)[^{inner}]" if negate else f"[{inner}]"), i + 1
        if char == "\\" and i + 1 < len(pattern):
            i += 1
            char = pattern[i]
        body.append(char if char == "-" else re.escape(char))
        first = False
        i += 1
    return None


def _translate(pattern: str) -> str:
    """Translate a gitignore glob (leading ``/`` already removed) into a regex.

    Args:
        pattern: the glob, e.g. ``"src/**/gen_*.py"``.

    Returns:
        A regex source string to be used with `re.fullmatch`.
    """
    out: list[str] = []
    i, size = 0, len(pattern)
    while i < size:
        char = pattern[i]
        if char == "*":
            stars = len(pattern[i:]) - len(pattern[i:].lstrip("*"))
            at_start = i == 0 or pattern[i - 1] == "/"
            at_end = i + stars == size or pattern[i + stars] == "/"
            if stars >= 2 and at_start and at_end:  # noqa: PLR2004 - "**" is two stars
                if i + stars == size:
                    out.append(".*")
                else:
                    out.append("(?:.*/)?")
                    i += 1  # swallow the "/" that follows "**"
            else:
                out.append("[^/]*")
            i += stars
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and (translated := _translate_class(pattern, i)) is not None:
            out.append(translated[0])
            i = translated[1]
        elif char == "\\" and i + 1 < size:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _strip_trailing_spaces(line: str) -> str:
    """Drop trailing spaces that are not escaped by a backslash."""
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped[:-1] + " "
    return stripped


def parse_gitignore(text: str, base: str = "") -> tuple[IgnoreRule, ...]:
    """Parse the contents of one `.gitignore` file.

    Args:
        text: the file's contents.
        base: the file's directory relative to the watched root (``/``-separated, ``""`` for the
            root itself).

    Returns:
        The rules in file order.
    """
    base = base.strip("/")
    rules: list[IgnoreRule] = []
    for raw_line in text.splitlines():
        line = _strip_trailing_spaces(raw_line.rstrip("\r"))
        if not line or line.startswith("#"):
            continue
        is_negated = line.startswith("!")
        if is_negated or line.startswith(("\\!", "\\#")):
            line = line[1:]
        is_dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        is_anchored = "/" in line
        regex = re.compile(_translate(line.lstrip("/")), re.DOTALL)
        rules.append(IgnoreRule(base, regex, is_negated, is_dir_only, is_anchored))
    return tuple(rules)


@dataclass(frozen=True)
class GitIgnore:
    """The combined `.gitignore` rules of one watched root.

    Attributes:
        rules: every rule, shallower `.gitignore` files first, each file's lines in order.
    """

    rules: tuple[IgnoreRule, ...] = ()

    def with_file(self, base: str, text: str) -> GitIgnore:
        """Return a new matcher that also honours one more `.gitignore` file.

        Args:
            base: the file's directory relative to the root (``""`` for the root).
            text: the file's contents.

        Returns:
            A new `GitIgnore`; `self` is unchanged.
        """
        return GitIgnore(self.rules + parse_gitignore(text, base))

    def _decides_ignored(self, rel_path: str, *, is_dir: bool) -> bool:
        """Apply the rules to one path alone, ignoring its parents: the last match wins."""
        is_ignored = False
        for rule in self.rules:
            if rule.matches(rel_path, is_dir=is_dir):
                is_ignored = not rule.is_negated
        return is_ignored

    def is_ignored(self, rel_path: str, *, is_dir: bool = False) -> bool:
        """Tell whether git would ignore a path.

        Args:
            rel_path: path relative to the root, ``/``-separated (a leading ``./`` or ``/`` is
                tolerated).
            is_dir: whether the path is a directory (for ``dir/``-only rules).

        Returns:
            True if the path, or one of its parent directories, is ignored.
        """
        if not self.rules:
            return False
        parts = [part for part in rel_path.split("/") if part not in ("", ".")]
        for depth in range(1, len(parts)):
            if self._decides_ignored("/".join(parts[:depth]), is_dir=True):
                return True
        return bool(parts) and self._decides_ignored("/".join(parts), is_dir=is_dir)
