"""Worker -> supervisor event channel: a framing codec and its two thin shells.

Frame format (one frame carries a batch of events)::

    +----------------------+-------------------------------------------+
    | length: u32 big end. | JSON array of `devserve.wire.to_wire()` |
    +----------------------+-------------------------------------------+

`FrameEncoder`/`FrameDecoder` are pure. `FrameDecoder` refuses frames larger than
``max_frame_bytes`` with `FrameTooLarge`: the channel is then dropped, never resynced.

`EventSender` (worker side) batches the events of one loop iteration into one frame and
writes without blocking; the events the supervisor acts on (`ServerStarted`: swap the
workers now; `StartupFailed`) are written at once, with whatever is queued before them.
When the supervisor falls behind and the unsent bytes exceed ``max_pending_bytes``, new
events are dropped and counted; the count travels as an `EventsDropped` event once there
is room. A request never waits on the supervisor.

`EventReceiver` (supervisor side) reads with the event loop and hands each event, and
finally end-of-file, to a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
from collections.abc import Callable

from devserve.errors import FrameTooLarge, IPCError
from devserve.events import Event, EventsDropped, ServerStarted, StartupFailed
from devserve.wire import from_wire, to_wire

_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1024 * 1024
#: Events per frame; a chunk that still encodes too large is split in halves.
EVENTS_PER_FRAME = 2048
#: Events written the moment they are queued: the supervisor's next step waits on them.
URGENT_EVENTS = (ServerStarted, StartupFailed)


class FrameEncoder:
    """Encode batches of events as frames."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes

    def encode(self, events: list[Event]) -> bytes:
        """Return one frame for `events`.

        Raises:
            FrameTooLarge: the batch does not fit one frame.
        """
        payload = json.dumps([to_wire(e) for e in events], separators=(",", ":")).encode()
        if len(payload) > self.max_frame_bytes:
            msg = f"event batch of {len(payload)} bytes exceeds {self.max_frame_bytes}"
            raise FrameTooLarge(msg)
        return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Split a byte stream into frames and decode their events."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Event]:
        """Add received bytes; return the events of every frame now complete.

        Raises:
            FrameTooLarge: a frame header announces more than ``max_frame_bytes``.
            IPCError: a frame is not a JSON array of valid events.
        """
        self._buffer += data
        events: list[Event] = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self.max_frame_bytes:
                msg = f"frame of {length} bytes exceeds {self.max_frame_bytes}"
                raise FrameTooLarge(msg)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            try:
                items = json.loads(payload)
                events.extend(from_wire(item) for item in items)
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                msg = f"malformed event frame: {exc}"
                raise IPCError(msg) from None
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)


class EventSender:
    """Worker side: send events to the supervisor without ever blocking.

    Args:
        fd: the write end of the channel (set non-blocking here).
        max_pending_bytes: unsent bytes kept before new events are dropped.
    """

    def __init__(self, fd: int, max_pending_bytes: int = 4 * 1024 * 1024) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.max_pending_bytes = max_pending_bytes
        self.dropped = 0
        self._encoder = FrameEncoder()
        self._batch: list[Event] = []
        self._unsent = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._is_scheduled = False
        self._is_writer_on = False
        self.is_broken = False

    def __call__(self, event: Event) -> None:
        """Queue `event`; it is written at the end of this loop iteration (urgent: now)."""
        if self.is_broken:
            return
        if len(self._unsent) > self.max_pending_bytes:
            self.dropped += 1
            return
        self._batch.append(event)
        if self._is_scheduled and not isinstance(event, URGENT_EVENTS):
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if isinstance(event, URGENT_EVENTS):
            self.flush()  # a flush already scheduled finds an empty batch
            return
        self._is_scheduled = True
        self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Encode the batch and write as much as the channel takes now."""
        self._is_scheduled = False
        if self.dropped and len(self._unsent) <= self.max_pending_bytes:
            self._batch.append(EventsDropped(count=self.dropped))
            self.dropped = 0
        batch, self._batch = self._batch, []
        for start in range(0, len(batch), EVENTS_PER_FRAME):
            self._encode(batch[start : start + EVENTS_PER_FRAME])
        self._write()

    def _encode(self, chunk: list[Event]) -> None:
        """Append `chunk` as one frame, or as several when it is too large for one."""
        try:
            self._unsent += self._encoder.encode(chunk)
        except FrameTooLarge:
            if len(chunk) == 1:
                self.dropped += 1  # one event over a megabyte: not worth the channel
                return
            middle = len(chunk) // 2
            self._encode(chunk[:middle])
            self._encode(chunk[middle:])

    def close(self) -> None:
        """Flush what can be written now (blocking briefly) and close the channel."""
        self.flush()
        if self._unsent and not self.is_broken:
            with contextlib.suppress(OSError):
                os.set_blocking(self.fd, True)
                os.write(self.fd, bytes(self._unsent))
        self._stop_writer()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.is_broken = True

    def _write(self) -> None:
        while self._unsent and not self.is_broken:
            try:
                written = os.write(self.fd, self._unsent)
            except BlockingIOError:
                self._start_writer()
                return
            except OSError:
                # The supervisor is gone; the parent-death watch ends this process.
                self.is_broken = True
                self._unsent.clear()
                return
            del self._unsent[:written]
        self._stop_writer()
        if self.dropped and not self._is_scheduled and self._loop is not None:
            # Room again: say how many events were lost without waiting for a new one.
            self._is_scheduled = True
            self._loop.call_soon(self.flush)

    def _start_writer(self) -> None:
        if not self._is_writer_on and self._loop is not None:
            self._loop.add_writer(self.fd, self._write)
            self._is_writer_on = True

    def _stop_writer(self) -> None:
        if self._is_writer_on and self._loop is not None:
            self._loop.remove_writer(self.fd)
            self._is_writer_on = False


class EventReceiver:
    """Supervisor side: read a worker's channel with the event loop.

    Args:
        fd: the read end of the channel (owned and closed by the receiver).
        on_event: called with each decoded event.
        on_close: called once, when the channel reaches end-of-file or breaks.
    """

    def __init__(
        self,
        fd: int,
        on_event: Callable[[Event], None],
        on_close: Callable[[], None],
    ) -> None:
        self.fd = fd
        self._on_event = on_event
        self._on_close = on_close
        self._decoder = FrameDecoder()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)
        self.is_closed = False

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 256 * 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            events = self._decoder.feed(data)
        except IPCError:
            self.close()
            return
        for event in events:
            self._on_event(event)

    def close(self) -> None:
        """Stop reading and close the channel; calls ``on_close`` once."""
        if self.is_closed:
            return
        self.is_closed = True
        self._loop.remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self._on_close()
