"""Polling detection: decide whether native file events can be trusted for the watched dirs.

Native events do not arrive on network and VM-shared file systems, so with
``force_polling=None`` `decide_polling` reads `/proc/self/mountinfo` (parsed by the pure
`parse_mountinfo`) and `/proc/version`, and explains its choice in one line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class PollingSettings(Protocol):
    """The slice of `devserve.watch.WatchSettings` that `decide_polling` reads."""

    @property
    def dirs(self) -> tuple[Path, ...]:
        """Watched directories."""

    @property
    def force_polling(self) -> bool | None:
        """True/False forces polling on/off; None detects it from the mounts."""


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``, reduced to what polling detection needs."""

    mount_point: str
    fs_type: str
    source: str
    super_options: str = ""


_NO_EVENT_FILESYSTEMS = {
    "nfs": "nfs", "nfs4": "nfs", "cifs": "cifs (SMB share)", "smb3": "smb3 (SMB share)",
    "smbfs": "smbfs (SMB share)", "9p": "9p", "drvfs": "drvfs (WSL drive)",
    "fuse.sshfs": "sshfs", "vboxsf": "vboxsf (VirtualBox shared folder)",
    "virtiofs": "virtiofs (VM shared folder)", "fakeowner": "fakeowner (Docker Desktop bind mount)",
    "fuse.grpcfuse": "grpcfuse (Docker Desktop bind mount)", "osxfs": "osxfs (Docker Desktop)",
}  # fmt: skip
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_WSL_DRIVE = re.compile(r"/mnt/[a-zA-Z](/|$)")


def _unescape(field_text: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), field_text)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    r"""Parse ``/proc/self/mountinfo`` text; malformed lines are skipped.

    Line format: ``id parent major:minor root mount_point options [optional...] - fstype source
    super_options``, with spaces in paths written as ``\040``.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        tail = fields[fields.index("-", 6) + 1 :]
        if len(tail) < 2:  # noqa: PLR2004 - fstype and source are required
            continue
        options = tail[2] if len(tail) > 2 else ""  # noqa: PLR2004 - super options are optional
        mounts.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1]), options))
    return tuple(mounts)


def find_mount(path: str, mounts: Iterable[Mount]) -> Mount | None:
    """Return the mount holding `path`: the longest mount point, the later one on a tie."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/")
        is_inside = path == point or path.startswith(point + "/") or mount.mount_point == "/"
        if is_inside and (best is None or len(point) >= len(best.mount_point.rstrip("/"))):
            best = mount
    return best


def polling_reason(dirs: Iterable[str], mounts: Iterable[Mount], proc_version: str) -> str | None:
    """Explain why native events cannot be trusted for any of `dirs`, or return None.

    Args:
        dirs: absolute watched paths.
        mounts: parsed mount table.
        proc_version: contents of ``/proc/version`` (``""`` if unknown).

    Returns:
        e.g. ``"/work is on 9p (WSL drive)"``, or None when native events work.
    """
    mounts = tuple(mounts)
    is_wsl = "microsoft" in proc_version.lower()
    for path in dirs:
        mount = find_mount(path, mounts)
        fs_type = mount.fs_type if mount else ""
        kind = _NO_EVENT_FILESYSTEMS.get(fs_type)
        if kind is None and fs_type.startswith("fuse.sshfs"):
            kind = "sshfs"
        if kind == "9p" and mount and (is_wsl or "drvfs" in mount.source + mount.super_options):
            kind = "9p (WSL drive)"
        if kind is None and is_wsl and _WSL_DRIVE.match(path):
            kind = "a Windows drive under WSL"
        if kind is not None:
            return f"{path} is on {kind}"
    return None


@dataclass(frozen=True)
class PollingDecision:
    """Whether to poll, and the one-line reason (for ``"polling for changes: <reason>"``)."""

    should_poll: bool
    reason: str


def _read_text_or_empty(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def decide_polling(
    settings: PollingSettings,
    *,
    read_text: Callable[[str], str] = _read_text_or_empty,
    platform: str = sys.platform,
) -> PollingDecision:
    """Resolve ``settings.force_polling``; auto-detection only looks at Linux mount tables."""
    if settings.force_polling is not None:
        how = "on" if settings.force_polling else "off"
        return PollingDecision(settings.force_polling, f"polling forced {how}")
    if not platform.startswith("linux"):
        return PollingDecision(False, "native events")
    mounts = parse_mountinfo(read_text("/proc/self/mountinfo"))
    dirs = [str(d.absolute()) for d in settings.dirs]
    reason = polling_reason(dirs, mounts, read_text("/proc/version"))
    return PollingDecision(reason is not None, reason or "native events")
