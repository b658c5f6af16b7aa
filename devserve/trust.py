"""Whether the devserve CA is trusted on this machine, and the commands that (un)trust it.

Theory of operation:

- ``trust_plan`` / ``untrust_plan`` are pure: the CA file, ``sys.platform``, the text of
  ``/etc/os-release`` and a ``which`` function go in; a list of ``TrustStep`` comes out. Each step
  is one command line plus whether it needs root. Nothing is run.
- System stores: Debian/Ubuntu/Alpine copy into ``/usr/local/share/ca-certificates`` and run
  ``update-ca-certificates``; Fedora/RHEL use ``/etc/pki/ca-trust/source/anchors`` and
  ``update-ca-trust``; SUSE ``/etc/pki/trust/anchors``; Arch ``trust anchor``; macOS the System
  keychain via ``security``; Windows the machine ROOT store via ``certutil``. The installed file is
  named ``devserve-<first 8 hex of the SHA-256>`` so two CAs never overwrite each other.
- Browsers with their own NSS database (Firefox everywhere, Chrome on Linux) get a ``certutil -A``
  step per database, when NSS's ``certutil`` is installed; these never need root.
- ``run_plan`` is the shell: it runs what it may and prints, rather than runs, the steps that need
  root when devserve is not root, so nothing ever prompts for a password behind the user's back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shlex
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from devserve.errors import CertificateError

Which = Callable[[str], "str | None"]
Runner = Callable[[Sequence[str]], int]

MACOS_SYSTEM_KEYCHAIN = "/Library/Keychains/System.keychain"
ANCHOR_DIRS = (
    "/usr/local/share/ca-certificates",
    "/etc/pki/ca-trust/source/anchors",
    "/etc/pki/trust/anchors",
)
COMMAND_TIMEOUT_S = 120
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class TrustStep:
    """One command of a trust or untrust plan.

    Attributes:
        description: what the command achieves, for the user.
        argv: the command line.
        needs_root: True when it writes a system-wide store.
    """

    description: str
    argv: tuple[str, ...]
    needs_root: bool

    def command_line(self) -> str:
        """Return ``argv`` quoted for a POSIX shell."""
        return shlex.join(self.argv)


@dataclass(frozen=True)
class PlanResult:
    """What ``run_plan`` did.

    Attributes:
        ran: steps that were run and succeeded.
        left_to_user: steps that need root and were printed instead of run.
        failed: steps that were run and failed, with their exit code.
    """

    ran: tuple[TrustStep, ...] = ()
    left_to_user: tuple[TrustStep, ...] = ()
    failed: tuple[tuple[TrustStep, int], ...] = ()


@dataclass(frozen=True)
class _CA:
    path: str
    sha256_hex: str
    short_id: str  # first 8 hex digits of the SHA-256, used in file names and nicknames
    sha1_hex: str  # how macOS and Windows name a certificate in a store


def _read_ca(ca_cert_path: Path) -> _CA:
    try:
        cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    except ValueError:
        raise CertificateError(f"{ca_cert_path} is not a PEM certificate") from None
    der = cert.public_bytes(Encoding.DER)
    sha256_hex = hashlib.sha256(der).hexdigest()
    sha1_hex = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    return _CA(str(ca_cert_path), sha256_hex, sha256_hex[:8], sha1_hex)


def linux_flavour(os_release: str) -> str:
    """Classify a Linux distribution from the text of ``/etc/os-release``.

    Args:
        os_release: the file's content ("" when it does not exist).

    Returns:
        ``"debian"``, ``"fedora"``, ``"suse"``, ``"arch"`` or ``"unknown"``.
    """
    fields = {}
    for line in os_release.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'").lower()
    ids = {fields.get("ID", ""), *fields.get("ID_LIKE", "").split()}
    families = (
        ("debian", {"debian", "ubuntu", "alpine"}),
        ("fedora", {"fedora", "rhel", "centos"}),
        ("suse", {"suse", "opensuse", "sles"}),
        ("arch", {"arch", "archlinux"}),
    )
    for flavour, members in families:
        if ids & members:
            return flavour
    return "unknown"


def _flavour_by_tools(which: Which) -> str:
    tools = (("update-ca-certificates", "debian"), ("update-ca-trust", "fedora"), ("trust", "arch"))
    return next((flavour for tool, flavour in tools if which(tool)), "unknown")


def _linux_steps(ca: _CA, flavour: str, *, install: bool) -> list[TrustStep]:
    if flavour == "arch":
        verb = ("--store", "add to") if install else ("--remove", "remove from")
        argv = ("trust", "anchor", verb[0], ca.path)
        return [TrustStep(f"{verb[1]} the system trust store", argv, needs_root=True)]
    layouts = {
        "debian": ("/usr/local/share/ca-certificates", "crt", ("update-ca-certificates",)),
        "fedora": ("/etc/pki/ca-trust/source/anchors", "pem", ("update-ca-trust", "extract")),
        "suse": ("/etc/pki/trust/anchors", "pem", ("update-ca-certificates",)),
    }
    if flavour not in layouts:
        return []
    directory, suffix, refresh = layouts[flavour]
    anchor = f"{directory}/devserve-{ca.short_id}.{suffix}"
    if install:
        copy = TrustStep(
            f"install the CA as {anchor}", ("install", "-m", "0644", ca.path, anchor), True
        )
    else:
        copy = TrustStep(f"remove {anchor}", ("rm", "-f", anchor), True)
    return [copy, TrustStep("rebuild the system CA bundle", refresh, needs_root=True)]


def _macos_steps(ca: _CA, *, install: bool) -> list[TrustStep]:
    keychain = MACOS_SYSTEM_KEYCHAIN
    if install:
        add = ("security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", keychain, ca.path)
        return [TrustStep("trust the CA in the macOS System keychain", add, True)]
    untrust = ("security", "remove-trusted-cert", "-d", ca.path)
    delete = ("security", "delete-certificate", "-Z", ca.sha1_hex.upper(), keychain)
    return [
        TrustStep("remove the CA's trust settings", untrust, True),
        TrustStep("delete the CA from the System keychain", delete, True),
    ]


def _windows_steps(ca: _CA, *, install: bool) -> list[TrustStep]:
    if install:
        add = ("certutil", "-addstore", "-f", "ROOT", ca.path)
        return [TrustStep("add the CA to the Windows ROOT store", add, True)]
    delete = ("certutil", "-delstore", "ROOT", ca.sha1_hex)
    return [TrustStep("remove the CA from the Windows ROOT store", delete, True)]


def _system_steps(
    ca: _CA, platform: str, os_release: str, which: Which, *, install: bool
) -> list[TrustStep]:
    if platform == "darwin":
        return _macos_steps(ca, install=install)
    if platform == "win32":
        return _windows_steps(ca, install=install)
    if platform.startswith("linux"):
        flavour = linux_flavour(os_release)
        if flavour == "unknown":
            flavour = _flavour_by_tools(which)
        return _linux_steps(ca, flavour, install=install)
    return []


def find_nss_databases(environ: Mapping[str, str], platform: str) -> list[Path]:
    """Find NSS certificate databases (Firefox profiles, Chrome's ``~/.pki/nssdb`` on Linux).

    Args:
        environ: the process environment; ``HOME``/``APPDATA`` locate the databases.
        platform: ``sys.platform`` value.

    Returns:
        Directories holding a ``cert9.db``, sorted.
    """
    home = Path(environ.get("HOME") or environ.get("USERPROFILE") or Path.home())
    if platform == "darwin":
        patterns = [home / "Library/Application Support/Firefox/Profiles"]
    elif platform == "win32":
        appdata = Path(environ.get("APPDATA") or home / "AppData" / "Roaming")
        patterns = [appdata / "Mozilla" / "Firefox" / "Profiles"]
    else:
        patterns = [
            home / ".mozilla/firefox",
            home / "snap/firefox/common/.mozilla/firefox",
            home / ".var/app/org.mozilla.firefox/.mozilla/firefox",
        ]
    candidates = [home / ".pki" / "nssdb"] if platform.startswith("linux") else []
    candidates += [profile for base in patterns if base.is_dir() for profile in base.iterdir()]
    return sorted(db for db in candidates if (db / "cert9.db").is_file())


def _nss_steps(ca: _CA, databases: Iterable[Path], *, install: bool) -> list[TrustStep]:
    steps = []
    for db in databases:
        target = ("-d", f"sql:{db}", "-n", f"devserve local CA {ca.short_id}")
        if install:
            add = ("certutil", "-A", *target, "-t", "C,,", "-i", ca.path)
            steps.append(TrustStep(f"trust the CA in the NSS database {db}", add, False))
        else:
            delete = ("certutil", "-D", *target)
            steps.append(TrustStep(f"remove the CA from the NSS database {db}", delete, False))
    return steps


def trust_plan(
    ca_cert_path: Path,
    platform: str,
    environ: Mapping[str, str],
    which: Which = shutil.which,
    *,
    os_release: str = "",
    nss_databases: Sequence[Path] | None = None,
    install: bool = True,
) -> list[TrustStep]:
    """Return the commands that make this machine trust the CA.

    Args:
        ca_cert_path: the CA certificate (PEM); read for its fingerprint.
        platform: ``sys.platform`` value.
        environ: the process environment, used to find NSS databases when not given.
        which: looks up a command on PATH (``shutil.which``; tests pass a fake).
        os_release: the text of ``/etc/os-release`` on Linux.
        nss_databases: NSS databases to update; None to look with ``find_nss_databases``.
        install: False for the commands that undo the plan (see ``untrust_plan``).

    Returns:
        The steps, system store first; empty when the platform is not supported.

    Raises:
        CertificateError: the CA file is not a PEM certificate.
        OSError: the CA file cannot be read.
    """
    ca = _read_ca(ca_cert_path)
    steps = _system_steps(ca, platform, os_release, which, install=install)
    if platform != "win32" and which("certutil"):  # on Windows "certutil" is not NSS's tool
        if nss_databases is None:
            nss_databases = find_nss_databases(environ, platform)
        steps += _nss_steps(ca, nss_databases, install=install)
    return steps


def untrust_plan(
    ca_cert_path: Path,
    platform: str,
    environ: Mapping[str, str],
    which: Which = shutil.which,
    *,
    os_release: str = "",
    nss_databases: Sequence[Path] | None = None,
) -> list[TrustStep]:
    """Return the commands that undo ``trust_plan``; arguments as for ``trust_plan``."""
    return trust_plan(
        ca_cert_path,
        platform,
        environ,
        which,
        os_release=os_release,
        nss_databases=nss_databases,
        install=False,
    )


def is_ca_trusted(
    ca_cert_path: Path,
    *,
    bundles: Sequence[Path] | None = None,
    anchor_dirs: Sequence[str] = ANCHOR_DIRS,
) -> bool:
    """Guess whether the CA is trusted system-wide.

    This is a heuristic: True when the CA is inside an OpenSSL bundle or a ``devserve-<id>`` anchor
    file for it exists. It cannot see the macOS keychain, the Windows store or NSS databases.

    Args:
        ca_cert_path: the CA certificate (PEM).
        bundles: PEM bundles to search; None for OpenSSL's default ``cafile``.
        anchor_dirs: directories where ``trust_plan`` installs anchor files.

    Returns:
        True if the CA looks trusted.

    Raises:
        CertificateError: the CA file is not a PEM certificate.
        OSError: the CA file cannot be read.
    """
    ca = _read_ca(ca_cert_path)
    if any(
        Path(d).is_dir() and any(Path(d).glob(f"devserve-{ca.short_id}.*")) for d in anchor_dirs
    ):
        return True
    if bundles is None:
        cafile = ssl.get_default_verify_paths().cafile
        bundles = [Path(cafile)] if cafile else []
    return any(ca.sha256_hex in _bundle_fingerprints(bundle) for bundle in bundles)


def _bundle_fingerprints(bundle: Path) -> set[str]:
    try:
        data = bundle.read_bytes()
    except OSError:
        return set()
    found = set()
    for body in _PEM_BLOCK.findall(data):
        try:
            found.add(hashlib.sha256(base64.b64decode(b"".join(body.split()))).hexdigest())
        except binascii.Error:
            continue
    return found


def run_command(argv: Sequence[str]) -> int:
    """Run one command with a timeout; return its exit status (127 not found, 124 timed out)."""
    try:
        completed = subprocess.run(list(argv), check=False, timeout=COMMAND_TIMEOUT_S)  # noqa: S603
    except FileNotFoundError:
        return 127
    except subprocess.TimeoutExpired:
        return 124
    return completed.returncode


def _is_privileged() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return True if geteuid is None else bool(geteuid() == 0)  # Windows: try; certutil will say


def run_plan(
    steps: Sequence[TrustStep],
    *,
    dry_run: bool,
    runner: Runner = run_command,
    is_privileged: bool | None = None,
    echo: Callable[[str], None] = print,
) -> PlanResult:
    """Carry out a plan, printing root-only steps instead of running them when not root.

    Args:
        steps: from ``trust_plan`` or ``untrust_plan``.
        dry_run: print every command, run none.
        runner: runs one command and returns its exit code (127 when not found).
        is_privileged: whether root-only steps may run; None to check the effective uid.
        echo: where progress and the commands to run by hand are written.

    Returns:
        Which steps ran, which were left to the user, and which failed.
    """
    privileged = _is_privileged() if is_privileged is None else is_privileged
    prefix = "" if privileged or os.name != "posix" else "sudo "
    if dry_run:
        for step in steps:
            echo(f"# {step.description}\n{prefix if step.needs_root else ''}{step.command_line()}")
        return PlanResult()
    ran: list[TrustStep] = []
    manual: list[TrustStep] = []
    failed: list[tuple[TrustStep, int]] = []
    for step in steps:
        if step.needs_root and not privileged:
            manual.append(step)
            continue
        echo(f"{step.description}: {step.command_line()}")
        code = runner(step.argv)
        if code == 0:
            ran.append(step)
        else:
            failed.append((step, code))
    if manual:
        echo("These steps need administrator rights; run them yourself:")
        for step in manual:
            echo(f"  {prefix}{step.command_line()}")
    return PlanResult(tuple(ran), tuple(manual), tuple(failed))
