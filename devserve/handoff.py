"""What the supervisor hands a worker process: file descriptors and settings, as JSON.

Kept apart from the worker so the supervisor can build it without importing the server.

``output_fds`` (stdout, stderr), when set, are pipes the worker moves onto descriptors 1
and 2, so the app's output reaches the supervisor line by line (`devserve.outputpipe`).

``tls`` names the certificate and key; ``tls_listen_fds`` says which listening sockets
serve TLS with them (with ``--https-port`` one port stays plain). When the builder leaves
it out, it is read from the URLs: an ``https`` URL is a TLS listener.

Besides the handoff, the supervisor signals a worker: SIGTERM drains it, SIGUSR1 says a
live-reload notice is posted, and `STEP_ASIDE_SIGNAL` says a newer generation is starting
(`devserve.stepaside`).

``crash``, when set, makes the worker a *crash page* (#7): it never imports the app and
answers every request with how an earlier generation died before it was ready (exit code
or signal, its last output lines when the supervisor read them).
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from typing import Any

from devserve.events import exit_how

#: Sent to every serving worker when a newer generation starts (see the module docstring).
STEP_ASIDE_SIGNAL = signal.SIGUSR2


@dataclass(frozen=True, slots=True)
class Crash:
    """How a worker generation died, for the crash page that stands in for it.

    Exactly one of ``code`` (its exit status) and ``signal`` (e.g. ``"SIGSEGV"``) is set.
    ``output`` holds its last stdout/stderr lines, when ``is_output_read`` (else they went
    to the terminal). ``retry_in_s``: the app is restarted after this backoff (None: on the
    next save).
    """

    generation: int
    code: int | None
    signal: str | None
    output: tuple[str, ...] = ()
    is_output_read: bool = False
    retry_in_s: float | None = None

    @property
    def how(self) -> str:
        """``"exit code 3"``, ``"killed by SIGSEGV"`` (see `devserve.events.exit_how`)."""
        return exit_how(self.code, self.signal)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "generation": self.generation,
            "code": self.code,
            "signal": self.signal,
            "output": list(self.output),
            "is_output_read": self.is_output_read,
            "retry_in_s": self.retry_in_s,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Crash:
        """Inverse of `to_dict`."""
        return cls(
            generation=raw["generation"],
            code=raw["code"],
            signal=raw["signal"],
            output=tuple(raw["output"]),
            is_output_read=raw["is_output_read"],
            retry_in_s=raw["retry_in_s"],
        )


@dataclass(frozen=True, slots=True)
class Handoff:
    """What a worker process receives from the supervisor."""

    config_json: str
    listen_fds: tuple[int, ...]
    urls: tuple[str, ...]
    events_fd: int
    parent_fd: int
    generation: int
    project_dirs: tuple[str, ...]
    tls: tuple[str, str] | None = None
    tls_listen_fds: tuple[int, ...] | None = None
    #: Live reload (#7): the run's token, the notice file, the files that led to this worker.
    livereload_token: str | None = None
    notice_path: str | None = None
    changed: tuple[str, ...] = ()
    output_fds: tuple[int, int] | None = None
    crash: Crash | None = None

    def __post_init__(self) -> None:
        """Fill `tls_listen_fds` from the URL schemes when it was not given."""
        if self.tls_listen_fds is None:
            fds: tuple[int, ...] = ()
            if self.tls is not None:
                pairs = zip(self.listen_fds, self.urls, strict=True)
                fds = tuple(fd for fd, url in pairs if url.startswith("https"))
            object.__setattr__(self, "tls_listen_fds", fds)

    def is_tls_fd(self, fd: int) -> bool:
        """Whether the listening socket `fd` serves TLS."""
        return self.tls is not None and fd in (self.tls_listen_fds or ())

    def to_json(self) -> str:
        """Serialise for the command line or the fork server."""
        return json.dumps(
            {
                "config_json": self.config_json,
                "listen_fds": list(self.listen_fds),
                "urls": list(self.urls),
                "events_fd": self.events_fd,
                "parent_fd": self.parent_fd,
                "generation": self.generation,
                "project_dirs": list(self.project_dirs),
                "tls": list(self.tls) if self.tls else None,
                "tls_listen_fds": list(self.tls_listen_fds or ()),
                "livereload_token": self.livereload_token,
                "notice_path": self.notice_path,
                "changed": list(self.changed),
                "output_fds": list(self.output_fds) if self.output_fds else None,
                "crash": self.crash.to_dict() if self.crash is not None else None,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Handoff:
        """Inverse of `to_json`."""
        raw = json.loads(text)
        tls = raw.get("tls")
        output = raw.get("output_fds")
        crash = raw.get("crash")
        return cls(
            config_json=raw["config_json"],
            listen_fds=tuple(raw["listen_fds"]),
            urls=tuple(raw["urls"]),
            events_fd=raw["events_fd"],
            parent_fd=raw["parent_fd"],
            generation=raw["generation"],
            project_dirs=tuple(raw["project_dirs"]),
            tls=(tls[0], tls[1]) if tls else None,
            tls_listen_fds=tuple(raw["tls_listen_fds"]) if "tls_listen_fds" in raw else None,
            livereload_token=raw.get("livereload_token"),
            notice_path=raw.get("notice_path"),
            changed=tuple(raw.get("changed", ())),
            output_fds=(output[0], output[1]) if output else None,
            crash=Crash.from_dict(crash) if crash else None,
        )
