"""Pure tests of the outgoing data frame encoder, checked against wsproto's own parser."""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

from devserve.protocol.wsframes import COMPRESS_MIN_BYTES, DataFrameEncoder, frame_header


def negotiated(offer: str = "permessage-deflate") -> PerMessageDeflate:
    """A server-side extension after it accepted ``offer``, as wsproto leaves it."""
    extension = PerMessageDeflate()
    assert extension.accept(offer) is not None
    assert extension.enabled()
    return extension


def client_side(server: PerMessageDeflate) -> FrameProtocol:
    """A wsproto client frame parser that agreed to the same permessage-deflate parameters."""
    extension = PerMessageDeflate()
    parameters = ["permessage-deflate"]
    if server.server_no_context_takeover:
        parameters.append("server_no_context_takeover")
    parameters.append(f"server_max_window_bits={server.server_max_window_bits}")
    extension.finalize("; ".join(parameters))
    return FrameProtocol(client=True, extensions=[extension])


def parse(protocol: FrameProtocol, wire: bytes) -> list[str | bytes]:
    """Feed ``wire`` to a wsproto parser and return the complete messages it yields."""
    protocol.receive_bytes(wire)
    messages: list[str | bytes] = []
    for frame in protocol.received_frames():
        assert frame.opcode in (Opcode.TEXT, Opcode.BINARY)
        assert frame.message_finished
        assert isinstance(frame.payload, str | bytes | bytearray)
        payload = frame.payload
        messages.append(payload if isinstance(payload, str) else bytes(payload))
    return messages


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (0xFFFF, b"\x82\x7e\xff\xff"),
        (0x10000, b"\x82\x7f" + struct.pack("!Q", 0x10000)),
    ],
)
def test_length_encodings_at_every_boundary(length: int, header: bytes) -> None:
    assert frame_header(0x82, length) == header
    payload = os.urandom(length)
    wire = DataFrameEncoder(None).encode(payload)
    assert wire == header + payload
    assert parse(FrameProtocol(client=True, extensions=[]), wire) == [payload]


def test_text_is_utf8_and_never_masked() -> None:
    wire = DataFrameEncoder(None).encode("héllo")
    assert wire == b"\x81\x06" + "héllo".encode()
    assert parse(FrameProtocol(client=True, extensions=[]), wire) == ["héllo"]


def test_without_deflate_nothing_is_compressed() -> None:
    wire = DataFrameEncoder(None).encode(b"a" * 10_000)
    assert wire[0] == 0x82  # FIN, binary, RSV1 clear
    assert len(wire) == 4 + 10_000


def test_only_messages_from_the_threshold_up_are_compressed() -> None:
    extension = negotiated()
    encoder = DataFrameEncoder(extension)
    small = "s" * (COMPRESS_MIN_BYTES - 1)
    big = "b" * COMPRESS_MIN_BYTES
    wire_small, wire_big = encoder.encode(small), encoder.encode(big)
    assert wire_small[0] == 0x81  # RSV1 clear: sent as is
    assert wire_big[0] == 0xC1  # RSV1 set: deflated
    assert len(wire_big) < 100
    assert parse(client_side(extension), wire_small + wire_big) == [small, big]


def test_threshold_counts_utf8_bytes_not_characters() -> None:
    encoder = DataFrameEncoder(negotiated(), compress_min_bytes=10)
    assert encoder.encode("é" * 5)[0] == 0xC1  # 5 characters, 10 bytes
    assert encoder.encode("e" * 9)[0] == 0x81


def test_context_takeover_survives_uncompressed_messages_in_between() -> None:
    extension = negotiated()
    encoder = DataFrameEncoder(extension)
    block = os.urandom(3000)
    messages: list[bytes] = [block, b"tiny", block, b"", block * 2]
    wires = [encoder.encode(message) for message in messages]
    assert len(wires[2]) < 100, "the repeat refers back into the shared window"
    assert parse(client_side(extension), b"".join(wires)) == messages


def test_no_context_takeover_starts_every_message_afresh() -> None:
    extension = negotiated("permessage-deflate; server_no_context_takeover")
    encoder = DataFrameEncoder(extension)
    block = os.urandom(3000)
    for _ in range(3):
        wire = encoder.encode(block)
        assert len(wire) > 3000, "random data does not shrink without the previous window"
        inflater = zlib.decompressobj(-15)  # a fresh window for each message
        assert inflater.decompress(wire[4:] + b"\x00\x00\xff\xff") == block


def test_negotiated_window_bits_bound_the_back_references() -> None:
    block = os.urandom(2000)  # its repeat is 2000 bytes back: in a 32 KiB window, not in 1 KiB
    wide = DataFrameEncoder(negotiated()).encode(block + block)
    extension = negotiated("permessage-deflate; server_max_window_bits=10")
    narrow = DataFrameEncoder(extension).encode(block + block)
    assert len(wide) < 2100
    assert len(narrow) > 4000
    assert parse(client_side(extension), narrow) == [block + block]
