"""Fixed-size latency histograms and a per-second sliding window of them. Pure: no I/O, no clock.

Theory of operation
-------------------
**Bucket layout (log-linear, HdrHistogram style).** Durations are milliseconds. The range
``[MIN_MS, MAX_MS)`` = ``[2**-5, 2**16)`` ms (31.25 µs to 65.5 s) is cut into ``OCTAVES = 21``
powers of two, and each octave into ``SUB_BUCKETS = 16`` equal-width sub-buckets. ``math.frexp``
gives the octave (exponent) and the linear position inside it (mantissa), so finding a bucket
takes no logarithm and no search. Bucket 0 holds everything below ``MIN_MS`` (and negatives);
the last bucket holds everything from ``MAX_MS`` up (and NaN / inf). 338 buckets in all.

A sub-bucket is at most 1/16 of its lower edge wide, so its midpoint is within
``RELATIVE_ERROR = 1/32`` (3.125 %) of every value inside it. Percentiles use the nearest-rank
definition (the value of rank ``max(1, ceil(q * n / 100))`` in sorted order) and report the
midpoint of the bucket holding that rank, so they are within ``RELATIVE_ERROR`` of the exact
nearest-rank percentile. Below ``MIN_MS`` they report ``MIN_MS / 2``; at or above ``MAX_MS``
they report ``MAX_MS`` (a lower bound).

**Window ring.** ``SlidingWindow`` keeps one slot per whole second (``floor(now_s)``) in a ring
as long as its longest span (60 slots for spans 10 s and 60 s). A slot is a flat ``list[int]``:
the 338 bucket counts, then the request count, then ``n_counters`` caller-defined counters
(status classes, say). Beside the ring it keeps one running aggregate per span, so recording
touches three lists (slot + two aggregates) and a read is one pass over one aggregate.

When ``now_s`` enters a new second ``t``, for each span the slot of second ``t - span`` leaves
that span's aggregate (subtracted), then slot ``t % ring`` is zeroed for reuse (for the longest
span it is the same slot). Empty slots are skipped, so an idle server costs nothing; a jump of a
whole ring or more just zeroes everything. No per-request timestamps are kept. Time that goes
backwards is treated as the current second.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate
from operator import add, sub

SUB_BUCKETS = 16
OCTAVES = 21
MIN_MS = 2.0**-5
MAX_MS = MIN_MS * 2.0**OCTAVES
BUCKET_COUNT = OCTAVES * SUB_BUCKETS + 2
RELATIVE_ERROR = 1.0 / (2 * SUB_BUCKETS)

_OVERFLOW = BUCKET_COUNT - 1
_MAX_PERCENTILE = 100.0
_SCALE = 1.0 / MIN_MS  # a power of two, so the scaling is exact
_REQUESTS = BUCKET_COUNT  # slot column: requests recorded in that slot
_COUNTERS_AT = BUCKET_COUNT + 1  # slot columns from here: caller-defined counters


def bucket_index(duration_ms: float) -> int:
    """Return the bucket that holds ``duration_ms``.

    Args:
        duration_ms: A duration in milliseconds.

    Returns:
        0 for values below ``MIN_MS``, ``BUCKET_COUNT - 1`` for ``MAX_MS`` and above (and NaN),
        otherwise the log-linear bucket.
    """
    if duration_ms < MIN_MS:
        return 0
    if duration_ms < MAX_MS:
        mantissa, exponent = math.frexp(duration_ms * _SCALE)  # mantissa in [0.5, 1)
        return (exponent - 1) * SUB_BUCKETS + int(mantissa * 2 * SUB_BUCKETS) - SUB_BUCKETS + 1
    return _OVERFLOW


def bucket_bounds_ms(index: int) -> tuple[float, float]:
    """Return the half-open range ``[low, high)`` in milliseconds covered by bucket ``index``.

    Raises:
        IndexError: If ``index`` is not in ``range(BUCKET_COUNT)``.
    """
    if not 0 <= index < BUCKET_COUNT:
        raise IndexError(f"bucket index {index} out of range(0, {BUCKET_COUNT})")
    if index == 0:
        return 0.0, MIN_MS
    if index == _OVERFLOW:
        return MAX_MS, math.inf
    octave, sub_bucket = divmod(index - 1, SUB_BUCKETS)
    base = MIN_MS * 2.0**octave
    return base * (1 + sub_bucket / SUB_BUCKETS), base * (1 + (sub_bucket + 1) / SUB_BUCKETS)


def _representative_ms(index: int) -> float:
    if index == 0:
        return MIN_MS / 2
    if index == _OVERFLOW:
        return MAX_MS
    low, high = bucket_bounds_ms(index)
    return (low + high) / 2


_REPRESENTATIVE_MS = tuple(_representative_ms(i) for i in range(BUCKET_COUNT))


def _check_quantile(q: float) -> None:
    if not 0.0 <= q <= _MAX_PERCENTILE:
        raise ValueError(f"percentile must be within [0, 100], got {q!r}")


def _percentiles(
    counts: Sequence[int], total: int, qs: Iterable[float]
) -> tuple[float | None, ...]:
    """Nearest-rank percentiles of the first ``BUCKET_COUNT`` entries of ``counts``."""
    qs = tuple(qs)
    for q in qs:
        _check_quantile(q)
    if total <= 0:
        return tuple(None for _ in qs)
    cumulative = list(accumulate(counts[:BUCKET_COUNT]))
    ranks = (max(1, math.ceil(q * total / 100)) for q in qs)
    return tuple(_REPRESENTATIVE_MS[bisect_left(cumulative, rank)] for rank in ranks)


class LatencyHistogram:
    """Counts of durations in fixed log-linear buckets; see the module docstring.

    Recording is O(1) and allocates nothing; percentiles are one pass over 338 buckets.
    """

    __slots__ = ("_count", "_counts")

    def __init__(self) -> None:
        self._counts = [0] * BUCKET_COUNT
        self._count = 0

    @property
    def count(self) -> int:
        """Number of durations recorded."""
        return self._count

    def record(self, duration_ms: float) -> None:
        """Count one duration in milliseconds."""
        self._counts[bucket_index(duration_ms)] += 1
        self._count += 1

    def record_bucket(self, index: int) -> None:
        """Count one duration already mapped with `bucket_index` (saves recomputing it)."""
        self._counts[index] += 1
        self._count += 1

    def merge(self, other: LatencyHistogram) -> None:
        """Add every count of ``other`` into this histogram."""
        self._counts[:] = map(add, self._counts, other._counts)
        self._count += other._count

    def percentile(self, q: float) -> float | None:
        """Return the nearest-rank ``q``-th percentile in milliseconds.

        Args:
            q: Percentile in ``[0, 100]`` (``95`` for p95).

        Returns:
            The estimate (within ``RELATIVE_ERROR``), or None if nothing was recorded.

        Raises:
            ValueError: If ``q`` is outside ``[0, 100]``.
        """
        return _percentiles(self._counts, self._count, (q,))[0]

    def percentiles(self, qs: Iterable[float]) -> tuple[float | None, ...]:
        """Return several percentiles (see `percentile`) in one pass over the buckets."""
        return _percentiles(self._counts, self._count, qs)

    def bucket_counts(self) -> tuple[int, ...]:
        """Return a copy of the per-bucket counts (index as in `bucket_index`)."""
        return tuple(self._counts)

    def clear(self) -> None:
        """Forget every recorded duration."""
        self._counts[:] = [0] * BUCKET_COUNT
        self._count = 0

    def __repr__(self) -> str:
        return f"<LatencyHistogram count={self._count} p50={self.percentile(50)}>"


class SlidingWindow:
    """A ring of per-second histogram slots with running aggregates per span.

    Args:
        spans_s: Window lengths in whole seconds, e.g. ``(10, 60)``; the ring is as long as the
            longest.
        n_counters: Extra per-second counters kept beside the histogram (indices
            ``0 .. n_counters - 1``), e.g. one per HTTP status class.

    Raises:
        ValueError: If a span is not a positive int or ``n_counters`` is negative.
    """

    __slots__ = ("_aggregates", "_current", "_head_s", "_origin_s", "_ring", "_spans", "_zeros")

    def __init__(self, spans_s: Sequence[int] = (10, 60), n_counters: int = 0) -> None:
        if not spans_s or min(spans_s) < 1:
            raise ValueError(f"spans must be positive whole seconds, got {spans_s!r}")
        if n_counters < 0:
            raise ValueError(f"n_counters must be >= 0, got {n_counters}")
        self._spans = tuple(sorted(set(spans_s)))
        width = _COUNTERS_AT + n_counters
        self._zeros = [0] * width
        self._ring = [[0] * width for _ in range(self._spans[-1])]
        self._aggregates = [[0] * width for _ in self._spans]
        self._current = self._ring[0]
        self._head_s: int | None = None
        self._origin_s = 0.0  # set by the first advance

    @property
    def spans_s(self) -> tuple[int, ...]:
        """The configured window lengths in seconds, ascending."""
        return self._spans

    def advance(self, now_s: float) -> None:
        """Move the ring to ``now_s`` (monotonic seconds), expiring slots that fell out.

        Every other method calls this first; call it directly only to expire without reading.
        """
        self._advance(now_s)

    def _advance(self, now_s: float) -> int:
        """`advance`, returning the current (head) second."""
        second = math.floor(now_s)
        head = self._head_s
        if head is not None and second <= head:
            return head
        size = len(self._ring)
        if head is None:
            self._origin_s = now_s
        elif second - head >= size:
            for slot in self._ring:
                slot[:] = self._zeros
            for aggregate in self._aggregates:
                aggregate[:] = self._zeros
        else:
            for t in range(head + 1, second + 1):
                self._expire_into(t)
        self._head_s = second
        self._current = self._ring[second % size]
        return second

    def _expire_into(self, t: int) -> None:
        """Enter second ``t``: drop what left each span, then zero the slot ``t`` reuses."""
        ring = self._ring
        for span, aggregate in zip(self._spans, self._aggregates, strict=True):
            leaving = ring[(t - span) % len(ring)]
            if any(leaving[_REQUESTS:]):
                aggregate[:] = map(sub, aggregate, leaving)
        reused = ring[t % len(ring)]
        if any(reused[_REQUESTS:]):
            reused[:] = self._zeros

    def record(self, now_s: float, duration_ms: float, counter: int = -1) -> None:
        """Record one request; see `record_bucket`."""
        self.record_bucket(now_s, bucket_index(duration_ms), counter)

    def record_bucket(self, now_s: float, index: int, counter: int = -1) -> None:
        """Record one request whose duration is already mapped with `bucket_index`.

        Args:
            now_s: Monotonic seconds.
            index: Bucket index of the request's duration.
            counter: Counter to bump as well, or -1 for none.
        """
        self._advance(now_s)
        slot = self._current
        slot[index] += 1
        slot[_REQUESTS] += 1
        for aggregate in self._aggregates:
            aggregate[index] += 1
            aggregate[_REQUESTS] += 1
        if counter >= 0:
            column = _COUNTERS_AT + counter
            slot[column] += 1
            for aggregate in self._aggregates:
                aggregate[column] += 1

    def bump(self, now_s: float, counter: int) -> None:
        """Add one to ``counter`` in the current second, without recording a request."""
        self._advance(now_s)
        column = _COUNTERS_AT + counter
        self._current[column] += 1
        for aggregate in self._aggregates:
            aggregate[column] += 1

    def _aggregate(self, now_s: float, span_s: int) -> list[int]:
        self._advance(now_s)
        try:
            return self._aggregates[self._spans.index(span_s)]
        except ValueError:
            raise ValueError(f"span {span_s!r} s is not one of {self._spans}") from None

    def requests(self, now_s: float, span_s: int) -> int:
        """Return the number of requests in the last ``span_s`` seconds (current one included)."""
        return self._aggregate(now_s, span_s)[_REQUESTS]

    def counters(self, now_s: float, span_s: int) -> tuple[int, ...]:
        """Return every counter summed over the last ``span_s`` seconds."""
        return tuple(self._aggregate(now_s, span_s)[_COUNTERS_AT:])

    def percentiles(
        self, now_s: float, span_s: int, qs: Iterable[float]
    ) -> tuple[float | None, ...]:
        """Return nearest-rank percentiles in ms over the last ``span_s`` s (None when empty)."""
        aggregate = self._aggregate(now_s, span_s)
        return _percentiles(aggregate, aggregate[_REQUESTS], qs)

    def rate_per_s(self, now_s: float, span_s: int) -> float:
        """Return requests per second over the last ``span_s`` seconds.

        The window covers the current partial second plus ``span_s - 1`` whole ones, so the
        divisor is the time actually covered: ``span_s - 1 + (now_s - floor(now_s))``, capped by
        the time since the first call, and never below one second.
        """
        count = self.requests(now_s, span_s)
        covered_s = span_s - 1 + max(0.0, now_s - self._advance(now_s))
        covered_s = max(1.0, min(covered_s, now_s - self._origin_s))
        return count / covered_s

    def _slots(self, now_s: float, seconds: int) -> list[list[int]]:
        """The last ``seconds`` slots, oldest first (the current partial second last)."""
        if not 1 <= seconds <= len(self._ring):
            raise ValueError(f"seconds must be within [1, {len(self._ring)}], got {seconds!r}")
        head, size = self._advance(now_s), len(self._ring)
        return [self._ring[t % size] for t in range(head - seconds + 1, head + 1)]

    def request_series(self, now_s: float, seconds: int) -> list[int]:
        """Return requests per second for the last ``seconds`` seconds, oldest first."""
        return [slot[_REQUESTS] for slot in self._slots(now_s, seconds)]

    def percentile_series(self, now_s: float, q: float, seconds: int) -> list[float | None]:
        """Return the ``q``-th percentile in ms of each of the last ``seconds`` seconds.

        Seconds without requests give None. Oldest first.
        """
        _check_quantile(q)
        return [
            _percentiles(slot, slot[_REQUESTS], (q,))[0] if slot[_REQUESTS] else None
            for slot in self._slots(now_s, seconds)
        ]
