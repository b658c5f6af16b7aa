"""Asset changes: what needs a new worker, and the notice file (#7)."""

from __future__ import annotations

import signal

import pytest

from devserve.config import Config
from devserve.events import Event, LogLine, WorkerExited, WorkerReady
from devserve.livenotice import (
    DEFAULT_GLOBS,
    BrowserNotices,
    Notice,
    NoticeBoard,
    classify,
    decode,
    encode,
    read_notices,
)


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (("static/site.css",), "css"),
        (("static/a.css", "static/b.css"), "css"),
        (("templates/index.html",), "page"),
        (("static/a.css", "templates/index.html"), "page"),
        (("static/app.js",), "page"),
        (("main.py",), "restart"),
        (("main.py", "static/a.css"), "restart"),
        (("data.toml",), "restart"),
        ((), "restart"),
    ],
)
def test_classify(paths: tuple[str, ...], expected: str) -> None:
    assert classify(paths, asset_globs=DEFAULT_GLOBS, reload_globs=("*.py",)) == expected


def test_reload_include_wins_over_assets() -> None:
    kind = classify(
        ("templates/base.html",), asset_globs=DEFAULT_GLOBS, reload_globs=("*.py", "*.html")
    )
    assert kind == "restart"


def test_livereload_include_adds_globs() -> None:
    paths = ("content/post.md",)
    assert classify(paths, asset_globs=DEFAULT_GLOBS, reload_globs=("*.py",)) == "restart"
    assert (
        classify(paths, asset_globs=(*DEFAULT_GLOBS, "content/*.md"), reload_globs=("*.py",))
        == "page"
    )


def test_codec_round_trip_and_garbage() -> None:
    notices = [
        Notice(1, "css", ("a.css",)),
        Notice(2, "page", ("b.html", "c.js")),
        Notice(3, "crash", ("main.py",), "exit code 1"),
    ]
    assert decode(encode(notices)) == notices
    assert decode("not json") == []
    assert decode('[{"seq": 1, "kind": "restart", "paths": []}]') == []
    assert decode('{"seq": 1}') == []


def test_notice_board() -> None:
    board = NoticeBoard()
    try:
        assert read_notices(str(board.path), 0) == []
        board.post("css", ("a.css",))
        board.post("page", ("b.html",))
        assert [n.seq for n in read_notices(str(board.path), 0)] == [1, 2]
        assert [n.kind for n in read_notices(str(board.path), 1)] == ["page"]
        for _ in range(30):
            board.post("page", ("x.html",))
        kept = read_notices(str(board.path), 0)
        assert len(kept) == 16 and kept[-1].seq == 32
        assert board.directory.stat().st_mode & 0o077 == 0  # private run directory
    finally:
        board.close()
    assert not board.directory.exists()
    assert read_notices(str(board.path), 0) == []


class _Worker:
    def __init__(self) -> None:
        self.signals: list[int] = []

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)


def _notices(*, enabled: bool = True) -> tuple[BrowserNotices, dict[int, _Worker], list[Event]]:
    workers = {1: _Worker(), 2: _Worker()}
    reported: list[Event] = []
    config = Config.from_options(
        {"reload": True, "livereload": enabled, "livereload_includes": ("*.md",)}
    )
    return BrowserNotices.for_config(config, workers, reported.append), workers, reported


def test_browser_notices_signal_only_ready_workers() -> None:
    notices, workers, reported = _notices()
    try:
        report = notices.observing(reported.append)
        report(WorkerReady(1, 101, 5.0, is_broken=False))
        assert notices.saved(("static/site.css",)) is True
        assert workers[1].signals == [signal.SIGUSR1] and workers[2].signals == []
        assert any(isinstance(e, LogLine) and "swapping stylesheets" in e.message for e in reported)
        assert notices.saved(("notes/a.md",)) is True  # --livereload-include
        assert notices.saved(("main.py",)) is False
        assert notices.handoff_fields()["changed"] == ("main.py",)
        assert notices.handoff_fields()["livereload_token"]
        report(WorkerExited(1, 101, code=0, signal=None, is_expected=True))
        notices.saved(("static/site.css",))
        assert workers[1].signals == [signal.SIGUSR1, signal.SIGUSR1]  # gone: not signalled
    finally:
        notices.close()


def test_browser_notices_announce_a_crash_while_the_old_worker_serves() -> None:
    notices, workers, reported = _notices()
    try:
        report = notices.observing(reported.append)
        report(WorkerReady(1, 101, 5.0, is_broken=False))
        notices.saved(("main.py",))
        report(WorkerExited(2, 102, code=4, signal=None, is_expected=False, retry_in_s=None))
        assert workers[1].signals == [signal.SIGUSR1]
        assert notices.board is not None
        (crash,) = read_notices(str(notices.board.path), 0)
        assert (
            crash.kind == "crash" and "exit code 4" in crash.message and crash.paths == ("main.py",)
        )
    finally:
        notices.close()


def test_browser_notices_do_nothing_when_off() -> None:
    notices, _workers, _ = _notices(enabled=False)
    assert notices.saved(("static/site.css",)) is False  # the worker restarts as before
    assert notices.handoff_fields() == {
        "livereload_token": None,
        "notice_path": None,
        "changed": ("static/site.css",),
    }
    notices.close()
