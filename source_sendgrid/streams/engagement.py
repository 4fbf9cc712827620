"""How wanted the account's mail is: SendGrid Engagement Quality (SEQ) scores, for the account and for each
subuser, and the daily totals of bounces by classification.

SEQ scores are daily, range from 1 to 5 and are kept 90 days. SendGrid computes them asynchronously and
answers 202 for days it has not computed yet: such a day is read again by the next sync, and the state
never moves past it. SendGrid documents no API key scope for SEQ, so those streams are tried with any key
and skipped, with a warning, if SendGrid answers 403.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import date, datetime, timedelta
from typing import Any, Iterable, List, Mapping, Optional

import requests
from airbyte_cdk.models import SyncMode

from ..incremental import WindowedStream
from ..errors import ScoresNotReadyErrorHandler, is_missing_scope
from ..pagination import KeysetPager, SinglePage
from .stats import STATS_MIN_LOOKBACK_DAYS, StatsStream

# SendGrid refuses a `from` or `date` "more than 90 days in the past" without saying how it counts them;
# 89 whole days back is inside any reading of it.
SEQ_DAYS_READ = 89
# A score's own fields: a metric of the same name never takes their place when metrics become columns.
SCORE_FIELDS = frozenset({"date", "user_id", "username", "score"})


def _days(first: str, last: str) -> List[str]:
    """Every day from `first` to `last` (inclusive), as YYYY-MM-DD."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


class EngagementScoresStream(WindowedStream):
    """A SEQ endpoint read by whole days of the last 90. Each score's `metrics` become columns next to the
    overall `score`; a day its user was not eligible for has neither.

    A day SendGrid answers without a score (202, or missing from the days asked for) is not computed yet: the
    state stops the day before the first such day of the sync, so the next sync asks for it again.
    """

    cursor_field = "date"
    records_key = ("result",)
    window_resolution = timedelta(days=1)
    retention = timedelta(days=SEQ_DAYS_READ)
    error_handler_class = ScoresNotReadyErrorHandler
    # The first day of this sync whose scores SendGrid had not computed yet (YYYY-MM-DD), once one was seen.
    _first_day_not_ready: Optional[str] = None

    def format_window_bound(self, moment: datetime) -> Any:
        return moment.strftime("%Y-%m-%d")

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        metrics = record.get("metrics")
        metrics = {k: v for k, v in metrics.items() if k not in SCORE_FIELDS} if isinstance(metrics, Mapping) else {}
        return {**metrics, **{k: v for k, v in record.items() if k != "metrics"}}

    def parse_response(
        self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any]]:
        records = super().parse_response(response, stream_slice=stream_slice, **kwargs)
        if response.status_code < 400:
            self._note_days_not_ready(self.days_not_ready(response, stream_slice or {}, records))
        return records

    @abstractmethod
    def days_not_ready(self, response: requests.Response, stream_slice: Mapping[str, Any],
                       records: List[Mapping[str, Any]]) -> List[str]:
        """The days of the slice SendGrid has no scores for yet, judging by this answer."""

    def _note_days_not_ready(self, days: List[str]) -> None:
        if not days or (self._first_day_not_ready is not None and min(days) >= self._first_day_not_ready):
            return
        self._first_day_not_ready = min(days)
        self.logger.info(f"Stream {self.name}: SendGrid has not computed the scores of {self._first_day_not_ready} yet; "
                         "this sync's state stays before that day, so the next sync reads it again.")

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        if self._first_day_not_ready is None:
            super().on_slice_read(stream_slice)
            return
        last_ready = (date.fromisoformat(self._first_day_not_ready) - timedelta(days=1)).isoformat()
        if last_ready >= stream_slice["window_start"]:
            super().on_slice_read({**stream_slice, "window_end": min(last_ready, stream_slice["window_end"])})

    def _note_unreadable(self, response: requests.Response) -> None:
        if is_missing_scope(response):
            self._skip(f"SendGrid answered {response.status_code} to {self.path_template}: SendGrid documents no scope "
                       "for Engagement Quality, so this key or account is not allowed to read it")


class EngagementQualityScores(EngagementScoresStream):
    """The account's daily SEQ score (`/v3/engagementquality/scores`, `from`/`to`). Recent days are read
    again on every incremental sync, in the same request as the new ones."""

    path_template = "/v3/engagementquality/scores"
    primary_key = "date"
    window_params = ("from", "to")
    pager = SinglePage()
    min_lookback = timedelta(days=STATS_MIN_LOOKBACK_DAYS)

    def days_not_ready(self, response: requests.Response, stream_slice: Mapping[str, Any],
                       records: List[Mapping[str, Any]]) -> List[str]:
        # A 200 holds "all available scores" of the range: a day it leaves out is not available yet.
        answered = {record.get("date") for record in records}
        return [day for day in _days(stream_slice["window_start"], stream_slice["window_end"]) if day not in answered]


class SubuserEngagementQualityScores(EngagementScoresStream):
    """Every subuser's SEQ score, one day per request (`/v3/engagementquality/subusers/scores`, keyset pages
    of up to 1000 subusers). Only parent accounts have subusers: other accounts are skipped with a warning."""

    path_template = "/v3/engagementquality/subusers/scores"
    primary_key = ["date", "user_id"]
    pager = KeysetPager(limit=1000)

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        for window in super().stream_slices(sync_mode, cursor_field, stream_state):
            for day in _days(window["window_start"], window["window_end"]):
                yield {"window_start": day, "window_end": day}

    def slice_params(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"date": stream_slice["window_start"]}

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        # The spec requires only `user_id` in a score: the day asked for is the day it is for.
        return {"date": stream_slice["window_start"], **super().transform(record, stream_slice)}

    def days_not_ready(self, response: requests.Response, stream_slice: Mapping[str, Any],
                       records: List[Mapping[str, Any]]) -> List[str]:
        # An empty 200 is a day without subusers; only a 202 says the day is not computed.
        return [stream_slice["window_start"]] if response.status_code == 202 else []

    def _note_unreadable(self, response: requests.Response) -> None:
        if is_missing_scope(response):
            self._skip(f"SendGrid answered {response.status_code} to {self.path_template}: only a parent account has "
                       "subusers' scores, and SendGrid documents no scope for them")


class BounceClassifications(StatsStream):
    """Daily bounce totals per classification (`/v3/suppression/bounces/classifications`): one row per
    (date, classification) with its `count`. Today's totals still grow, so recent days are read again like
    the other daily statistics. SendGrid documents no scope for it: skipped, with a warning, on 403."""

    path_template = "/v3/suppression/bounces/classifications"
    records_key = ("result",)
    primary_key = ["date", "classification"]
    pager = SinglePage()
    static_params: Mapping[str, Any] = {}

    def flatten(self, day: Any) -> List[Any]:
        # Entries are {classification, count}: the row is the entry and its day.
        if not isinstance(day, Mapping) or not isinstance(day.get("stats"), list):
            return [day] if not isinstance(day, Mapping) else []
        return [{**entry, "date": day.get("date")} if isinstance(entry, Mapping) else entry for entry in day["stats"]]
