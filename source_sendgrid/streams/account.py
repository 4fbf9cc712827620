"""Who may send and who shares the account: verified senders, legacy sender identities and subusers."""

from __future__ import annotations

from typing import Any, Mapping

from ..base import SendgridStream
from ..incremental import ClientFilteredStream
from ..pagination import KeysetPager, OffsetPager
from ..windows import normalize_time


class VerifiedSenders(SendgridStream):
    """Single-sender identities, verified or not, read in id order after `lastSeenID`.

    The spec declares no `on-behalf-of` here and SendGrid documents no dedicated read scope for it, so the
    stream is tried with any key and skipped if SendGrid answers 403.
    """

    path_template = "/v3/verified_senders"
    records_key = ("results",)
    pager = KeysetPager(limit=100, key_param="lastSeenID", key_from_last_record="id")
    accepts_subuser = False


class LegacySenders(ClientFilteredStream):
    """Sender identities of legacy Marketing Campaigns (`/v3/senders`, US only); incremental on
    `updated_at`, filtered client-side."""

    path_template = "/v3/senders"
    records_key = ("result",)
    required_scopes = ("marketing_campaigns.read",)
    us_only = True
    cursor_field = "updated_at"

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**record, **{field: normalize_time(record.get(field)) for field in ("created_at", "updated_at") if field in record}}


class Subusers(SendgridStream):
    """The subusers of a parent account, with their region. Other accounts answer 403: skipped, not failed."""

    path_template = "/v3/subusers"
    pager = OffsetPager(limit=100)
    static_params = {"include_region": "true"}
    required_scopes = ("subusers.read",)
    accepts_subuser = False
