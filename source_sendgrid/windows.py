"""Date windows for incremental reads, and the one place that converts SendGrid's time formats.

SendGrid mixes epoch seconds, ISO 8601, "YYYY-MM-DD HH:MM:SS" without a zone, and plain dates
(ENDPOINTS.md §0). Records are emitted with RFC 3339 UTC strings ("2024-01-31T12:00:00Z").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator, Optional

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive
    end: datetime  # inclusive

    @property
    def start_epoch(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_epoch(self) -> int:
        return int(self.end.timestamp())


def windows(start: datetime, end: datetime, step: timedelta, resolution: timedelta = timedelta(seconds=1)) -> Iterator[Window]:
    """Consecutive inclusive windows covering [start, end]; `resolution` is the API's time granularity."""
    current = start
    while current <= end:
        window_end = min(current + step - resolution, end)
        yield Window(current, window_end)
        current = window_end + resolution


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc)


def parse_time(value: Any) -> Optional[datetime]:
    """Any SendGrid timestamp as an aware UTC datetime (None for empty or unreadable values)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return from_epoch(value)
    text = str(value).strip()
    if text.isdigit():
        return from_epoch(int(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_time(value: Any) -> Optional[str]:
    """Any SendGrid timestamp as the one format our records use; unreadable values stay as they are."""
    moment = parse_time(value)
    if moment is None:
        return None if value in (None, "") else value
    return format_time(moment)


def day(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()
