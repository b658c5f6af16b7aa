"""Which requests may see devserve's dev features: the DNS-rebinding defence. PURE.

A web page on another site can make a browser send requests to ``127.0.0.1:8000`` through a
DNS name it controls (DNS rebinding: ``evil.test`` resolves to the attacker first, then to
127.0.0.1). Such requests carry the attacker's name in ``Host``. devserve therefore answers
only requests whose ``Host`` names this machine: ``localhost``, ``*.localhost``,
``127.0.0.1``, ``[::1]``, the bound host, the machine's name, and whatever
``--allowed-hosts`` adds (``*`` allows every host). A rebinding attack needs a DNS name, so
when devserve is bound to every interface (``--host 0.0.0.0``) any IP-literal Host is
allowed too: colleagues can open ``http://192.168.1.20:8000/``.

Dev endpoints (live reload) and tracebacks are also withheld from cross-origin requests: an
``Origin`` that is not the request's own origin, or ``Sec-Fetch-Site: cross-site`` /
``same-site`` on anything but a top-level navigation. Without this an app that sends
``Access-Control-Allow-Origin: *`` would let any site read its tracebacks.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
ALWAYS_ALLOWED = ("localhost", ".localhost", "127.0.0.1", "[::1]")


def split_host(value: str) -> str:
    """The host name of a ``Host`` header value: no port, no brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The allowed ``Host`` names of one server.

    ``names`` are exact host names, ``suffixes`` domains whose subdomains (and the domain
    itself) are allowed, written with a leading dot.
    """

    names: frozenset[str]
    suffixes: tuple[str, ...]
    allow_all: bool = False
    allow_ip_literals: bool = False

    @classmethod
    def build(
        cls, extra: tuple[str, ...], *, bound_hosts: tuple[str, ...], machine: str
    ) -> HostPolicy:
        """The default names plus `extra` (``--allowed-hosts`` entries)."""
        names: set[str] = set()
        suffixes: list[str] = []
        allow_all = False
        is_wildcard_bind = any(host in WILDCARD_BINDS for host in bound_hosts)
        machine_names = [machine, machine.split(".", maxsplit=1)[0] + ".local"] if machine else []
        bound = [h for h in bound_hosts if h not in WILDCARD_BINDS]
        for entry in (*ALWAYS_ALLOWED, *bound, *machine_names, *extra):
            entry = entry.strip().lower()  # noqa: PLW2901 - normalised in place
            if entry == "*":
                allow_all = True
            elif entry.startswith(("*.", ".")):
                suffix = "." + entry.lstrip("*.")
                suffixes.append(suffix)
                names.add(suffix[1:])
            elif entry:
                names.add(split_host(entry))
        return cls(
            names=frozenset(names),
            suffixes=tuple(suffixes),
            allow_all=allow_all,
            allow_ip_literals=is_wildcard_bind,
        )

    def allows(self, host_header: str | None) -> bool:
        """Whether a request with this ``Host`` header (None: none sent) may be served."""
        if self.allow_all or host_header is None:
            return True  # no Host: not a browser (every browser sends one)
        name = split_host(host_header)
        if name in self.names or name.endswith(self.suffixes):
            return True
        return self.allow_ip_literals and _is_ip_literal(name)

    def describe(self) -> tuple[str, ...]:
        """The allowed names, for the 403 page."""
        shown = sorted(self.names - {s[1:] for s in self.suffixes})
        shown += sorted("*" + s for s in self.suffixes)
        if self.allow_ip_literals:
            shown.append("any IP address")
        return tuple(shown)


def is_cross_origin(
    host: str | None, origin: str | None, fetch_site: str | None, fetch_mode: str | None
) -> bool:
    """Whether a request comes from another site's page (not a top-level navigation).

    Args:
        host: the ``Host`` header.
        origin: the ``Origin`` header (browsers send it on cross-origin and non-GET requests).
        fetch_site: ``Sec-Fetch-Site``.
        fetch_mode: ``Sec-Fetch-Mode``.
    """
    if origin is not None:
        if origin.strip().lower() == "null" or host is None:
            return True
        parts = urlsplit(origin.strip())
        if parts.netloc.lower() != host.strip().lower():
            return True
    return fetch_site in {"cross-site", "same-site"} and fetch_mode != "navigate"


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of the live-reload token."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def machine_name() -> str:
    """This machine's host name, lower-cased (no DNS lookup); empty if it has none."""
    with contextlib.suppress(OSError):
        return socket.gethostname().lower()
    return ""
