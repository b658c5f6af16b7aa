"""What the supervisor hands a worker process: file descriptors and settings, as JSON.

Kept apart from the worker so the supervisor can build it without importing the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


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
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Handoff:
        """Inverse of `to_json`."""
        raw = json.loads(text)
        tls = raw.get("tls")
        return cls(
            config_json=raw["config_json"],
            listen_fds=tuple(raw["listen_fds"]),
            urls=tuple(raw["urls"]),
            events_fd=raw["events_fd"],
            parent_fd=raw["parent_fd"],
            generation=raw["generation"],
            project_dirs=tuple(raw["project_dirs"]),
            tls=(tls[0], tls[1]) if tls else None,
        )
