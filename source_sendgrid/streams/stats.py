"""Email statistics: daily counters, globally and per category, mailbox provider, browser, device, client
and US/Canadian province, plus the category list itself.

SendGrid keeps adding late events (opens, bounces) to the counters of recent days, so incremental syncs
re-read a trailing window of days and emit those rows again with corrected counts: dedupe on the
primary key (`date` plus the dimension) and the last row wins.

The spec says of all five advanced statistics (mailbox provider, browser, device, client, geo) that only
7 days of activity are stored. Every stream still asks for the whole configured range: a day SendGrid no
longer holds comes back empty, which costs a request per window, while a day it does hold is never
left unread.
"""

from __future__ import annotations

from abc import ABC
from datetime import datetime, timedelta
from typing import Any, Iterable, List, Mapping, Optional, Type

import requests
from airbyte_cdk.models import SyncMode

from ..base import SendgridStream
from ..incremental import WindowedStream
from ..pagination import OffsetPager, SinglePage

# Counters of the last days still change: re-read at least this many days, whatever `lookback_days` says.
STATS_MIN_LOOKBACK_DAYS = 3
# `/v3/categories/stats` takes at most this many `categories` per request, `/v3/subusers/stats` as many `subusers`.
NAMES_PER_REQUEST = 10


class StatsStream(WindowedStream):
    """A `/v3/*/stats` endpoint read by whole days (`start_date`/`end_date` inclusive, `aggregated_by=day`).

    The API nests `{date, stats: [{type, name, metrics}]}`; each (date, type, name) becomes one record with
    the metrics as columns, because each endpoint has a fixed, documented set of counters and columns are
    what a warehouse query wants (`SUM(delivered)`), not a JSON object to unpack.
    """

    cursor_field = "date"
    window_params = ("start_date", "end_date")
    window_resolution = timedelta(days=1)
    min_lookback = timedelta(days=STATS_MIN_LOOKBACK_DAYS)
    primary_key = ["date", "type", "name"]
    static_params = {"aggregated_by": "day"}

    def format_window_bound(self, moment: datetime) -> Any:
        return moment.strftime("%Y-%m-%d")

    def parse_response(
        self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any]]:
        if response.status_code >= 400:
            self._note_unreadable(response)
            return []
        rows = [row for day in self._records_of(response) for row in self.flatten(day)]
        # Rows go through the same schema fitting as every other stream's records.
        return self._conformed(rows, stream_slice or {})

    def flatten(self, day: Any) -> List[Any]:
        """One row per (date, dimension); a malformed day or entry passes through for the fitter to drop."""
        if not isinstance(day, Mapping) or not isinstance(day.get("stats"), list):
            return [day] if not isinstance(day, Mapping) else []
        rows = []
        for entry in day["stats"]:
            if not isinstance(entry, Mapping):
                rows.append(entry)
                continue
            metrics = entry.get("metrics") if isinstance(entry.get("metrics"), Mapping) else {}
            dimension = {key: entry.get(key) for key in self.primary_key if key != "date"}
            rows.append({"date": day.get("date"), **dimension, **metrics})
        return rows


class GlobalStats(StatsStream):
    """Account-wide daily totals (`/v3/stats`): one row per day."""

    path_template = "/v3/stats"
    primary_key = ["date"]
    pager = OffsetPager(limit=500)
    required_scopes = ("stats.global.read",)


class Categories(SendgridStream):
    """Every category the account has sent with (`/v3/categories`)."""

    path_template = "/v3/categories"
    primary_key = "category"
    pager = OffsetPager(limit=100)
    required_scopes = ("categories.read",)


class NamedInRequests(SendgridStream, ABC):
    """An endpoint that reports only on the names listed in the request, at most NAMES_PER_REQUEST of them:
    the names are read first from stream `names_from` (field `name_field`). If that stream cannot be read,
    this one is skipped with a warning too, rather than read as if there were no names."""

    names_from: Type[SendgridStream]
    name_field: str
    names_param: str

    def name_groups(self) -> Optional[List[List[str]]]:
        """The names in groups for one request each, or None (the stream skipped, with its warning) when this
        stream or the names cannot be read."""
        if not self.is_readable():
            return None
        source = self.names_from(self._config, self._scope_gate, self._stats)
        names = sorted({str(record[self.name_field]) for record in source.read_records(SyncMode.full_refresh)
                        if record.get(self.name_field)})
        if source.skipped:
            self._skip(f"it needs the names listed by stream {source.name}, which could not be read")
            return None
        return [names[i : i + NAMES_PER_REQUEST] for i in range(0, len(names), NAMES_PER_REQUEST)]

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        for group in self.name_groups() or []:
            yield {"names": group}

    def slice_params(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**super().slice_params(stream_slice), self.names_param: list(stream_slice["names"])}


class StatsByName(NamedInRequests, StatsStream):
    """Daily counters of named things (categories, subusers): each day window is asked for in groups of names."""

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        groups = self.name_groups()
        if groups is None:
            return
        # The day windows (StatsStream's slices), each asked for once per group of names.
        for window in StatsStream.stream_slices(self, sync_mode, cursor_field, stream_state):
            for index, group in enumerate(groups):
                yield {**window, "names": group, "closes_window": index == len(groups) - 1}

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        # A window is done only once its last group of names was read.
        if stream_slice.get("closes_window"):
            super().on_slice_read(stream_slice)


class CategoryStats(StatsByName):
    """Daily counters per category. The endpoint needs the categories named, so the category list is read first."""

    path_template = "/v3/categories/stats"
    pager = SinglePage()
    required_scopes = ("categories.read", "categories.stats.read")
    names_from = Categories
    name_field = "category"
    names_param = "categories"


class MailboxProviderStats(StatsStream):
    """Daily counters per recipient mailbox provider (Gmail, Yahoo, …)."""

    path_template = "/v3/mailbox_providers/stats"
    pager = OffsetPager(limit=500)
    required_scopes = ("mailbox_providers.stats.read",)


class BrowserStats(StatsStream):
    """Daily clicks per browser."""

    path_template = "/v3/browsers/stats"
    pager = OffsetPager(limit=500)
    required_scopes = ("browsers.stats.read",)


class DeviceStats(StatsStream):
    """Daily opens per device type."""

    path_template = "/v3/devices/stats"
    pager = OffsetPager(limit=500)
    required_scopes = ("devices.stats.read",)


class ClientStats(StatsStream):
    """Daily opens per email client type (`/v3/clients/stats`; the spec gives it no paging)."""

    path_template = "/v3/clients/stats"
    pager = SinglePage()
    required_scopes = ("clients.stats.read",)


class GeoStats(StatsStream):
    """Daily opens and clicks per US state and Canadian province. Served from the US region only."""

    path_template = "/v3/geo/stats"
    pager = OffsetPager(limit=500)
    required_scopes = ("geo.stats.read",)
    us_only = True
