"""Which peers may tell us the real client: ``X-Forwarded-For`` / ``X-Forwarded-Proto``.

Pure. A request's client address and scheme are replaced from the forwarding headers only
when the *direct* peer is trusted (``--forwarded-allow-ips``). The client is then the
right-most address in ``X-Forwarded-For`` that is not itself a trusted proxy, so a client
cannot spoof its address by prepending entries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """A set of trusted proxy addresses and networks (``*`` trusts everyone).

    Args:
        entries: IP addresses, CIDR networks, ``*``, or literal non-IP peers (unix sockets).

    Raises:
        ValueError: an entry that is neither.
    """

    __slots__ = ("_literals", "_networks", "is_all")

    def __init__(self, entries: Iterable[str]) -> None:
        self.is_all = False
        self._networks: list[_Network] = []
        self._literals: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                self.is_all = True
            elif entry.startswith("unix:"):
                self._literals.add(entry)
            else:
                self._networks.append(ipaddress.ip_network(entry, strict=False))

    def is_trusted(self, host: str) -> bool:
        """Whether `host` (an address string) is a trusted proxy."""
        if self.is_all or host in self._literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def resolve(
        self,
        peer: tuple[str, int],
        scheme: str,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> tuple[tuple[str, int], str]:
        """Return the (client, scheme) a request should report.

        Args:
            peer: the direct peer address.
            scheme: the connection's own scheme ("http"/"https").
            headers: lower-cased request headers.
        """
        if not self.is_trusted(peer[0]):
            return peer, scheme
        return self.resolve_trusted(peer, scheme, headers)

    def resolve_trusted(
        self,
        peer: tuple[str, int],
        scheme: str,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> tuple[tuple[str, int], str]:
        """`resolve` for a peer already known to be trusted (checked once per connection)."""
        client = peer
        hops: list[str] = []
        for name, value in headers:
            if name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
                if proto in {"http", "https", "ws", "wss"}:
                    scheme = {"ws": "http", "wss": "https"}.get(proto, proto)
            elif name == b"x-forwarded-for":
                # Several header lines form one list, in order (RFC 9110 §5.3).
                hops.extend(h.strip() for h in value.decode("latin-1").split(",") if h.strip())
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return (hop, 0), scheme
        if hops:
            client = (hops[0], 0)
        return client, scheme
