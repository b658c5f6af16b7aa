"""Tests for devserve.trust: pure plans per platform, the trust heuristic and running a plan."""

from __future__ import annotations

import hashlib
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from devserve import certs, trust
from devserve.errors import CertificateError

UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
NO_TOOLS: dict[str, str] = {}


def _which(*found: str) -> trust.Which:
    return lambda name: f"/usr/bin/{name}" if name in found else None


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(certs.build_ca(hostname="devbox", user="alice")[0])
    return path


def _ids(ca_file: Path) -> tuple[str, str]:
    der = ssl.PEM_cert_to_DER_cert(ca_file.read_text())
    return hashlib.sha256(der).hexdigest()[:8], hashlib.sha1(der, usedforsecurity=False).hexdigest()


def _argvs(steps: Sequence[trust.TrustStep]) -> list[tuple[str, ...]]:
    return [step.argv for step in steps]


@pytest.mark.parametrize(
    ("os_release", "expected"),
    [
        (UBUNTU, "debian"),
        ("ID=debian\n", "debian"),
        ("ID=alpine\n", "debian"),
        ('ID="linuxmint"\nID_LIKE="ubuntu debian"\n', "debian"),
        ("ID=fedora\n", "fedora"),
        ('ID="rhel"\nID_LIKE="fedora"\n', "fedora"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "fedora"),
        ('ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n', "suse"),
        ("ID=arch\n", "arch"),
        ("ID=manjaro\nID_LIKE=arch\n", "arch"),
        ("ID=gentoo\n", "unknown"),
        ("", "unknown"),
        ("garbage without equals\n", "unknown"),
    ],
)
def test_linux_flavour(os_release: str, expected: str) -> None:
    assert trust.linux_flavour(os_release) == expected


def test_debian_plan(ca_file: Path) -> None:
    fp8, _ = _ids(ca_file)
    anchor = f"/usr/local/share/ca-certificates/devserve-{fp8}.crt"
    steps = trust.trust_plan(ca_file, "linux", NO_TOOLS, _which(), os_release=UBUNTU)
    assert _argvs(steps) == [
        ("install", "-m", "0644", str(ca_file), anchor),
        ("update-ca-certificates",),
    ]
    assert all(step.needs_root for step in steps)
    undo = trust.untrust_plan(ca_file, "linux", NO_TOOLS, _which(), os_release=UBUNTU)
    assert _argvs(undo) == [("rm", "-f", anchor), ("update-ca-certificates",)]


def test_fedora_plan(ca_file: Path) -> None:
    fp8, _ = _ids(ca_file)
    anchor = f"/etc/pki/ca-trust/source/anchors/devserve-{fp8}.pem"
    steps = trust.trust_plan(ca_file, "linux", NO_TOOLS, _which(), os_release="ID=fedora\n")
    assert _argvs(steps) == [
        ("install", "-m", "0644", str(ca_file), anchor),
        ("update-ca-trust", "extract"),
    ]


def test_suse_plan(ca_file: Path) -> None:
    fp8, _ = _ids(ca_file)
    steps = trust.trust_plan(ca_file, "linux", NO_TOOLS, _which(), os_release="ID_LIKE=suse\n")
    assert steps[0].argv[-1] == f"/etc/pki/trust/anchors/devserve-{fp8}.pem"


def test_arch_plan(ca_file: Path) -> None:
    steps = trust.trust_plan(ca_file, "linux", NO_TOOLS, _which(), os_release="ID=arch\n")
    assert _argvs(steps) == [("trust", "anchor", "--store", str(ca_file))]
    assert steps[0].needs_root
    undo = trust.untrust_plan(ca_file, "linux", NO_TOOLS, _which(), os_release="ID=arch\n")
    assert _argvs(undo) == [("trust", "anchor", "--remove", str(ca_file))]


@pytest.mark.parametrize(
    ("tool", "first_command"),
    [("update-ca-certificates", "install"), ("update-ca-trust", "install"), ("trust", "trust")],
)
def test_unknown_linux_falls_back_to_installed_tools(
    ca_file: Path, tool: str, first_command: str
) -> None:
    steps = trust.trust_plan(ca_file, "linux", NO_TOOLS, _which(tool), os_release="ID=gentoo\n")
    assert steps[0].argv[0] == first_command
    assert tool in {step.argv[0] for step in steps}


def test_unknown_linux_without_tools_has_no_system_steps(ca_file: Path) -> None:
    assert trust.trust_plan(ca_file, "linux", NO_TOOLS, _which(), os_release="") == []


def test_macos_plan(ca_file: Path) -> None:
    _, sha1 = _ids(ca_file)
    steps = trust.trust_plan(ca_file, "darwin", NO_TOOLS, _which())
    assert _argvs(steps) == [
        (
            "security",
            "add-trusted-cert",
            "-d",
            "-r",
            "trustRoot",
            "-k",
            "/Library/Keychains/System.keychain",
            str(ca_file),
        )
    ]
    undo = trust.untrust_plan(ca_file, "darwin", NO_TOOLS, _which())
    assert _argvs(undo) == [
        ("security", "remove-trusted-cert", "-d", str(ca_file)),
        (
            "security",
            "delete-certificate",
            "-Z",
            sha1.upper(),
            "/Library/Keychains/System.keychain",
        ),
    ]
    assert all(step.needs_root for step in [*steps, *undo])


def test_windows_plan_ignores_windows_certutil_for_nss(ca_file: Path, tmp_path: Path) -> None:
    _, sha1 = _ids(ca_file)
    steps = trust.trust_plan(
        ca_file, "win32", NO_TOOLS, _which("certutil"), nss_databases=[tmp_path]
    )
    assert _argvs(steps) == [("certutil", "-addstore", "-f", "ROOT", str(ca_file))]
    undo = trust.untrust_plan(
        ca_file, "win32", NO_TOOLS, _which("certutil"), nss_databases=[tmp_path]
    )
    assert _argvs(undo) == [("certutil", "-delstore", "ROOT", sha1)]


def test_unsupported_platform(ca_file: Path) -> None:
    assert trust.trust_plan(ca_file, "freebsd14", NO_TOOLS, _which()) == []


def test_nss_steps(ca_file: Path, tmp_path: Path) -> None:
    fp8, _ = _ids(ca_file)
    db = tmp_path / "profile"
    steps = trust.trust_plan(ca_file, "darwin", NO_TOOLS, _which("certutil"), nss_databases=[db])
    nss = steps[-1]
    assert not nss.needs_root
    assert nss.argv == (
        "certutil",
        "-A",
        "-d",
        f"sql:{db}",
        "-n",
        f"devserve local CA {fp8}",
        "-t",
        "C,,",
        "-i",
        str(ca_file),
    )
    undo = trust.untrust_plan(ca_file, "darwin", NO_TOOLS, _which("certutil"), nss_databases=[db])
    assert undo[-1].argv == ("certutil", "-D", "-d", f"sql:{db}", "-n", f"devserve local CA {fp8}")


def test_nss_skipped_without_certutil(ca_file: Path, tmp_path: Path) -> None:
    steps = trust.trust_plan(
        ca_file, "linux", NO_TOOLS, _which(), os_release=UBUNTU, nss_databases=[tmp_path]
    )
    assert all(step.argv[0] != "certutil" for step in steps)


def _make_db(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "cert9.db").write_bytes(b"")
    return path


def test_find_nss_databases_linux(tmp_path: Path) -> None:
    chrome = _make_db(tmp_path / ".pki" / "nssdb")
    firefox = _make_db(tmp_path / ".mozilla" / "firefox" / "abc.default-release")
    snap = _make_db(tmp_path / "snap/firefox/common/.mozilla/firefox/xyz.default")
    (tmp_path / ".mozilla" / "firefox" / "empty.profile").mkdir()
    found = trust.find_nss_databases({"HOME": str(tmp_path)}, "linux")
    assert found == sorted([chrome, firefox, snap])


def test_find_nss_databases_macos_and_windows(tmp_path: Path) -> None:
    mac = _make_db(tmp_path / "Library/Application Support/Firefox/Profiles/p1")
    _make_db(tmp_path / ".pki" / "nssdb")  # Chrome on macOS uses the keychain, not NSS
    assert trust.find_nss_databases({"HOME": str(tmp_path)}, "darwin") == [mac]
    win = _make_db(tmp_path / "Roaming" / "Mozilla" / "Firefox" / "Profiles" / "p2")
    environ = {"USERPROFILE": str(tmp_path), "APPDATA": str(tmp_path / "Roaming")}
    assert trust.find_nss_databases(environ, "win32") == [win]


def test_plan_discovers_nss_databases_from_environ(ca_file: Path, tmp_path: Path) -> None:
    db = _make_db(tmp_path / ".pki" / "nssdb")
    environ = {"HOME": str(tmp_path)}
    steps = trust.trust_plan(ca_file, "linux", environ, _which("certutil"), os_release=UBUNTU)
    assert steps[-1].argv[:4] == ("certutil", "-A", "-d", f"sql:{db}")


def test_plan_rejects_garbled_ca(tmp_path: Path) -> None:
    garbled = tmp_path / "ca.pem"
    garbled.write_text("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match=r"ca\.pem is not a PEM certificate"):
        trust.untrust_plan(garbled, "linux", NO_TOOLS, _which(), os_release=UBUNTU)
    garbled.write_text("nothing")
    with pytest.raises(CertificateError):
        trust.is_ca_trusted(garbled)


def test_command_line_quotes() -> None:
    step = trust.TrustStep("x", ("certutil", "-n", "devserve local CA 1234"), needs_root=False)
    assert step.command_line() == "certutil -n 'devserve local CA 1234'"


# -- is_ca_trusted -----------------------------------------------------------------------------


def test_trusted_when_in_bundle(ca_file: Path, tmp_path: Path) -> None:
    other = certs.build_ca(hostname="elsewhere", user="bob")[0]
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(b"# a comment\n" + other + ca_file.read_bytes())
    no_anchors: list[str] = []
    assert trust.is_ca_trusted(ca_file, bundles=[bundle], anchor_dirs=no_anchors)
    bundle.write_bytes(other)
    assert not trust.is_ca_trusted(ca_file, bundles=[bundle], anchor_dirs=no_anchors)
    assert not trust.is_ca_trusted(ca_file, bundles=[tmp_path / "missing"], anchor_dirs=no_anchors)


def test_bundle_with_broken_block_is_tolerated(ca_file: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.crt"
    broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
    bundle.write_bytes(broken + ca_file.read_bytes())
    assert trust.is_ca_trusted(ca_file, bundles=[bundle], anchor_dirs=[])


def test_trusted_when_anchor_installed(ca_file: Path, tmp_path: Path) -> None:
    fp8, _ = _ids(ca_file)
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    assert not trust.is_ca_trusted(ca_file, bundles=[], anchor_dirs=[str(anchors)])
    (anchors / f"devserve-{fp8}.crt").write_bytes(ca_file.read_bytes())
    assert trust.is_ca_trusted(ca_file, bundles=[], anchor_dirs=[str(anchors), "/nonexistent"])


def test_fresh_ca_is_not_trusted_by_the_system(ca_file: Path) -> None:
    assert trust.is_ca_trusted(ca_file) is False


# -- run_plan ----------------------------------------------------------------------------------


ROOT_STEP = trust.TrustStep("system", ("update-ca-certificates",), needs_root=True)
USER_STEP = trust.TrustStep("browser", ("certutil", "-A", "-n", "a b"), needs_root=False)


class FakeRunner:
    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.codes = codes or {}

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(tuple(argv))
        return self.codes.get(argv[0], 0)


def test_run_plan_as_root_runs_everything() -> None:
    runner, lines = FakeRunner(), list[str]()
    result = trust.run_plan(
        [ROOT_STEP, USER_STEP], dry_run=False, runner=runner, is_privileged=True, echo=lines.append
    )
    assert runner.calls == [ROOT_STEP.argv, USER_STEP.argv]
    assert result == trust.PlanResult(ran=(ROOT_STEP, USER_STEP))
    assert lines == ["system: update-ca-certificates", "browser: certutil -A -n 'a b'"]


@pytest.mark.skipif(sys.platform == "win32", reason="sudo prefix is POSIX only")
def test_run_plan_prints_root_steps_when_not_root() -> None:
    runner, lines = FakeRunner(), list[str]()
    result = trust.run_plan(
        [ROOT_STEP, USER_STEP], dry_run=False, runner=runner, is_privileged=False, echo=lines.append
    )
    assert runner.calls == [USER_STEP.argv]
    assert result.left_to_user == (ROOT_STEP,)
    assert result.ran == (USER_STEP,)
    assert lines[-2:] == [
        "These steps need administrator rights; run them yourself:",
        "  sudo update-ca-certificates",
    ]


def test_run_plan_records_failures() -> None:
    runner = FakeRunner({"certutil": 255})
    result = trust.run_plan(
        [ROOT_STEP, USER_STEP],
        dry_run=False,
        runner=runner,
        is_privileged=True,
        echo=lambda _: None,
    )
    assert result.ran == (ROOT_STEP,)
    assert result.failed == ((USER_STEP, 255),)


@pytest.mark.skipif(sys.platform == "win32", reason="sudo prefix is POSIX only")
def test_run_plan_dry_run_runs_nothing() -> None:
    runner, lines = FakeRunner(), list[str]()
    result = trust.run_plan(
        [ROOT_STEP, USER_STEP], dry_run=True, runner=runner, is_privileged=False, echo=lines.append
    )
    assert runner.calls == []
    assert result == trust.PlanResult()
    assert lines == [
        "# system\nsudo update-ca-certificates",
        "# browser\ncertutil -A -n 'a b'",
    ]


def test_run_plan_checks_privilege_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "_is_privileged", lambda: False)
    result = trust.run_plan([ROOT_STEP], dry_run=False, runner=FakeRunner(), echo=lambda _: None)
    assert result.left_to_user == (ROOT_STEP,)


def test_run_command_exit_codes() -> None:
    assert trust.run_command([sys.executable, "-c", "pass"]) == 0
    assert trust.run_command([sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert trust.run_command(["devserve-no-such-command-xyz"]) == 127
