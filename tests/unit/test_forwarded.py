"""Tests for devserve.forwarded: trusted proxy sets and X-Forwarded-For/Proto resolution."""

from __future__ import annotations

import pytest

from devserve.forwarded import TrustedProxies

PROXY = ("127.0.0.1", 4000)
Headers = list[tuple[bytes, bytes]]


def _xff(value: str) -> Headers:
    return [(b"x-forwarded-for", value.encode())]


def _proto(value: str) -> Headers:
    return [(b"x-forwarded-proto", value.encode())]


# -- TrustedProxies ----------------------------------------------------------------------


def test_ip_addresses() -> None:
    trusted = TrustedProxies(["127.0.0.1", "::1"])
    assert trusted.is_trusted("127.0.0.1")
    assert trusted.is_trusted("::1")
    assert not trusted.is_trusted("127.0.0.2")
    assert not trusted.is_trusted("10.0.0.1")
    assert not trusted.is_all


def test_cidr_networks() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "fd00::/8", "192.168.1.7/24"])
    assert trusted.is_trusted("10.255.0.1")
    assert trusted.is_trusted("fd12::1")
    assert trusted.is_trusted("192.168.1.200")
    assert not trusted.is_trusted("11.0.0.1")
    assert not trusted.is_trusted("fe80::1")


def test_star_trusts_everyone() -> None:
    trusted = TrustedProxies(["*"])
    assert trusted.is_all
    assert trusted.is_trusted("203.0.113.9")
    assert trusted.is_trusted("not-an-ip")


def test_unix_literals() -> None:
    trusted = TrustedProxies(["unix:/run/proxy.sock"])
    assert trusted.is_trusted("unix:/run/proxy.sock")
    assert not trusted.is_trusted("unix:/run/other.sock")
    assert not trusted.is_trusted("127.0.0.1")


def test_entries_are_stripped_and_blanks_ignored() -> None:
    trusted = TrustedProxies([" 127.0.0.1 ", "", "  "])
    assert trusted.is_trusted("127.0.0.1")


def test_empty_trusts_nobody() -> None:
    trusted = TrustedProxies([])
    assert not trusted.is_trusted("127.0.0.1")


def test_non_ip_host_is_untrusted() -> None:
    assert not TrustedProxies(["127.0.0.1"]).is_trusted("localhost")


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "1.2.3.4.5", "::g", "unix"])
def test_invalid_entries_raise(entry: str) -> None:
    with pytest.raises(ValueError, match=entry.replace(".", r"\.")):
        TrustedProxies(["127.0.0.1", entry])


# -- resolve -----------------------------------------------------------------------------


def test_untrusted_peer_is_unchanged() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    peer = ("203.0.113.5", 5555)
    headers = [*_xff("1.2.3.4"), *_proto("https")]
    assert trusted.resolve(peer, "http", headers) == (peer, "http")


def test_trusted_peer_without_headers_is_unchanged() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    assert trusted.resolve(PROXY, "https", [(b"host", b"x")]) == (PROXY, "https")


def test_single_hop() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    assert trusted.resolve(PROXY, "http", _xff("203.0.113.7")) == (("203.0.113.7", 0), "http")


def test_right_most_untrusted_hop_wins() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    headers = _xff("6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3")
    assert trusted.resolve(PROXY, "http", headers) == (("203.0.113.7", 0), "http")


def test_spoofed_left_entries_are_ignored() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    headers = _xff("127.0.0.1, 198.51.100.1")
    assert trusted.resolve(PROXY, "http", headers)[0] == ("198.51.100.1", 0)


def test_all_trusted_chain_takes_left_most() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    headers = _xff("10.0.0.1, 10.0.0.2,127.0.0.1")
    assert trusted.resolve(PROXY, "http", headers) == (("10.0.0.1", 0), "http")


def test_star_takes_left_most() -> None:
    trusted = TrustedProxies(["*"])
    peer = ("203.0.113.5", 1)
    assert trusted.resolve(peer, "http", _xff("1.1.1.1, 2.2.2.2"))[0] == ("1.1.1.1", 0)


def test_empty_xff_is_ignored() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    assert trusted.resolve(PROXY, "http", _xff(" , ,")) == (PROXY, "http")


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [
        ("https", "https"),
        ("HTTPS", "https"),
        (" http ", "http"),
        ("wss", "https"),
        ("ws", "http"),
        ("garbage", "http"),
        ("", "http"),
        ("http, https", "https"),
        ("https, garbage", "http"),
    ],
)
def test_forwarded_proto(proto: str, scheme: str) -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    assert trusted.resolve(PROXY, "http", _proto(proto)) == (PROXY, scheme)


def test_forwarded_proto_ignored_from_untrusted_peer() -> None:
    trusted = TrustedProxies(["10.0.0.1"])
    assert trusted.resolve(PROXY, "http", _proto("https")) == (PROXY, "http")


def test_garbage_proto_keeps_connection_scheme() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    assert trusted.resolve(PROXY, "https", _proto("gopher"))[1] == "https"


def test_multiple_proto_headers_last_wins() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    headers = [*_proto("http"), *_proto("https")]
    assert trusted.resolve(PROXY, "http", headers)[1] == "https"


def test_multiple_xff_headers_untrusted_last() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    headers = [*_xff("1.1.1.1"), *_xff("2.2.2.2")]
    assert trusted.resolve(PROXY, "http", headers)[0] == ("2.2.2.2", 0)


def test_multiple_xff_headers_are_one_list() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    headers = [*_xff("203.0.113.7"), *_xff("127.0.0.1")]
    joined = _xff("203.0.113.7, 127.0.0.1")
    assert trusted.resolve(PROXY, "http", joined)[0] == ("203.0.113.7", 0)
    assert trusted.resolve(PROXY, "http", headers)[0] == ("203.0.113.7", 0)


def test_ipv6_peer_and_hops() -> None:
    trusted = TrustedProxies(["::1"])
    headers = _xff("2001:db8::1, ::1")
    assert trusted.resolve(("::1", 9), "http", headers)[0] == ("2001:db8::1", 0)


def test_unix_socket_peer() -> None:
    trusted = TrustedProxies(["unix:/run/p.sock"])
    peer = ("unix:/run/p.sock", 0)
    result = trusted.resolve(peer, "http", [*_xff("203.0.113.7"), *_proto("https")])
    assert result == (("203.0.113.7", 0), "https")
