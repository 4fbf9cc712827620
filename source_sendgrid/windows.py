"""Date windows for incremental reads, and the one place that converts SendGrid's time formats.

SendGrid mixes epoch seconds, ISO 8601, "YYYY-MM-DD HH:MM:SS" without a zone, and plain dates
(docs/endpoints.md#time-formats). Records are emitted with RFC 3339 UTC strings ("2024-01-31T12:00:00Z").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterator, Optional

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RECORD_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive
    end: datetime  # inclusive


def windows(start: datetime, end: datetime, step: timedelta, resolution: timedelta = timedelta(seconds=1)) -> Iterator[Window]:
    """Consecutive inclusive windows of `step` covering [start, end]; `resolution` is the API's time granularity."""
    return GrowingWindows(step, resolution).over(start, end)


class GrowingWindows:
    """Consecutive inclusive windows covering [start, end], told how many records each held: after an empty
    window the next is twice as long (up to `longest`), after one with records it is `step` again, so the years
    before an account's first record cost a few requests, not one per window. Without `longest` every window is
    `step` long. `resolution` is the API's time granularity."""

    def __init__(self, step: timedelta, resolution: timedelta = timedelta(seconds=1), longest: Optional[timedelta] = None):
        self._step = step
        self._resolution = resolution
        self._longest = longest
        self._records = 0  # in the window last yielded, as told

    def told(self, records: int) -> None:
        """That the window last yielded held `records` more records (once per page)."""
        self._records += records

    def over(self, start: datetime, end: datetime) -> Iterator[Window]:
        current, step = start, self._step
        while current <= end:
            window_end = min(current + step - self._resolution, end)
            self._records = 0
            yield Window(current, window_end)
            current = window_end + self._resolution
            if self._longest is not None:
                step = min(step * 2, self._longest) if self._records == 0 else self._step


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc)


def parse_time(value: Any) -> Optional[datetime]:
    """Any SendGrid timestamp as an aware UTC datetime (None for empty or unreadable values)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return from_epoch(value)
        text = str(value).strip()
        if text.isdigit():
            return from_epoch(int(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        # Not a time, or one no datetime can hold (an epoch in the year 300 000, "²", NaN).
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Epoch seconds up to 9999-12-31T23:59:59Z, the last moment the record format can write.
_LAST_EPOCH = 253402300799


@lru_cache(maxsize=1 << 16)
def _epoch_day(days: int) -> str:
    return (EPOCH + timedelta(days=days)).strftime("%Y-%m-%d")


# "THH:MM" for each minute of a day and ":SSZ" for each second: a time of day is two lookups.
_MINUTES_OF_DAY = tuple(f"T{m // 60:02d}:{m % 60:02d}" for m in range(1440))
_SECONDS_OF_MINUTE = tuple(f":{s:02d}Z" for s in range(60))


def _format_epoch(seconds: int) -> str:
    """format_time(from_epoch(seconds)) for whole, non-negative seconds, without building a datetime:
    this runs once per record of most streams."""
    days, rest = divmod(seconds, 86400)
    minutes, secs = divmod(rest, 60)
    return _epoch_day(days) + _MINUTES_OF_DAY[minutes] + _SECONDS_OF_MINUTE[secs]


def normalize_time(value: Any) -> Optional[str]:
    """Any SendGrid timestamp as the one format our records use; unreadable values stay as they are."""
    kind = type(value)
    if kind is int and 0 <= value <= _LAST_EPOCH:
        return _format_epoch(value)
    if kind is str and 0 < len(value) <= 12 and value.isdigit() and value.isascii():
        return _format_epoch(int(value))  # an epoch sent as text (legacy custom date fields)
    if kind is str and len(value) == 20 and _RECORD_TIME.match(value):
        # Already in the record format: formatting a valid one gives it back, an invalid one stays as it is.
        return value
    moment = parse_time(value)
    if moment is None:
        return None if value in (None, "") else value
    return format_time(moment)


def record_time(value: Any) -> Optional[str]:
    """Any SendGrid timestamp in the record format, or None if it is not a time. Record-format texts sort
    in time order, so cursors can be compared without building datetimes."""
    text = normalize_time(value)
    return text if type(text) is str and len(text) == 20 and _RECORD_TIME.match(text) else None


def state_cursor(value: Any) -> Optional[datetime]:
    """The cursor a saved state holds, as a moment; None, as if there were no state, for a value that is no
    time or lies before 1970 (no SendGrid record is that old, and arithmetic on year 1 overflows). A cursor
    in the future is returned as it is: the caller reads nothing newer than it."""
    moment = parse_time(value)
    return moment if moment is not None and moment >= EPOCH else None


class CappedCursor:
    """The newest record time a read saw, as the state will save it: never later than the moment the sync
    started, so one record dated in the future cannot carry the state past records still to come. Starts at
    the state's own cursor, which stays if nothing newer is seen. Moments are record-format texts
    ("2024-01-31T12:00:00Z"), which compare in time order.

    For any stream that takes its state from the records it emits (client-side filtered ones).
    """

    def __init__(self, state_value: Optional[str], sync_start: datetime):
        self.value = state_value
        self._limit = format_time(sync_start)
        self.future_records = 0
        self.latest_future: Optional[str] = None

    def see(self, moment: Optional[str]) -> None:
        if moment is None:
            return
        if moment > self._limit:
            self.future_records += 1
            if self.latest_future is None or moment > self.latest_future:
                self.latest_future = moment
            moment = self._limit
        if self.value is None or moment > self.value:
            self.value = moment

    def future_warning(self, stream_name: str) -> Optional[str]:
        """One line for the log about the records dated after the sync started, or None if there were none."""
        if not self.future_records:
            return None
        return (f"Stream {stream_name}: {self.future_records} record(s) are dated after this sync started "
                f"(latest {self.latest_future}). They are emitted, but the state stops at {self._limit}, so later "
                "syncs still see every record changed after this one; these records come again until their date passes.")


class ChangedSince:
    """A read that filters on the client: which moments are after the state's cursor minus the lookback (a
    moment that is no time counts as changed: its record is read), and the newest one seen, capped at the
    sync's start (CappedCursor), for the state saved once the read is whole. Moments are record-format texts,
    whose order is time order."""

    def __init__(self, cursor: Optional[datetime], lookback: timedelta, sync_start: datetime):
        self.threshold = format_time(cursor - lookback) if cursor else None
        self.newest = CappedCursor(format_time(cursor) if cursor else None, sync_start)

    def is_changed(self, moment: Optional[str]) -> bool:
        """Shows `moment` to the newest seen; True unless it is at or before the threshold."""
        self.newest.see(moment)
        return self.threshold is None or moment is None or moment > self.threshold
