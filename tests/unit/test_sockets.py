"""Binding listeners: the URL each kind of socket reports, read back from the socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from devserve.sockets import BindError, bind


def test_tcp_port_zero_reports_the_bound_port() -> None:
    listener = bind(host="127.0.0.1", port=0, uds=None, fd=None, backlog=8, scheme="http")
    with listener.sock:
        port = listener.sock.getsockname()[1]
        assert listener.url == f"http://127.0.0.1:{port}"
        assert not listener.is_tls


def test_inherited_fd_reports_its_real_address() -> None:
    outer = socket.create_server(("127.0.0.1", 0))
    with outer:
        port = outer.getsockname()[1]
        listener = bind(
            host="ignored", port=1, uds=None, fd=os.dup(outer.fileno()), backlog=8, scheme="https"
        )
        with listener.sock:
            assert listener.url == f"https://127.0.0.1:{port}"
            assert listener.is_tls


def test_inherited_unix_fd_reports_its_path(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    outer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with outer:
        outer.bind(path)
        outer.listen()
        listener = bind(
            host="", port=0, uds=None, fd=os.dup(outer.fileno()), backlog=8, scheme="http"
        )
        with listener.sock:
            assert listener.url == f"http+unix://{path}"


def test_fd_that_is_not_a_socket_is_one_line(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as handle:
        with pytest.raises(BindError, match=r"--fd \d+ is not a usable socket"):
            bind(host="", port=0, uds=None, fd=handle.fileno(), backlog=8, scheme="http")


def test_uds_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    first = bind(host="", port=0, uds=path, fd=None, backlog=8, scheme="http")
    first.sock.close()  # the file stays behind, as after a crash
    second = bind(host="", port=0, uds=path, fd=None, backlog=8, scheme="http")
    with second.sock:
        assert second.url == f"http+unix://{path}"
        assert os.stat(path).st_mode & 0o777 == 0o666
