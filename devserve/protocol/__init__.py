"""Sans-IO protocol cores: bytes in, events and bytes out; no asyncio, sockets or clocks."""

from __future__ import annotations
