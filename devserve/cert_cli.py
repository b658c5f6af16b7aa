"""The ``devserve cert`` command group: inspect, trust, untrust, export and regenerate the local CA.

Click only parses here; the work is done by ``devserve.certs``, ``devserve.certstore`` and
``devserve.trust``. This is the one place in the certificate layer that reads the environment and
the clock. Errors a user can cause become one ``Error: ...`` line on stderr and exit status 1,
never a traceback.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from devserve import certs, certstore, trust
from devserve.errors import DevserveError

OS_RELEASE = Path("/etc/os-release")
EXIT_STEPS_FAILED = 1

_BUNDLE_HINT = """\
For tools that do not use the system store, point them at this file:
  export SSL_CERT_FILE={path}         # OpenSSL, httpx, curl (replaces the default bundle)
  export REQUESTS_CA_BUNDLE={path}    # requests (replaces the default bundle)
  export NODE_EXTRA_CA_CERTS={path}   # Node.js (added to the default bundle)"""


@dataclass(frozen=True)
class _CertOptions:
    cert_dir: Path


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn devserve and file-system errors into a one-line ``click.ClickException``."""
    try:
        yield
    except DevserveError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise click.ClickException(f"{exc.strerror or exc}:{where}".rstrip(":")) from None


def _options() -> _CertOptions:
    options = click.get_current_context().find_object(_CertOptions)
    if options is None:  # pragma: no cover - the group always sets it
        raise click.UsageError("run this through `devserve cert`")
    return options


def _ensure(cert_dir: Path) -> certstore.CertificatePaths:
    """Create or reuse the CA and a leaf for the default hosts."""
    paths = certstore.ensure_certificates(cert_dir, certs.default_hosts())
    if paths.created_ca:
        click.echo(f"Created a new local CA in {cert_dir}", err=True)
    return paths


def _os_release() -> str:
    try:
        return OS_RELEASE.read_text("utf-8")
    except OSError:
        return ""


@click.group(name="cert")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DEVSERVE_CERT_DIR",
    default=None,
    help="Where the local CA and certificate live.  [default: per-user data directory]",
)
@click.pass_context
def cert(ctx: click.Context, cert_dir: Path | None) -> None:
    """Manage the local certificate authority used by --https."""
    ctx.obj = _CertOptions(cert_dir or certs.default_cert_dir(os.environ))


@cert.command()
def info() -> None:
    """Show where the CA and certificate are, what they cover and when they expire."""
    cert_dir = _options().cert_dir
    paths = certstore.certificate_paths(cert_dir)
    click.echo(f"Directory:    {cert_dir}")
    if not paths.ca_cert.is_file():
        click.echo(
            "No local CA yet; `devserve APP --https` or `devserve cert regenerate` makes one."
        )
        return
    with _user_errors():
        described = certstore.describe(paths)
        is_trusted = trust.is_ca_trusted(paths.ca_cert)
    click.echo(f"CA:           {paths.ca_cert}")
    click.echo(f"  subject:    {described.ca_subject}")
    click.echo(f"  expires:    {described.ca_not_after:%Y-%m-%d %H:%M} UTC")
    click.echo(f"  sha256:     {described.ca_fingerprint}")
    click.echo(
        f"  trusted:    {'yes' if is_trusted else 'not in the system store (see: cert trust)'}"
    )
    if described.leaf_not_after is None:
        click.echo("Certificate:  none yet")
        return
    click.echo(f"Certificate:  {paths.leaf_cert}")
    click.echo(f"  names:      {', '.join(described.leaf_names)}")
    click.echo(f"  expires:    {described.leaf_not_after:%Y-%m-%d %H:%M} UTC")
    click.echo(f"  sha256:     {described.leaf_fingerprint}")


def _run_plan(steps: list[trust.TrustStep], *, dry_run: bool, ca_path: Path) -> None:
    if not steps:
        raise click.ClickException(
            f"devserve does not know how to change the trust store here; import {ca_path} by hand"
        )
    result = trust.run_plan(steps, dry_run=dry_run, runner=trust.run_command, echo=click.echo)
    for step, code in result.failed:
        click.echo(f"Error: `{step.command_line()}` exited with status {code}", err=True)
    if result.failed:
        sys.exit(EXIT_STEPS_FAILED)


def _nss_hint() -> None:
    if sys.platform != "win32" and shutil.which("certutil") is None:
        if trust.find_nss_databases(os.environ, sys.platform):
            click.echo(
                "Browser NSS databases found but NSS `certutil` is missing "
                "(install libnss3-tools or nss-tools) so Firefox/Chrome will not trust the CA.",
                err=True,
            )


@cert.command(name="trust")
@click.option("--dry-run", is_flag=True, help="Print the commands without running them.")
def trust_command(dry_run: bool) -> None:
    """Add the local CA to the system and browser trust stores (making the CA if needed)."""
    cert_dir = _options().cert_dir
    if dry_run:  # changes nothing, so it cannot make the CA the commands name
        paths = certstore.certificate_paths(cert_dir)
        if not paths.ca_cert.is_file():
            raise click.ClickException(
                f"no local CA in {paths.ca_cert.parent} yet, so there is nothing to show; "
                "`devserve cert trust` without --dry-run makes it first"
            )
    else:
        with _user_errors():
            paths = _ensure(cert_dir)
    with _user_errors():
        steps = trust.trust_plan(paths.ca_cert, sys.platform, os.environ, os_release=_os_release())
    _run_plan(steps, dry_run=dry_run, ca_path=paths.ca_cert)
    _nss_hint()


@cert.command()
@click.option("--dry-run", is_flag=True, help="Print the commands without running them.")
def untrust(dry_run: bool) -> None:
    """Remove the local CA from the system and browser trust stores."""
    paths = certstore.certificate_paths(_options().cert_dir)
    if not paths.ca_cert.is_file():
        raise click.ClickException(f"no local CA in {paths.ca_cert.parent}; nothing to untrust")
    with _user_errors():
        steps = trust.untrust_plan(
            paths.ca_cert, sys.platform, os.environ, os_release=_os_release()
        )
    _run_plan(steps, dry_run=dry_run, ca_path=paths.ca_cert)


@cert.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def export(path: Path | None) -> None:
    """Write the CA certificate (PEM) to PATH, or to stdout without PATH."""
    with _user_errors():
        paths = _ensure(_options().cert_dir)
        pem = paths.ca_cert.read_bytes()
        if path is None:
            click.echo(pem, nl=False)
        else:
            path.write_bytes(pem)
            click.echo(f"Wrote {path}", err=True)
    click.echo(_BUNDLE_HINT.format(path=(path or paths.ca_cert).resolve()), err=True)


@cert.command()
@click.option(
    "--ca",
    "with_ca",
    is_flag=True,
    help="Also make a new CA (untrust the old one first; trust the new one after).",
)
@click.option("--host", "hosts", multiple=True, help="Another name or IP to cover; repeatable.")
def regenerate(with_ca: bool, hosts: tuple[str, ...]) -> None:
    """Make a new certificate (and with --ca, a new CA)."""
    cert_dir = _options().cert_dir
    old = certstore.certificate_paths(cert_dir)
    with _user_errors():
        doomed = [old.leaf_cert, old.leaf_key] + ([old.ca_cert, old.ca_key] if with_ca else [])
        for file in doomed:
            file.unlink(missing_ok=True)
        paths = certstore.ensure_certificates(cert_dir, certs.default_hosts(hosts))
        described = certstore.describe(paths)
    click.echo(f"Certificate:  {paths.leaf_cert}")
    click.echo(f"  names:      {', '.join(described.leaf_names)}")
    if paths.created_ca:
        click.echo(f"New CA {paths.ca_cert}: run `devserve cert trust` to trust it.")
