"""Pure tests of the watch layer: filter, gitignore, mounts, planning, content checks.

The last section drives `watch_changes` with a scripted `awatch` (real files in tmp_path, no OS
watcher) to check batching, content de-duplication and re-planning.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from watchfiles import Change

from devserve.errors import ConfigError
from devserve.gitignore import GitIgnore, parse_gitignore
from devserve.watch import (
    DEFAULT_IGNORED_DIRS,
    DEFAULT_IGNORED_FILES,
    ChangeBatch,
    ContentIndex,
    FileState,
    Mount,
    Observation,
    PathFilter,
    PollingDecision,
    RawChanges,
    WatchSettings,
    decide_polling,
    diff_snapshots,
    find_mount,
    make_batch,
    parse_mountinfo,
    plan_watch_roots,
    polling_reason,
    reconcile,
    significant_changes,
    take_snapshot,
    watch_changes,
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


# --- gitignore -----------------------------------------------------------------------------


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


# --- mounts and polling --------------------------------------------------------------------

MOUNTINFO = """\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l
30 22 0:30 / /work rw - 9p drvfs rw,aname=drvfs;path=C:\\
31 22 0:31 / /srv/nfs rw shared:5 - nfs4 server:/export rw
32 22 0:32 / /home/me/remote rw - fuse.sshfs me@host:/code rw
33 22 0:33 / /mnt/my\\040share rw - cifs //nas/share rw
34 22 0:34 / /vbox rw - vboxsf code rw
35 22 0:35 / /host rw - fakeowner /run/host rw
36 22 0:36 / /vm rw - virtiofs myfs rw
bogus line
"""


def test_parse_mountinfo() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 8
    assert mounts[0] == Mount("/", "overlay", "overlay", "rw,lowerdir=/l")
    assert mounts[2] == Mount("/srv/nfs", "nfs4", "server:/export", "rw")
    assert mounts[4].mount_point == "/mnt/my share"


def test_find_mount_prefers_the_longest_then_the_latest() -> None:
    mounts = (*parse_mountinfo(MOUNTINFO), Mount("/work", "ext4", "/dev/sdb"))
    assert find_mount("/workshop/a", mounts) == mounts[0]
    assert find_mount("/work/a", mounts) == mounts[-1]
    assert find_mount("/", mounts) == mounts[0]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/work/app", "/work/app is on 9p (WSL drive)"),
        ("/srv/nfs/x", "/srv/nfs/x is on nfs"),
        ("/home/me/remote", "/home/me/remote is on sshfs"),
        ("/mnt/my share/a", "/mnt/my share/a is on cifs (SMB share)"),
        ("/vbox", "/vbox is on vboxsf (VirtualBox shared folder)"),
        ("/host/src", "/host/src is on fakeowner (Docker Desktop bind mount)"),
        ("/vm", "/vm is on virtiofs (VM shared folder)"),
        ("/home/me/code", None),
    ],
)
def test_polling_reason(path: str, reason: str | None) -> None:
    assert polling_reason([path], parse_mountinfo(MOUNTINFO), "Linux version 6.1") == reason


def test_wsl_windows_drive_is_detected_from_proc_version() -> None:
    mounts = (Mount("/", "ext4", "/dev/sdc"),)
    version = "Linux version 5.15.90.1-microsoft-standard-WSL2"
    assert polling_reason(["/mnt/c/code"], mounts, version) == (
        "/mnt/c/code is on a Windows drive under WSL"
    )
    assert polling_reason(["/mnt/c/code"], mounts, "Linux version 6.1") is None
    assert polling_reason(["/home/me"], mounts, version) is None


def test_decide_polling() -> None:
    texts = {"/proc/self/mountinfo": MOUNTINFO, "/proc/version": "Linux"}
    auto = WatchSettings(dirs=(Path("/work/app"),))
    decision = decide_polling(auto, read_text=texts.__getitem__, platform="linux")
    assert decision == PollingDecision(True, "/work/app is on 9p (WSL drive)")
    local = WatchSettings(dirs=(Path("/home/me"),))
    assert not decide_polling(local, read_text=texts.__getitem__, platform="linux").should_poll
    assert not decide_polling(auto, read_text=texts.__getitem__, platform="darwin").should_poll
    forced = WatchSettings(dirs=(Path("/x"),), force_polling=True)
    assert decide_polling(forced, read_text=texts.__getitem__) == PollingDecision(
        True, "polling forced on"
    )


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


def test_diff_snapshots() -> None:
    old = {"d": (True, 0, 1), "a": (False, 1, 1), "b": (False, 1, 1), "gone": (False, 1, 1)}
    new = {"d": (True, 0, 2), "a": (False, 1, 1), "b": (False, 1, 2), "new": (False, 1, 1)}
    assert diff_snapshots(old, new) == {
        (Change.modified, "b"),
        (Change.deleted, "gone"),
        (Change.added, "new"),
    }


def test_take_snapshot_flat_and_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("a")
    (tmp_path / "b.py").write_text("bb")
    flat = take_snapshot([str(tmp_path)], is_recursive=False)
    assert sorted(flat) == [str(tmp_path / "b.py"), str(tmp_path / "sub")]
    assert flat[str(tmp_path / "b.py")][:2] == (False, 2)
    deep = take_snapshot([str(tmp_path), str(tmp_path / "missing")], is_recursive=True)
    assert str(tmp_path / "sub" / "a.py") in deep


# --- content checks and batches -------------------------------------------------------------


def test_significant_changes_drops_unchanged_content() -> None:
    index = ContentIndex(
        {"a": FileState(1, 10, b"A"), "b": FileState(1, 10, b"B"), "big": FileState(9, 10)}
    )
    observations = [
        Observation("a", FileState(1, 99, b"A")),  # rewritten, same bytes
        Observation("b", FileState(1, 99, b"b")),  # real edit
        Observation("new", FileState(1, 1, b"N")),  # first seen
        Observation("big", FileState(9, 10)),  # no digest, same stat
    ]
    assert significant_changes(observations, index) == {"b", "new"}


def test_significant_changes_deletions() -> None:
    index = ContentIndex({"a": FileState(1, 10, b"A"), "big": FileState(9, 10)})
    observations = [Observation("a", None), Observation("tmp", None)]
    assert significant_changes(observations, index) == {"a"}
    incomplete = ContentIndex({}, is_complete=False)
    assert significant_changes([Observation("tmp", None)], incomplete) == {"tmp"}
    assert significant_changes([Observation("big", FileState(9, 11))], index) == {"big"}


def test_index_records_observations() -> None:
    index = ContentIndex({"a": FileState(1, 10, b"A")})
    index.record([Observation("a", None), Observation("b", FileState(2, 3, b"B"))])
    assert index.paths() == ("b",)
    assert index.get("b") == FileState(2, 3, b"B")


def test_reconcile_reports_new_and_restatted_files() -> None:
    index = ContentIndex({"a": FileState(1, 10, b"A"), "b": FileState(1, 10, b"B")})
    assert reconcile([("a", 1, 10), ("b", 1, 11), ("c", 5, 5)], index) == {"b", "c"}


def test_make_batch_relativises_sorts_and_flags_dependencies() -> None:
    env = os.path.join(os.sep, "etc", ".env")
    path_filter = make_filter(extra_files=frozenset({env, p("uv.lock")}))
    batch = make_batch([p("pkg/b.py"), p("a.py")], path_filter, raw_count=5)
    assert batch == ChangeBatch((os.path.join("a.py"), os.path.join("pkg", "b.py")), False, 5)
    assert make_batch([p("uv.lock")], path_filter, raw_count=1).dependencies_changed
    assert make_batch([env], path_filter, raw_count=1).paths == (env,)


def test_batch_and_settings_validate() -> None:
    with pytest.raises(ValueError, match="at least one path"):
        ChangeBatch((), False, 0)
    with pytest.raises(ValueError, match="sorted"):
        ChangeBatch(("b", "a"), False, 2)
    with pytest.raises(ValueError, match="raw_count"):
        ChangeBatch(("a",), False, -1)
    with pytest.raises(ConfigError) as caught:
        WatchSettings(dirs=(), includes=(), delay_ms=0)
    assert len(caught.value.problems) == 3


# --- the loop, driven by a scripted awatch --------------------------------------------------


Step = Callable[[], RawChanges]


class ScriptedAwatch:
    """A fake `watchfiles.awatch`: each call plays the next script; records its arguments.

    A script step is a callable run when the step is reached (after start-up), returning the
    raw changes to yield, so it can touch files first.
    """

    def __init__(self, scripts: list[list[Step]]) -> None:
        self.scripts: Iterator[list[Step]] = iter(scripts)
        self.calls: list[tuple[tuple[str, ...], bool]] = []

    def __call__(
        self,
        *paths: str,
        watch_filter: None,
        debounce: int,
        step: int,
        stop_event: asyncio.Event,
        force_polling: bool,
        recursive: bool,
    ) -> AsyncIterator[RawChanges]:
        self.calls.append((paths, recursive))
        return self._play(next(self.scripts, []), stop_event)

    async def _play(self, script: list[Step], stop: asyncio.Event) -> AsyncIterator[RawChanges]:
        for step in script:
            yield step()
        await stop.wait()


def collect(settings: WatchSettings, fake: ScriptedAwatch, *, want: int) -> list[ChangeBatch]:
    async def run() -> list[ChangeBatch]:
        stop = asyncio.Event()
        batches: list[ChangeBatch] = []

        async def consume() -> None:
            async for batch in watch_changes(
                settings, stop_event=stop, awatch=fake, polling=PollingDecision(False, "test")
            ):
                batches.append(batch)
                if len(batches) == want:
                    stop.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait({task}, timeout=0.5)  # a wrong count shows up as a bad assert below
        stop.set()
        await asyncio.wait_for(task, timeout=2)
        return batches

    return asyncio.run(run())


def write(path: Path, text: str, raw: RawChanges) -> Step:
    def step() -> RawChanges:
        path.write_text(text)
        return raw

    return step


def test_loop_yields_only_content_changes(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / ".venv").mkdir()
    same, edited = root / "same.py", root / "edited.py"
    same.write_text("x = 1\n")
    edited.write_text("x = 1\n")
    touched = {(Change.modified, str(same)), (Change.modified, str(edited))}
    script = [
        write(same, "x = 1\n", {(Change.modified, str(same))}),  # identical rewrite: nothing
        write(edited, "x = 2\n", touched | {(Change.added, "/elsewhere/nope.py")}),
    ]
    fake = ScriptedAwatch([script])
    batches = collect(WatchSettings(dirs=(root,)), fake, want=1)
    assert batches == [ChangeBatch(("edited.py",), False, 3)]
    assert fake.calls == [((str(root),), False)]  # .venv exists: kept dirs, flat


def test_loop_replans_when_a_directory_appears(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "node_modules").mkdir()
    new_dir = root / "pkg"

    def create_package() -> RawChanges:
        new_dir.mkdir()
        (new_dir / "mod.py").write_text("y = 1\n")  # no event: pkg was not watched yet
        return {(Change.added, str(new_dir))}

    fake = ScriptedAwatch([[create_package]])
    batches = collect(WatchSettings(dirs=(root,)), fake, want=1)
    assert batches == [ChangeBatch((os.path.join("pkg", "mod.py"),), False, 1)]
    assert fake.calls[-1] == ((str(root), str(new_dir)), False)


def test_loop_reports_files_of_a_removed_directory_and_dependencies(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "pkg").mkdir()
    (root / "pkg" / "a.py").write_text("a = 1\n")
    lock = root / "uv.lock"
    lock.write_text("v1\n")

    def remove_package() -> RawChanges:
        (root / "pkg" / "a.py").unlink()
        (root / "pkg").rmdir()
        return {(Change.deleted, str(root / "pkg"))}  # a move-away names only the directory

    script = [remove_package, write(lock, "v2\n", {(Change.modified, str(lock))})]
    settings = WatchSettings(dirs=(root,), extra_files=(lock,))
    batches = collect(settings, ScriptedAwatch([script]), want=2)
    assert batches == [
        ChangeBatch((os.path.join("pkg", "a.py"),), False, 1),
        ChangeBatch(("uv.lock",), True, 1),
    ]


def test_loop_reloads_gitignore_rules_when_gitignore_changes(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    secret, other, ignore = root / "secret.py", root / "other.py", root / ".gitignore"
    for path in (secret, other):
        path.write_text("v = 1\n")
    touched = {(Change.modified, str(secret)), (Change.modified, str(other))}

    def edit_both() -> RawChanges:
        secret.write_text("v = 2\n")
        other.write_text("v = 2\n")
        return touched

    fake = ScriptedAwatch(
        [[write(ignore, "secret.py\n", {(Change.added, str(ignore))})], [edit_both]]
    )
    batches = collect(WatchSettings(dirs=(root,)), fake, want=2)  # a 2nd batch would be wrong
    # The fake edits both files as the restarted watcher starts, so the post-restart scan
    # catches other.py in the .gitignore batch; secret.py is ignored from then on.
    assert [batch.paths for batch in batches] == [("other.py",)]
    assert len(fake.calls) == 2
