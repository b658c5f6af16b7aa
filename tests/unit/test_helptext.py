"""``devserve --help`` by topic: where each option goes, and the rendered sections."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from devserve.cli import serve_command
from devserve.helptext import (
    EXAMPLES,
    OTHER,
    SECTION_ORDER,
    SectionedCommand,
    group_params,
    section_of,
)


def test_explicit_names_then_prefixes_then_other() -> None:
    assert section_of("port") == "Server"
    assert section_of("reload_dirs") == "Reload"
    assert section_of("reload") == "Reload"
    assert section_of("livereload") == "Reload"
    assert section_of("ws_max_size") == "WebSocket"
    assert section_of("ssl_certfile") == "HTTPS and TLS"
    assert section_of("https_port") == "HTTPS and TLS"
    assert section_of("timeout_keep_alive_s") == "Limits and timeouts"
    assert section_of("ui_refresh_hz") == "Dashboard"
    assert section_of("log_format") == "Logging"
    assert section_of("debug_pages") == "Dev pages and host checks"
    # a prefix must be a whole word: "wsgi_thing" is not a WebSocket option
    assert section_of("wsgi_thing") == OTHER
    assert section_of("brand_new_option") == OTHER


def test_groups_keep_declaration_order_and_skip_arguments_and_empty_sections() -> None:
    params = [
        click.Argument(["app"]),
        click.Option(["--reload-dir", "reload_dirs"]),
        click.Option(["--port"]),
        click.Option(["--reload"], is_flag=True),
        click.Option(["--shiny"]),
    ]
    grouped = group_params(params)
    assert [(s, [o.name for o in opts]) for s, opts in grouped] == [
        ("Server", ["port"]),
        ("Reload", ["reload_dirs", "reload"]),
        (OTHER, ["shiny"]),
    ]


def test_every_option_of_the_real_command_has_a_topic() -> None:
    names = {
        param.name
        for section, options in group_params(serve_command.params)
        if section == OTHER
        for param in options
    }
    # Only the generic flags land in "Other"; a new option without a topic shows up here.
    assert names <= {"version", "help"}, f"give these a section in devserve/helptext.py: {names}"


def test_help_lists_sections_in_order_every_option_and_examples() -> None:
    result = CliRunner().invoke(serve_command, ["--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    headings = [line[:-1] for line in result.output.splitlines() if re.fullmatch(r"\S.*:", line)]
    topics = [h for h in headings if h in SECTION_ORDER]
    assert topics == sorted(topics, key=SECTION_ORDER.index)
    assert topics[:2] == ["Server", "Reload"] and "Examples" in headings
    assert "Options" not in headings
    for param in serve_command.params:
        for flag in getattr(param, "opts", []):
            assert flag in result.output, flag
    for command, _ in EXAMPLES:
        assert command in result.output  # printed as written, not re-wrapped


def test_a_command_without_examples_has_no_examples_section() -> None:
    @click.command(cls=SectionedCommand, examples=())
    @click.option("--port")
    def tiny(port: str | None) -> None:
        """Tiny."""

    output = CliRunner().invoke(tiny, ["--help"]).output
    assert "Server:" in output and "Examples" not in output


def test_examples_side_by_side_when_they_fit_else_stacked() -> None:
    @click.command(cls=SectionedCommand, examples=(("tiny --port 1", "one"), ("tiny", "two")))
    def tiny() -> None:
        """Tiny."""

    wide = CliRunner().invoke(tiny, ["--help"], terminal_width=80).output
    assert "  tiny --port 1  one\n  tiny           two\n" in wide
    narrow = CliRunner().invoke(tiny, ["--help"], terminal_width=16).output
    assert "  tiny --port 1\n    one\n" in narrow
