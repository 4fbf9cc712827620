"""What a parent account's subusers sent: daily and monthly counters per subuser, and each subuser's sender
reputation.

Only parent accounts have subusers: for any other account SendGrid answers 403 and these streams are
skipped with a warning, as `subusers` is. The subuser names come from `/v3/subusers`, read once per stream
and sync. Like every stats stream, incremental syncs re-read the trailing days (and here the month that
holds them), whose counters late events still change: dedupe on the primary key, the last row wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable, List, Mapping, Optional

from airbyte_cdk.models import SyncMode

from ..base import SendgridStream
from ..incremental import CLOSES_READ, CheckpointsAfterRecords
from ..pagination import OffsetPager, SinglePage
from ..windows import parse_time, utc_now
from .account import Subusers
from .stats import STATS_MIN_LOOKBACK_DAYS, NamedInRequests, StatsByName


class SubuserStats(StatsByName):
    """Daily counters per subuser (`/v3/subusers/stats`), which needs the subusers named, 10 per request."""

    path_template = "/v3/subusers/stats"
    primary_key = ["date", "name"]
    pager = OffsetPager(limit=500)
    required_scopes = ("subusers.read", "subusers.stats.read")
    accepts_subuser = False
    names_from = Subusers
    name_field = "username"
    names_param = "subusers"


class SubuserMonthlyStats(CheckpointsAfterRecords, SendgridStream):
    """Counters per subuser and calendar month (`/v3/subusers/stats/monthly`), one month a request, every
    subuser in it; `date` is the month's first day. The state is the first day of the last month read, and
    an incremental sync reads that month again, as it may have been read before it ended.

    SendGrid documents no largest page here (the default is 5), so pages go on until one comes back empty:
    a page cut shorter than asked cannot end the month early.
    """

    path_template = "/v3/subusers/stats/monthly"
    records_key = ("stats",)
    primary_key = ["date", "name"]
    cursor_field = "date"
    pager = OffsetPager(limit=500, ends_on_short_page=False)
    required_scopes = ("subusers.stats.monthly.read",)
    accepts_subuser = False

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        now = utc_now()
        month = _month_of(self._config.start_date)
        cursor = self._state_cursor() if sync_mode == SyncMode.incremental else None
        if cursor is not None and cursor >= now:
            return  # nothing newer than the state can exist yet; the state stays as it is
        if cursor is not None:
            trailing = min(cursor, now - timedelta(days=STATS_MIN_LOOKBACK_DAYS)) - self._config.lookback
            month = max(month, _month_of(trailing))
        while month <= now:
            following = _next_month(month)
            yield {"month": month.strftime("%Y-%m-%d"), **({CLOSES_READ: True} if following > now else {})}
            month = following

    def slice_params(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"date": stream_slice["month"]}

    def slice_fields(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"date": stream_slice.get("month")}

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        metrics = record.get("metrics") if isinstance(record.get("metrics"), Mapping) else {}
        names = {key: record.get(key) for key in ("name", "first_name", "last_name") if key in record}
        return {**names, **metrics}

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        if not self.may_checkpoint(stream_slice):
            return
        self.advance_state_to(parse_time(stream_slice["month"]))


class SubuserReputations(NamedInRequests):
    """Each subuser's sender reputation now (`/v3/subusers/reputations`), asked for 10 `usernames` at a time.
    A reputation has no date: every sync reads them all."""

    path_template = "/v3/subusers/reputations"
    primary_key = "username"
    pager = SinglePage()
    required_scopes = ("subusers.read", "subusers.reputations.read")
    accepts_subuser = False
    names_from = Subusers
    name_field = "username"
    names_param = "usernames"


def _month_of(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)
