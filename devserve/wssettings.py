"""WebSocket limits and timers, in a module light enough to import at startup.

The WebSocket stack itself (`devserve.websocket_server`, wsproto) is imported on the first
upgrade request, so a server that never sees a WebSocket does not pay for it at start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebSocketSettings:
    """Limits and timers for WebSocket connections.

    Attributes:
        max_size_bytes: largest incoming message; larger closes with 1009.
        max_queue: incoming messages buffered for the app before reading pauses.
        ping_interval_s: seconds between server pings; None disables pinging.
        ping_timeout_s: seconds to wait for a pong before dropping the peer.
        per_message_deflate: negotiate permessage-deflate when the client offers it.
        graceful_timeout_s: seconds the app may keep running after its connection ended
            (or after `WebSocketProtocol.shutdown`) before its task is cancelled.
        close_timeout_s: seconds to wait for the peer's close frame after ours.
    """

    max_size_bytes: int = 16 * 1024 * 1024
    max_queue: int = 32
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float = 20.0
    per_message_deflate: bool = True
    graceful_timeout_s: float = 5.0
    close_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_size_bytes < 1 or self.max_queue < 1:
            raise ValueError("max_size_bytes and max_queue must be at least 1")
        timeouts = (self.ping_timeout_s, self.graceful_timeout_s, self.close_timeout_s)
        if min(timeouts) <= 0 or (self.ping_interval_s is not None and self.ping_interval_s <= 0):
            raise ValueError("WebSocket timeouts and the ping interval must be positive")
