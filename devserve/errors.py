"""The devserve exception tree.

Every error devserve raises on purpose derives from `DevserveError`::

    DevserveError
    ├── ConfigError          bad option values; carries every problem found
    ├── AppLoadError         the APP string names nothing importable / callable
    ├── CertificateError     unreadable, mismatched or expired TLS files
    ├── IPCError             the supervisor <-> worker channel broke
    │   └── FrameTooLarge    a frame exceeded the decoder's size cap
    └── PolicyError          the worker lifecycle got an input it has no rule for

Errors a user can cause are rendered by the CLI as one line and a non-zero exit.
"""

from __future__ import annotations


class DevserveError(Exception):
    """Base class of every error devserve raises on purpose."""


class ConfigError(DevserveError):
    """One or more option values are invalid.

    Attributes:
        problems: one human sentence per problem, each naming the option and its source.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class AppLoadError(DevserveError):
    """The application could not be located or is not an ASGI callable."""


class CertificateError(DevserveError):
    """A TLS certificate or key file is unusable."""


class IPCError(DevserveError):
    """The channel between supervisor and worker is broken or out of sync."""


class FrameTooLarge(IPCError):
    """A frame on the IPC channel is larger than the decoder accepts."""


class PolicyError(DevserveError):
    """The worker lifecycle received an input that has no rule in its current state."""
