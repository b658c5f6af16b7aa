"""Tests for devserve.ipc: the pure frame codec, then sender and receiver over a real pipe.

The pipe tests run inside ``asyncio.run`` bounded by ``wait_for`` (`run_async`); waiting
for deliveries goes through `until`, which has a monotonic deadline too.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
import typing
from collections.abc import Callable

import pytest

from devserve.errors import FrameTooLarge, IPCError
from devserve.events import (
    SUPERVISOR_LOCAL,
    AppErrored,
    Event,
    EventsDropped,
    LogLine,
    ModulesLoaded,
    RequestCompleted,
    ServerStarted,
    ServerStopping,
    StartupFailed,
    TracebackFrame,
    WebSocketClosed,
    WebSocketOpened,
)
from devserve.ipc import MAX_FRAME_BYTES, EventReceiver, EventSender, FrameDecoder, FrameEncoder
from tests.helpers import run_async

HEADER = struct.Struct(">I")


def request(index: int = 0) -> RequestCompleted:
    return RequestCompleted(
        method="GET",
        path=f"/items/{index}",
        status=200,
        duration_ms=1.25,
        bytes_in=0,
        bytes_out=12,
        client="127.0.0.1:50000",
        http_version="1.1",
        scheme="http",
    )


EVERY_KIND: list[Event] = [
    ServerStarted(pid=42, urls=("http://127.0.0.1:8000",), app="main:app", startup_ms=3.5),
    request(),
    RequestCompleted("POST", "/x", 404, 0.0, 3, 0, "unix", "1.0", "https", route="/x/{id}"),
    AppErrored(
        exc_type="ZeroDivisionError",
        message="division by zero",
        traceback="Traceback ...\nZeroDivisionError: division by zero\n",
        frames=(TracebackFrame("main.py", 3, "home", "1 / 0", is_user_code=True),),
        method="GET",
        path="/",
        response_started=False,
    ),
    LogLine(level="info", message="héllo ✓ \u2028 \x00"),
    ServerStopping(in_flight=2),
    WebSocketOpened(path="/ws", client=("127.0.0.1", 5000), subprotocol=None),
    WebSocketOpened(path="/ws", client=None, subprotocol="chat"),
    WebSocketClosed(path="/ws", duration_ms=5.0, messages_in=1, messages_out=2, close_code=1000),
    StartupFailed(
        stage="import",
        exc_type="SyntaxError",
        message="invalid syntax",
        traceback="  File main.py, line 2\n",
        filename="/p/main.py",
        lineno=2,
    ),
    StartupFailed("lifespan startup", "RuntimeError", "", "", filename=None, lineno=None),
    ModulesLoaded(names=("fastapi", "pydantic")),
    EventsDropped(count=7),
]


def split_frames(data: bytes) -> list[bytes]:
    """Cut a byte stream of whole frames into the frames (header included)."""
    frames = []
    while data:
        (length,) = HEADER.unpack_from(data)
        frames.append(data[: HEADER.size + length])
        data = data[HEADER.size + length :]
    return frames


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


# -- codec ------------------------------------------------------------------------------------


def test_every_event_kind_is_covered() -> None:
    wire_kinds = set(typing.get_args(Event)) - set(SUPERVISOR_LOCAL)
    assert {type(event) for event in EVERY_KIND} == wire_kinds


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda event: type(event).__name__)
def test_round_trip_each_kind(event: Event) -> None:
    data = FrameEncoder().encode([event])
    decoder = FrameDecoder()
    assert decoder.feed(data) == [event]
    assert decoder.pending_bytes == 0


def test_frame_format_is_length_then_json_array() -> None:
    data = FrameEncoder().encode([EventsDropped(3)])
    (length,) = HEADER.unpack_from(data)
    assert length == len(data) - HEADER.size
    assert json.loads(data[HEADER.size :]) == [{"count": 3, "k": "EventsDropped"}]


def test_empty_batch_round_trips() -> None:
    assert FrameDecoder().feed(FrameEncoder().encode([])) == []


def test_split_at_every_byte_boundary() -> None:
    encoder = FrameEncoder()
    data = encoder.encode(EVERY_KIND[:6]) + encoder.encode(EVERY_KIND[6:])
    first_end = len(split_frames(data)[0])
    for cut in range(len(data) + 1):
        decoder = FrameDecoder()
        head = decoder.feed(data[:cut])
        complete = len(data) if cut == len(data) else (first_end if cut >= first_end else 0)
        assert head == {0: [], first_end: EVERY_KIND[:6], len(data): EVERY_KIND}[complete]
        assert decoder.pending_bytes == cut - complete
        assert head + decoder.feed(data[cut:]) == EVERY_KIND, f"cut at {cut}"
        assert decoder.pending_bytes == 0


def test_byte_by_byte() -> None:
    data = FrameEncoder().encode(EVERY_KIND)
    decoder = FrameDecoder()
    events: list[Event] = []
    for index in range(len(data)):
        events += decoder.feed(data[index : index + 1])
        if index < len(data) - 1:
            assert events == []
    assert events == EVERY_KIND


def test_several_frames_in_one_chunk() -> None:
    encoder = FrameEncoder()
    chunk = b"".join(encoder.encode([event]) for event in EVERY_KIND)
    chunk += encoder.encode([])
    partial = encoder.encode([LogLine("info", "next")])
    decoder = FrameDecoder()
    assert decoder.feed(chunk + partial[:5]) == EVERY_KIND
    assert decoder.pending_bytes == 5
    assert decoder.feed(partial[5:]) == [LogLine("info", "next")]


def test_decoder_refuses_a_big_announced_length_before_the_payload() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    with pytest.raises(FrameTooLarge, match="101"):
        decoder.feed(HEADER.pack(101))
    default = FrameDecoder()
    with pytest.raises(FrameTooLarge):
        default.feed(HEADER.pack(MAX_FRAME_BYTES + 1) + b"[")
    assert issubclass(FrameTooLarge, IPCError)


def test_decoder_accepts_exactly_the_limit() -> None:
    payload = FrameEncoder().encode([LogLine("info", "x")])[HEADER.size :]
    assert FrameDecoder(max_frame_bytes=len(payload)).feed(frame(payload)) == [LogLine("info", "x")]


def test_encoder_refuses_a_batch_larger_than_a_frame() -> None:
    encoder = FrameEncoder(max_frame_bytes=64)
    with pytest.raises(FrameTooLarge):
        encoder.encode([LogLine("info", "x" * 100)])
    assert encoder.encode([LogLine("info", "x")])  # small batches still fit


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[",
        b"\xff\xfe",
        b"5",
        b"null",
        b'{"k": "LogLine", "level": "info", "message": "x"}',
        b"[1]",
        b"[null]",
        b'["LogLine"]',
        b'[{"k": "NoSuchEvent"}]',
        b"[{}]",
        b'[{"k": "LogLine", "level": "info"}]',
        b'[{"k": "LogLine", "level": "info", "message": "x", "extra": 1}]',
        b'[{"k": "EventsDropped", "count": 1}, {"k": "LogLine"}]',
        b'[{"k": "AppErrored", "exc_type": "E", "message": "", "traceback": "",'
        b' "method": "GET", "path": "/", "response_started": false}]',
        b'[{"k": "AppErrored", "exc_type": "E", "message": "", "traceback": "", "frames": 5,'
        b' "method": "GET", "path": "/", "response_started": false}]',
        b'[{"k": "ServerStarted", "pid": 1, "urls": null, "app": "a", "startup_ms": 0}]',
        b'[{"k": "RequestCompleted", "method": "GET", "path": "/", "status": 5000,'
        b' "duration_ms": 0, "bytes_in": 0, "bytes_out": 0, "client": "c",'
        b' "http_version": "1.1", "scheme": "http"}]',
    ],
)
def test_malformed_frame_is_an_ipc_error(payload: bytes) -> None:
    decoder = FrameDecoder()
    with pytest.raises(IPCError) as caught:
        decoder.feed(frame(payload))
    assert type(caught.value) is IPCError
    assert "malformed event frame" in str(caught.value)


def test_deeply_nested_frame_is_an_ipc_error() -> None:
    payload = b"[" * 100_000 + b"]" * 100_000
    assert len(payload) < MAX_FRAME_BYTES
    with pytest.raises(IPCError):
        FrameDecoder().feed(frame(payload))


# -- sender and receiver over a real pipe -----------------------------------------------------


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Let the loop run until `predicate` holds; fail after `timeout_s` (monotonic)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            msg = f"condition not met within {timeout_s} s"
            raise AssertionError(msg)
        await asyncio.sleep(0.001)


class Collector:
    """What an `EventReceiver` delivered."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closes = 0

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_close(self) -> None:
        self.closes += 1


def test_events_arrive_in_order() -> None:
    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        sender = EventSender(write_fd)
        collector = Collector()
        receiver = EventReceiver(read_fd, collector.on_event, collector.on_close)
        sent: list[Event] = []
        for round_index in range(20):
            for index in range(10):
                event = LogLine("info", f"{round_index}-{index}")
                sender(event)
                sent.append(event)
            await asyncio.sleep(0)
        sender(EVERY_KIND[0])
        sent.append(EVERY_KIND[0])
        await until(lambda: len(collector.events) >= len(sent))
        assert collector.events == sent
        assert sender.dropped == 0
        sender.close()
        await until(lambda: collector.closes > 0)
        assert receiver.is_closed

    run_async(scenario())


def _burst(events: list[Event]) -> tuple[list[Event], int]:
    """Send `events` in one loop iteration to a reader; return (received, frame count)."""

    async def scenario() -> bytes:
        read_fd, write_fd = os.pipe()
        raw = bytearray()
        loop = asyncio.get_running_loop()
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, lambda: raw.extend(os.read(read_fd, 1 << 20)))
        sender = EventSender(write_fd)
        for event in events:
            sender(event)
        await asyncio.sleep(0)  # the batch is flushed at the end of this iteration
        assert sender.dropped == 0, f"{sender.dropped} of {len(events)} events dropped"
        await until(lambda: not sender._unsent)  # drained by the writer callback
        sender.close()
        loop.remove_reader(read_fd)
        os.set_blocking(read_fd, True)
        while chunk := os.read(read_fd, 1 << 20):  # ends at EOF: the sender closed
            raw.extend(chunk)
        os.close(read_fd)
        return bytes(raw)

    data: bytes = run_async(scenario())
    return FrameDecoder().feed(data), len(split_frames(data))


def test_burst_in_one_iteration_arrives_as_few_frames() -> None:
    events: list[Event] = [LogLine("info", f"line {index}") for index in range(10_000)]
    received, frames = _burst(events)
    assert received == events
    assert 1 <= frames <= 5


def test_burst_of_access_events_larger_than_a_frame_arrives() -> None:
    events: list[Event] = [request(index) for index in range(10_000)]
    assert len(FrameEncoder(max_frame_bytes=1 << 30).encode(events)) > MAX_FRAME_BYTES
    received, frames = _burst(events)
    assert received == events
    assert frames <= 10


async def _stall(sender: EventSender, total: int, per_iteration: int) -> list[Event]:
    """Send `total` events while nobody reads, checking the sender's buffer stays bounded."""
    sent: list[Event] = []
    frame_bytes = 0
    for index in range(total):
        event = LogLine("info", f"{index:06d}")
        sender(event)
        sent.append(event)
        if index % per_iteration == per_iteration - 1:
            await asyncio.sleep(0)
            frame_bytes = max(frame_bytes, len(FrameEncoder().encode(sent[-per_iteration:])))
            assert len(sender._unsent) <= sender.max_pending_bytes + frame_bytes
    return sent


def _assert_delivered_with_gap(received: list[Event], sent: list[Event], dropped: int) -> None:
    """`received` is a prefix-ordered subset of `sent` plus one EventsDropped(dropped)."""
    reports = [event for event in received if isinstance(event, EventsDropped)]
    assert reports == [EventsDropped(dropped)]
    lines = [event for event in received if not isinstance(event, EventsDropped)]
    indices = [sent.index(event) for event in lines]
    assert indices == sorted(indices)
    assert len(lines) + dropped == len(sent)


def test_stalled_reader_makes_sender_drop_and_count_then_report() -> None:
    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        sender = EventSender(write_fd, max_pending_bytes=16 * 1024)
        sent = await _stall(sender, total=5_000, per_iteration=50)
        dropped = sender.dropped
        assert dropped > 0
        collector = Collector()
        EventReceiver(read_fd, collector.on_event, collector.on_close)
        # Once the backlog drains, the drop count is reported before anything newer.
        await until(lambda: EventsDropped(dropped) in collector.events)
        last = LogLine("info", "after the stall")
        sender(last)
        sent.append(last)
        await until(lambda: collector.events[-1:] == [last])
        assert collector.events[-2] == EventsDropped(dropped)
        _assert_delivered_with_gap(collector.events, sent, dropped)
        assert sender.dropped == 0
        sender.close()
        await until(lambda: collector.closes == 1)

    run_async(scenario())


def test_events_dropped_arrives_once_the_reader_drains() -> None:
    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        sender = EventSender(write_fd, max_pending_bytes=16 * 1024)
        sent = await _stall(sender, total=5_000, per_iteration=50)
        dropped = sender.dropped
        assert dropped > 0
        collector = Collector()
        EventReceiver(read_fd, collector.on_event, collector.on_close)
        await until(lambda: EventsDropped(dropped) in collector.events, timeout_s=1.0)
        _assert_delivered_with_gap(collector.events, sent, dropped)
        sender.close()

    run_async(scenario())


def test_eof_calls_on_close_once_and_closes_the_fd() -> None:
    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        collector = Collector()
        receiver = EventReceiver(read_fd, collector.on_event, collector.on_close)
        os.write(write_fd, FrameEncoder().encode([LogLine("info", "bye")]))
        os.close(write_fd)
        await until(lambda: collector.closes > 0)
        assert collector.events == [LogLine("info", "bye")]
        receiver.close()
        await asyncio.sleep(0.01)
        assert collector.closes == 1
        assert receiver.is_closed
        with pytest.raises(OSError):
            os.fstat(read_fd)

    run_async(scenario())


def test_sender_close_flushes_before_eof() -> None:
    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        collector = Collector()
        EventReceiver(read_fd, collector.on_event, collector.on_close)
        sender = EventSender(write_fd)
        sender(LogLine("info", "one"))
        sender(LogLine("info", "two"))
        sender.close()
        sender(LogLine("info", "after close"))  # ignored, no error
        await until(lambda: collector.closes > 0)
        assert collector.events == [LogLine("info", "one"), LogLine("info", "two")]
        assert collector.closes == 1

    run_async(scenario())


def test_malformed_frame_on_the_channel_closes_it_once() -> None:
    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        collector = Collector()
        receiver = EventReceiver(read_fd, collector.on_event, collector.on_close)
        os.write(write_fd, frame(b"garbage"))
        await until(lambda: collector.closes > 0)
        assert receiver.is_closed
        receiver.close()
        await asyncio.sleep(0.01)
        assert collector.closes == 1
        os.close(write_fd)

    run_async(scenario())


def test_sender_to_a_closed_reader_breaks_quietly() -> None:
    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        os.close(read_fd)
        sender = EventSender(write_fd)
        sender(LogLine("info", "nobody listens"))
        await asyncio.sleep(0)
        assert sender.is_broken
        sender(LogLine("info", "still nobody"))
        sender.close()

    run_async(scenario())


def test_sender_outside_a_loop_writes_at_once() -> None:
    read_fd, write_fd = os.pipe()
    try:
        sender = EventSender(write_fd)
        sender(LogLine("info", "sync"))
        assert FrameDecoder().feed(os.read(read_fd, 65536)) == [LogLine("info", "sync")]
        sender.close()
        assert os.read(read_fd, 10) == b""
    finally:
        os.close(read_fd)


def test_ready_and_startup_failure_are_written_at_once_with_what_came_before() -> None:
    """The supervisor swaps workers on `ServerStarted`: it must not wait for the loop."""
    started = EVERY_KIND[0]
    failed = next(e for e in EVERY_KIND if isinstance(e, StartupFailed))

    async def scenario() -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        try:
            sender = EventSender(write_fd)
            for urgent in (started, failed):
                sender(LogLine("info", "queued first"))
                sender(urgent)
                # Still inside this loop iteration: the frame is already in the pipe.
                got = FrameDecoder().feed(os.read(read_fd, 65536))
                assert got == [LogLine("info", "queued first"), urgent]
            sender(LogLine("info", "batched"))
            with pytest.raises(BlockingIOError):
                os.read(read_fd, 65536)
            await asyncio.sleep(0)
            assert FrameDecoder().feed(os.read(read_fd, 65536)) == [LogLine("info", "batched")]
            sender.close()
        finally:
            os.close(read_fd)

    run_async(scenario())
