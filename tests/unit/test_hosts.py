"""The DNS-rebinding defence: allowed Host names, cross-origin requests, the token (#7)."""

from __future__ import annotations

import pytest

from devserve.hosts import HostPolicy, is_cross_origin, split_host, token_matches


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost:8000", "localhost"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("example.test.", "example.test"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("::1", "::1"),
    ],
)
def test_split_host(value: str, expected: str) -> None:
    assert split_host(value) == expected


def _policy(*extra: str, bound: tuple[str, ...] = ("127.0.0.1",)) -> HostPolicy:
    return HostPolicy.build(extra, bound_hosts=bound, machine="devbox")


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "app.localhost:8000",
        "127.0.0.1:8000",
        "[::1]:8000",
        "devbox:8000",
        "devbox.local",
        None,
    ],
)
def test_default_hosts_are_allowed(host: str | None) -> None:
    assert _policy().allows(host)


@pytest.mark.parametrize(
    "host", ["evil.test", "localhost.evil.test", "10.0.0.5:8000", "", "127.0.0.2"]
)
def test_other_hosts_are_refused(host: str) -> None:
    assert not _policy().allows(host)


def test_extra_hosts_and_domains() -> None:
    policy = _policy("myapp.test", ".corp.test", "*.dev.test")
    assert policy.allows("myapp.test:8000")
    assert policy.allows("corp.test") and policy.allows("a.b.corp.test")
    assert policy.allows("x.dev.test")
    assert not policy.allows("notcorp.test")
    assert "*.corp.test" in policy.describe()


def test_star_allows_every_host() -> None:
    assert _policy("*").allows("anything.example")


def test_bound_host_is_allowed() -> None:
    assert _policy(bound=("192.168.1.20",)).allows("192.168.1.20:8000")


def test_wildcard_bind_allows_ip_literals_but_not_names() -> None:
    policy = _policy(bound=("0.0.0.0",))
    assert policy.allows("192.168.1.20:8000")
    assert policy.allows("[fe80::1]:8000")
    assert not policy.allows("evil.test")
    assert "any IP address" in policy.describe()


@pytest.mark.parametrize(
    ("origin", "site", "mode", "expected"),
    [
        (None, None, None, False),
        ("http://localhost:8000", "same-origin", "cors", False),
        ("http://evil.test", "cross-site", "cors", True),
        ("http://localhost:9000", "same-site", "cors", True),
        ("null", None, None, True),
        (None, "cross-site", "no-cors", True),
        (None, "cross-site", "navigate", False),  # the user followed a link: their own tab
        (None, "same-site", "cors", True),
        (None, "none", "navigate", False),
    ],
)
def test_cross_origin(
    origin: str | None, site: str | None, mode: str | None, expected: bool
) -> None:
    assert is_cross_origin("localhost:8000", origin, site, mode) is expected


def test_origin_without_host_is_cross_origin() -> None:
    assert is_cross_origin(None, "http://localhost:8000", None, None)


def test_token() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abd", "abc")
    assert not token_matches("", "")
