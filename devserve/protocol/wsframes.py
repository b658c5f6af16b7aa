"""Outgoing WebSocket data frames: the server's text and binary messages, framed without wsproto.

Theory of operation. wsproto stays the parser of record: it parses everything the peer sends,
runs the handshake and frames every control frame (ping, pong, close). Only the hot path,
one data message from the app, is framed here, as one final frame per message (RFC 6455
section 5.2): a byte FIN | RSV1 | opcode, then the payload length in 7 bits, or 126 and 16
bits, or 127 and 64 bits, then the payload. A server never masks (section 5.1).

permessage-deflate (RFC 7692), when negotiated: a message of at least ``compress_min_bytes``
is deflated as one raw-deflate stream with a sync flush whose trailing ``00 00 ff ff`` is
cut (section 7.2.1), and RSV1 marks the frame as compressed. A smaller message goes out
uncompressed with RSV1 clear, which the extension allows per message (section 6): deflating
a few dozen bytes costs more time than it saves bytes, and the peer's inflater only ever
sees the compressed messages, so a window shared across messages (context takeover) stays
the same on both sides. The negotiated ``server_max_window_bits`` sizes the window, and
``server_no_context_takeover`` starts a fresh compressor for every message.
"""

from __future__ import annotations

import struct
import zlib

from wsproto.extensions import PerMessageDeflate

#: Messages shorter than this (in encoded bytes) are never compressed; as in other servers
#: with a deflate threshold, small messages gain nothing from it on a development machine.
COMPRESS_MIN_BYTES = 1024

_FIN = 0x80
_RSV1 = 0x40
_OPCODE_TEXT = 0x1
_OPCODE_BINARY = 0x2
_MAX_LENGTH_7 = 125
_MAX_LENGTH_16 = 0xFFFF
_LENGTH_16 = 126
_LENGTH_64 = 127
_SYNC_FLUSH_TAIL = b"\x00\x00\xff\xff"
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def frame_header(first_byte: int, length: int) -> bytes:
    """Return an unmasked frame header: ``first_byte`` (FIN, RSV, opcode), then the length."""
    if length <= _MAX_LENGTH_7:
        return bytes((first_byte, length))
    if length <= _MAX_LENGTH_16:
        return _HEADER_16.pack(first_byte, _LENGTH_16, length)
    return _HEADER_64.pack(first_byte, _LENGTH_64, length)


class DataFrameEncoder:
    """Frame the server's data messages, compressing them if permessage-deflate is on.

    Args:
        deflate: the accepted permessage-deflate extension (its negotiated server-side
            parameters are read once), or None when compression was not negotiated.
        compress_min_bytes: the smallest payload that is compressed.
    """

    def __init__(
        self, deflate: PerMessageDeflate | None, *, compress_min_bytes: int = COMPRESS_MIN_BYTES
    ) -> None:
        self._is_deflating = deflate is not None
        self._window_bits = deflate.server_max_window_bits if deflate is not None else 15
        self._is_context_reset = deflate is not None and deflate.server_no_context_takeover
        self._compress_min_bytes = compress_min_bytes
        self._compressor: zlib._Compress | None = None

    def encode(self, data: str | bytes) -> bytes:
        """Return the bytes of one complete frame carrying the text or binary ``data``."""
        if isinstance(data, str):
            opcode, payload = _OPCODE_TEXT, data.encode("utf-8")
        else:
            opcode, payload = _OPCODE_BINARY, data
        if self._is_deflating and len(payload) >= self._compress_min_bytes:
            payload = self._deflate(payload)
            opcode |= _RSV1
        return frame_header(_FIN | opcode, len(payload)) + payload

    def _deflate(self, payload: bytes) -> bytes:
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self._window_bits
            )
        compressed = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        self._compressor = None if self._is_context_reset else compressor
        return compressed.removesuffix(_SYNC_FLUSH_TAIL)
