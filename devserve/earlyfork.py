"""Start the fork server's interpreter before the supervisor has finished starting.

``devserve --reload`` binds its sockets, then calls `spawn_fork_server` straight away:
the fork server (`devserve.forkserver`) imports the whole worker stack, which takes about
as long as the supervisor takes to import and set up the rest of itself, so the two boot
side by side instead of one after the other (the first worker is forked sooner). This
module imports only the standard library pieces that need, so nothing delays the spawn.

`devserve.forklauncher.ForkServerLauncher` adopts the process; it also spawns through
here when it rebuilds the fork server later.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devserve.config import Config
    from devserve.sockets import Listener

_STDERR_FD = 2


@dataclass(frozen=True, slots=True)
class SpawnedForkServer:
    """A fork server process and the supervisor's end of its control socket."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket

    def stop(self) -> None:
        """Kill it and close the socket (start-up failed after it was spawned)."""
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


def uses_fork_server(config: Config) -> bool:
    """Whether workers fork from a fork server: ``--reload-preload`` (the default) and fork."""
    return config.reload_preload and hasattr(os, "fork")


def fork_server_fds(listeners: Sequence[Listener], parent_fd: int) -> list[int]:
    """The descriptors a fork server keeps for its children: the listeners, the parent pipe."""
    return [*(listener.sock.fileno() for listener in listeners), parent_fd]


def parent_death_pipe() -> tuple[int, int]:
    """A (read, write) pipe: children inherit the read end and exit when it reads EOF."""
    read_fd, write_fd = os.pipe()
    os.set_inheritable(read_fd, True)
    return read_fd, write_fd


def spawn_fork_server(
    *,
    inherit_fds: Sequence[int],
    parent_fd: int,
    project_dirs: Sequence[str],
    stdout_to_stderr: bool,
) -> SpawnedForkServer:
    """Start ``python -m devserve.forkserver`` without waiting for it.

    Args:
        inherit_fds: descriptors it must hold for its children, with the same numbers
            (the listeners and the parent pipe's read end).
        parent_fd: the parent pipe's read end (it exits when the supervisor is gone).
        project_dirs: the watched directories, which it never preloads.
        stdout_to_stderr: the supervisor reads workers' output from pipes (``--ui tui``
            or ``json``), so what a preloaded module prints goes to stderr, keeping
            stdout the supervisor's alone.

    Raises:
        OSError: the interpreter could not be started.
    """
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [
                sys.executable,
                "-m",
                "devserve.forkserver",
                str(theirs.fileno()),
                str(parent_fd),
                json.dumps(list(project_dirs)),
            ],
            pass_fds=(theirs.fileno(), *inherit_fds),
            stdin=subprocess.DEVNULL,
            stdout=_STDERR_FD if stdout_to_stderr else None,
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    ours.setblocking(False)
    return SpawnedForkServer(proc, ours)
