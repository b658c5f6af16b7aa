"""Pure tests of `devserve.mounts`: mount tables and the polling decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.mounts import (
    Mount,
    PollingDecision,
    decide_polling,
    find_mount,
    parse_mountinfo,
    polling_reason,
)
from devserve.watch import WatchSettings

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
