"""Tests for the ``devserve cert`` command group, run in-process with CliRunner."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from devserve import cert_cli, certs, certstore, trust

UBUNTU = "ID=ubuntu\nID_LIKE=debian\n"


def _invoke(cert_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
    return CliRunner().invoke(cert_cli.cert, ["--cert-dir", str(cert_dir), *args], env=env)


def _assert_clean_error(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("Error: ")] == lines[-1:]
    assert message in lines[-1]


@pytest.fixture
def debian_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plan as on Ubuntu without NSS, whatever machine runs the tests."""
    real = trust.trust_plan

    def as_ubuntu(
        ca: Path,
        _platform: str,
        environ: Mapping[str, str],
        *_: object,
        install: bool = True,
        **__: object,
    ) -> list[trust.TrustStep]:
        return real(
            ca,
            "linux",
            environ,
            lambda _name: None,
            os_release=UBUNTU,
            nss_databases=[],
            install=install,
        )

    monkeypatch.setattr(trust, "trust_plan", as_ubuntu)


class FakeRunner:
    def __init__(self, code: int = 0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.code = code

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(tuple(argv))
        return self.code


def test_info_before_anything_exists(tmp_path: Path) -> None:
    result = _invoke(tmp_path / "certs", "info")
    assert result.exit_code == 0
    assert "No local CA yet" in result.stdout
    assert not (tmp_path / "certs").exists()


def test_export_to_stdout_creates_the_ca(tmp_path: Path) -> None:
    result = _invoke(tmp_path, "export")
    assert result.exit_code == 0, result.output
    ca_pem = (tmp_path / "ca.pem").read_bytes()
    assert result.stdout_bytes == ca_pem
    assert "Created a new local CA" in result.stderr
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert f"{variable}={(tmp_path / 'ca.pem').resolve()}" in result.stderr


def test_export_to_path(tmp_path: Path) -> None:
    target = tmp_path / "out" / "devserve-ca.pem"
    target.parent.mkdir()
    result = _invoke(tmp_path / "certs", "export", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == (tmp_path / "certs" / "ca.pem").read_bytes()
    assert result.stdout == ""
    assert f"SSL_CERT_FILE={target.resolve()}" in result.stderr


def test_export_to_unwritable_path_is_one_line(tmp_path: Path) -> None:
    result = _invoke(tmp_path / "certs", "export", str(tmp_path / "missing-dir" / "ca.pem"))
    _assert_clean_error(result, "No such file or directory")


def test_info_after_creation(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, ["localhost", "127.0.0.1"])
    result = _invoke(tmp_path, "info")
    assert result.exit_code == 0, result.output
    assert certs.fingerprint_sha256(paths.ca_cert.read_bytes()) in result.stdout
    assert certs.fingerprint_sha256(paths.leaf_cert.read_bytes()) in result.stdout
    assert "names:      localhost, 127.0.0.1" in result.stdout
    assert "trusted:    not in the system store" in result.stdout


def test_info_without_leaf(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, ["localhost"])
    paths.leaf_cert.unlink()
    result = _invoke(tmp_path, "info")
    assert result.exit_code == 0, result.output
    assert "Certificate:  none yet" in result.stdout


def test_info_with_garbled_ca(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("garbage")
    _assert_clean_error(_invoke(tmp_path, "info"), "is not a PEM certificate")


def test_cert_dir_from_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(cert_cli.cert, ["export"], env={"DEVSERVE_CERT_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ca.pem").is_file()


@pytest.mark.usefixtures("debian_plans")
def test_trust_dry_run_prints_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = FakeRunner()
    monkeypatch.setattr(trust, "run_command", runner)
    certstore.ensure_certificates(tmp_path, ["localhost"])
    before = sorted(tmp_path.iterdir())
    result = _invoke(tmp_path, "trust", "--dry-run")
    assert result.exit_code == 0, result.output
    assert runner.calls == []
    assert sorted(tmp_path.iterdir()) == before
    assert "update-ca-certificates" in result.stdout
    assert (
        f"install -m 0644 {tmp_path / 'ca.pem'} /usr/local/share/ca-certificates/" in result.stdout
    )


def test_trust_dry_run_without_a_ca_makes_nothing(tmp_path: Path) -> None:
    result = _invoke(tmp_path, "trust", "--dry-run")
    _assert_clean_error(result, "no local CA in")
    assert "without --dry-run makes it first" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("debian_plans")
def test_trust_runs_steps_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = FakeRunner()
    monkeypatch.setattr(trust, "run_command", runner)
    monkeypatch.setattr(trust, "_is_privileged", lambda: True)
    result = _invoke(tmp_path, "trust")
    assert result.exit_code == 0, result.output
    assert [argv[0] for argv in runner.calls] == ["install", "update-ca-certificates"]


@pytest.mark.skipif(sys.platform == "win32", reason="sudo prefix is POSIX only")
@pytest.mark.usefixtures("debian_plans")
def test_trust_as_user_prints_sudo_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = FakeRunner()
    monkeypatch.setattr(trust, "run_command", runner)
    monkeypatch.setattr(trust, "_is_privileged", lambda: False)
    result = _invoke(tmp_path, "trust")
    assert result.exit_code == 0, result.output
    assert runner.calls == []
    assert "  sudo update-ca-certificates" in result.stdout


@pytest.mark.usefixtures("debian_plans")
def test_trust_failure_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "run_command", FakeRunner(code=5))
    monkeypatch.setattr(trust, "_is_privileged", lambda: True)
    result = _invoke(tmp_path, "trust")
    assert result.exit_code == cert_cli.EXIT_STEPS_FAILED
    assert "exited with status 5" in result.stderr
    assert "Traceback" not in result.output


def test_trust_on_unsupported_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "trust_plan", lambda *_args, **_kwargs: [])
    _assert_clean_error(_invoke(tmp_path, "trust"), "does not know how to change the trust store")


@pytest.mark.usefixtures("debian_plans")
def test_trust_hints_when_nss_certutil_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trust, "run_command", FakeRunner())
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr("devserve.cert_cli.sys.platform", "linux")
    monkeypatch.setattr(trust, "find_nss_databases", lambda _environ, _platform: [tmp_path])
    certstore.ensure_certificates(tmp_path, ["localhost"])
    result = _invoke(tmp_path, "trust", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "NSS `certutil` is missing" in result.stderr


def test_untrust_without_ca(tmp_path: Path) -> None:
    _assert_clean_error(_invoke(tmp_path, "untrust"), "no local CA in")


@pytest.mark.usefixtures("debian_plans")
def test_untrust_dry_run(tmp_path: Path) -> None:
    certstore.ensure_certificates(tmp_path, ["localhost"])
    result = _invoke(tmp_path, "untrust", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "rm -f /usr/local/share/ca-certificates/devserve-" in result.stdout


def test_untrust_with_garbled_ca(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("garbage")
    _assert_clean_error(_invoke(tmp_path, "untrust"), "is not a PEM certificate")


def _fingerprint(path: Path) -> str:
    return certs.fingerprint_sha256(path.read_bytes())


def test_regenerate_leaf_keeps_ca(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, certs.default_hosts())
    before = (_fingerprint(paths.ca_cert), _fingerprint(paths.leaf_cert))
    result = _invoke(tmp_path, "regenerate", "--host", "api.localhost")
    assert result.exit_code == 0, result.output
    assert _fingerprint(paths.ca_cert) == before[0]
    assert _fingerprint(paths.leaf_cert) != before[1]
    assert "api.localhost" in result.stdout
    assert "cert trust" not in result.stdout


def test_regenerate_with_ca(tmp_path: Path) -> None:
    paths = certstore.ensure_certificates(tmp_path, certs.default_hosts())
    before = _fingerprint(paths.ca_cert)
    result = _invoke(tmp_path, "regenerate", "--ca")
    assert result.exit_code == 0, result.output
    assert _fingerprint(paths.ca_cert) != before
    assert "run `devserve cert trust`" in result.stdout


def test_regenerate_rejects_bad_host(tmp_path: Path) -> None:
    _assert_clean_error(
        _invoke(tmp_path, "regenerate", "--host", "bad host!"), "neither an IP address nor"
    )


def test_cert_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _invoke(blocker / "certs", "export")
    _assert_clean_error(result, str(blocker / "certs"))


def test_help_lists_subcommands() -> None:
    result = CliRunner().invoke(cert_cli.cert, ["--help"])
    assert result.exit_code == 0
    for name in ("info", "trust", "untrust", "export", "regenerate", "--cert-dir"):
        assert name in result.stdout
