"""Email activity (`GET /v3/messages`): one row per message with its latest status, open and click counts.

The endpoint needs the paid "additional email activity history" add-on, answers at most 1000 messages per
query with no cursor, and allows only a few requests a minute. Messages are therefore read by windows on
`last_event_time`, and a window that comes back full is asked again in parts, until every window returns
fewer than 1000 messages: none is lost to the cap. A full answer is a wasted request, so each window is sized
to hold about 750 messages at the rate of the last window read whole, and a window that came back full is
asked again at most half at a time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import quote

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import StreamData

from ..base import CLOSES_READ, WindowedStream
from ..errors import is_missing_scope
from ..windows import format_time, from_epoch, normalize_time

# The API's own maximum for `limit`: a response this long may have left messages out.
MESSAGES_PER_QUERY = 1000
# What a window is sized to hold at the last rate seen: below the cap, with room for bursts.
MESSAGES_PER_WINDOW = 750


def between_query(start_epoch: int, end_epoch: int) -> str:
    """SendGrid's query language for an inclusive range of `last_event_time`."""
    return (f'last_event_time BETWEEN TIMESTAMP "{format_time(from_epoch(start_epoch))}" '
            f'AND TIMESTAMP "{format_time(from_epoch(end_epoch))}"')


class EmailActivity(WindowedStream):
    """Messages whose last event falls in the sync's windows. A message that gets a new event (an open
    after delivery) moves to a later `last_event_time` and is emitted again: dedupe on `msg_id`."""

    path_template = "/v3/messages"
    records_key = ("messages",)
    primary_key = "msg_id"
    cursor_field = "last_event_time"
    required_scopes = ("messages.read",)
    us_only = True
    accepts_subuser = False
    # The add-on keeps about 30 days of history (the spec's CSV export covers "the last 30 days"); reading
    # back 90 days is safe and spares the ~35 empty queries, at a few a minute, of a start date in 2009.
    retention = timedelta(days=90)
    # Set by parse_response when a window came back full and must be split.
    _window_was_full = False
    # Messages a second in the last window that came back whole (0 until one did): what sizes the next.
    _recent_rate = 0.0

    def path(self, stream_slice: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> str:
        # `query` goes in the path, percent-encoded as the docs ask: requests would write spaces as '+'.
        window = stream_slice or {}
        query = between_query(window["window_start"], window["window_end"])
        return f"{self.path_template}?query={quote(query, safe='')}"

    def slice_params(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"limit": MESSAGES_PER_QUERY}

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        if not stream_slice:
            return
        # A stack of (start, end, came back full), oldest on top, so the state can follow each window read whole.
        pending: List[Tuple[int, int, bool]] = [(stream_slice["window_start"], stream_slice["window_end"], False)]
        while pending and not self.skipped:
            start, end, was_full = pending.pop()
            last = self._end_of_next_window(start, end, was_full)
            if last < end:
                pending.append((last + 1, end, False))
            self._window_was_full = False
            window = {"window_start": start, "window_end": last}
            if last == stream_slice["window_end"] and stream_slice.get(CLOSES_READ):
                window[CLOSES_READ] = True
            yield from super().read_records(sync_mode, cursor_field, window, stream_state)
            if self._window_was_full:
                pending.append((start, last, True))

    def _end_of_next_window(self, start: int, end: int, was_full: bool) -> int:
        """Where the next window asked from [start, end] ends: MESSAGES_PER_WINDOW at the last rate seen,
        and at most half of a window that came back full (which spans two seconds or more)."""
        span = end - start + 1
        seconds = span
        if self._recent_rate > 0:
            seconds = min(seconds, max(1, int(MESSAGES_PER_WINDOW / self._recent_rate)))
        if was_full:
            seconds = min(seconds, (span + 1) // 2)
        return start + seconds - 1

    def parse_response(
        self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any]]:
        messages = super().parse_response(response, stream_slice=stream_slice, **kwargs)
        window = stream_slice or {}
        if len(messages) < MESSAGES_PER_QUERY:
            self._recent_rate = len(messages) / (window["window_end"] - window["window_start"] + 1)
            return messages
        if window["window_end"] > window["window_start"]:
            # Full: some messages may be missing. Emit nothing; the window is asked again in parts.
            self._window_was_full = True
            return []
        self.logger.warning(
            f"Stream {self.name}: {len(messages)} messages share the last event second "
            f"{format_time(from_epoch(window['window_start']))}; SendGrid returns at most {MESSAGES_PER_QUERY} "
            "per query, so some of that second's messages may be missing."
        )
        return messages

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**record, "last_event_time": normalize_time(record.get("last_event_time"))}

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        if not self._window_was_full:
            super().on_slice_read(stream_slice)

    def _note_unreadable(self, response: requests.Response) -> None:
        if is_missing_scope(response):
            self._skip(
                f"SendGrid answered {response.status_code} to /v3/messages: the account needs the paid "
                "\"additional email activity history\" add-on and the API key the scope messages.read"
            )
