"""Asset changes: what needs a new worker, and the notice file (#7)."""

from __future__ import annotations

import pytest

from devserve.livenotice import (
    DEFAULT_GLOBS,
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
