"""Email activity (`GET /v3/messages`): one row per message with its latest status, open and click counts.

The endpoint needs the paid "additional email activity history" add-on, answers at most 1000 messages per
query with no cursor, and allows 6 requests a minute. Messages are read by windows on `last_event_time`, oldest
first, sized by message_windows.MessageWindows so that none is lost to the cap and few queries are wasted.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any, Iterable, List, Mapping, Optional
from urllib.parse import quote

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import StreamData

from ..incremental import CLOSES_READ, WindowedStream
from ..budget import LOGGED_WAIT_SECONDS, clock_time
from ..errors import is_missing_scope
from ..message_windows import MESSAGES_PER_QUERY, MessageWindows, Window
from ..windows import format_time, from_epoch, normalize_time, parse_time


# A window's slice key: the message_windows.Window it asks.
PLANNED = "planned"


def message_time(message: Any) -> Optional[float]:
    """A message's last event time in epoch seconds; None when it has none."""
    moment = parse_time(message.get("last_event_time")) if isinstance(message, dict) else None
    return moment.timestamp() if moment else None


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
    # The state moves after each window read whole, inside the read's one slice of 90 days: it is emitted every
    # query's worth of records, so a sync killed meanwhile goes on from there (the CDK emits it otherwise only
    # after the slice).
    state_checkpoint_interval = MESSAGES_PER_QUERY

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Told each window's answer by records_from; says where the next window ends.
        self._message_windows = MessageWindows()

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
        # With a state, messages were read up to this slice: they most likely go on from its start.
        after_messages = bool(self.state)
        end = stream_slice["window_end"]
        for planned in self._message_windows.over(stream_slice["window_start"], end, after_messages):
            if self.skipped:
                return
            self._log_progress(planned, end)
            window = {"window_start": planned.first, "window_end": planned.last, PLANNED: planned}
            if planned.read_to == end and stream_slice.get(CLOSES_READ):
                window[CLOSES_READ] = True
            yield from super().read_records(sync_mode, cursor_field, window, stream_state)

    def _log_progress(self, planned: Window, end: int) -> None:
        """Before a query that waits for the rate limit long enough to be logged: what is read, what is left,
        and when the limit resets."""
        wait = self._stats.budget.seconds_until_allowed("GET", self.path_template)
        if wait <= LOGGED_WAIT_SECONDS:
            return
        # Unread: the window and what lies past what it reads to (a read down reads the top of a window first).
        left = (planned.last - planned.first + 1) + (end - planned.read_to)
        more = self._message_windows.queries_left(left)
        queries = f", about {more} more queries at the recent rate" if more is not None else ""
        self.logger.info(
            f"Stream {self.name}: {self._message_windows.messages_read} messages read; left: {left / 3600:.1f} hours "
            f"of last_event_time between {format_time(from_epoch(planned.first))} and "
            f"{format_time(from_epoch(end))}{queries}. The next query waits {wait:.0f} s for SendGrid's rate limit "
            f"on GET {self.path_template} (6 a minute), which resets at {clock_time(time.time() + wait)}."
        )

    def records_from(self, api_records: List[Any], stream_slice: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        start, end = stream_slice["window_start"], stream_slice["window_end"]
        full = len(api_records) >= MESSAGES_PER_QUERY
        moments = [message_time(m) for m in api_records] if full else []
        verdict = self._message_windows.told(start, end, len(api_records), moments, stream_slice[PLANNED].may_read_down)
        if verdict.newer_than is not None:
            # Newest first: every message after the oldest second is here; that second is read again below.
            api_records = [m for m, moment in zip(api_records, moments) if math.floor(moment) > verdict.newer_than]
        elif not verdict.whole:
            return []  # some messages may be missing: emit nothing, the window is asked again in parts
        elif full:
            self.logger.warning(
                f"Stream {self.name}: {len(api_records)} messages share the last event second "
                f"{format_time(from_epoch(start))}; SendGrid returns at most {MESSAGES_PER_QUERY} "
                "per query, so some of that second's messages may be missing."
            )
        return super().records_from(api_records, stream_slice)

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**record, "last_event_time": normalize_time(record.get("last_event_time"))}

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        if self._message_windows.came_back_whole():
            super().on_slice_read({**stream_slice, "window_end": stream_slice[PLANNED].read_to})

    def _note_unreadable(self, response: requests.Response) -> None:
        if is_missing_scope(response):
            self._skip(
                f"SendGrid answered {response.status_code} to /v3/messages: the account needs the paid "
                "\"additional email activity history\" add-on and the API key the scope messages.read"
            )
