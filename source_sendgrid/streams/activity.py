"""Email activity (`GET /v3/messages`): one row per message with its latest status, open and click counts.

The endpoint needs the paid "additional email activity history" add-on, answers at most 1000 messages per
query with no cursor, and allows 6 requests a minute: each query costs 10 s, so the number of queries is the
sync's time. Messages are read by windows on `last_event_time`, oldest first, and a window that comes back
full is asked again in parts, until every window returns fewer than 1000 messages: none is lost to the cap.
A full answer is a wasted query, so each window is sized to hold about 920 messages at the rate of the last
windows read whole (or, after a full answer, at the rate its messages show); a window that came back full is
next asked at most half at a time, and exactly half while the windows before it were empty (a binary search
for where the messages begin, e.g. in the 90 days read back on a first sync); a run of empty windows elsewhere
grows the next one.
"""

from __future__ import annotations

import math
import time
from collections import deque
from datetime import timedelta
from typing import Any, Deque, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import quote

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import StreamData

from ..incremental import CLOSES_READ, WindowedStream
from ..budget import LOGGED_WAIT_SECONDS, clock_time
from ..errors import is_missing_scope
from ..windows import format_time, from_epoch, normalize_time, parse_time

# The API's own maximum for `limit`: a response this long may have left messages out.
MESSAGES_PER_QUERY = 1000
# What a window is sized to hold at the rate seen: below the cap by about 2.5 times the spread of a count of
# 920 (30) and of the rate it was sized by, so a few windows in a hundred come back full. On a 100k-message
# account, 900 and 940 both asked more queries (bench/rate_limits.py).
MESSAGES_PER_WINDOW = 920
# The rate that sizes windows is read over this many of the last windows read whole (one is too noisy).
RATE_WINDOWS = 5


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
    # At 6 queries a minute this is the sync's longest stream: a concurrent read starts it before the others.
    slow_start = True
    # Set by parse_response when a window came back full and must be split.
    _window_was_full = False
    _messages_read = 0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # (messages, seconds) of the last windows that came back whole, or of the last full answer's messages:
        # what sizes the next window. Appended by parse_response.
        self._recent: Deque[Tuple[int, int]] = deque(maxlen=RATE_WINDOWS)

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
        position, end = stream_slice["window_start"], stream_slice["window_end"]
        # [position, dense_end] holds at least `dense` messages: a window over all of it would come back full.
        dense_end, dense = position - 1, 0
        empty_seconds = 0  # how long the run of empty windows just before `position` is
        searching = True  # no window before `position` had messages: where they begin is not known yet
        while position <= end and not self.skipped:
            last = self._end_of_next_window(position, end, dense_end if dense >= MESSAGES_PER_QUERY else None,
                                            empty_seconds, searching)
            self._log_progress(position, end)
            self._window_was_full = False
            self._records_in_window = 0
            window = {"window_start": position, "window_end": last}
            if last == stream_slice["window_end"] and stream_slice.get(CLOSES_READ):
                window[CLOSES_READ] = True
            yield from super().read_records(sync_mode, cursor_field, window, stream_state)
            if self._window_was_full:
                dense_end, dense, empty_seconds = last, MESSAGES_PER_QUERY, 0
                continue
            read = self._records_in_window
            self._messages_read += read
            if searching and read and len(self._recent) > 1:
                # The first window with messages after empty ones also spans time before the first of them:
                # its rate is too low to size the next window by (the full answer's before it is not).
                self._recent.pop()
            empty_seconds = empty_seconds + (last - position + 1) if read == 0 else 0
            searching = read == 0
            dense -= read
            position = last + 1

    def _end_of_next_window(self, start: int, end: int, dense_end: Optional[int], empty_seconds: int,
                            searching: bool) -> int:
        """Where the next window from `start` ends.

        Within a range known to hold a full answer (ending at `dense_end`): at most half of it, so that asking
        again always makes progress, and exactly half while the window before was empty (a binary search for
        where the messages begin). Elsewhere: MESSAGES_PER_WINDOW at the recent rate (the whole rest while none
        is known), and at least twice a run of empty windows just read."""
        seconds = end - start + 1
        if dense_end is not None:
            half = max(1, (dense_end - start + 2) // 2)
            if searching:
                return start + half - 1
            seconds = min(seconds, half)
        rate = self._rate()
        if rate > 0:
            seconds = min(seconds, max(1, int(MESSAGES_PER_WINDOW / rate), 2 * empty_seconds))
        return start + seconds - 1

    def _rate(self) -> float:
        """Messages a second over the recent windows (0: none known)."""
        messages = sum(count for count, _ in self._recent)
        seconds = sum(span for _, span in self._recent)
        return messages / seconds if seconds else 0.0

    def _log_progress(self, position: int, end: int) -> None:
        """Before a query that waits for the rate limit long enough to be logged: what is read, what is left,
        and when the limit resets."""
        wait = self._stats.budget.seconds_until_allowed("GET", self.path_template)
        if wait <= LOGGED_WAIT_SECONDS:
            return
        rate = self._rate()
        left = end - position + 1
        queries = f", about {math.ceil(left * rate / MESSAGES_PER_WINDOW)} more queries at the recent rate" if rate else ""
        self.logger.info(
            f"Stream {self.name}: {self._messages_read} messages read, up to last_event_time "
            f"{format_time(from_epoch(position - 1))}; left: {left / 3600:.1f} hours up to "
            f"{format_time(from_epoch(end))}{queries}. The next query waits {wait:.0f} s for SendGrid's rate limit "
            f"on GET {self.path_template} (6 a minute), which resets at {clock_time(time.time() + wait)}."
        )

    def parse_response(
        self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any]]:
        messages = super().parse_response(response, stream_slice=stream_slice, **kwargs)
        window = stream_slice or {}
        if len(messages) < MESSAGES_PER_QUERY:
            if messages:
                self._recent.append((len(messages), window["window_end"] - window["window_start"] + 1))
            return messages
        if window["window_end"] > window["window_start"]:
            # Full: some messages may be missing. Emit nothing; the window is asked again in parts. How close
            # together its messages are sizes those parts (if SendGrid sent a sample rather than the newest or
            # the oldest, this rate is too low, and halving makes progress).
            moments = [moment.timestamp() for moment in (parse_time(m.get("last_event_time")) for m in messages) if moment]
            if moments:
                self._recent.clear()
                self._recent.append((len(moments), int(max(moments) - min(moments)) + 1))
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
