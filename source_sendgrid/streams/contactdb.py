"""Legacy Marketing Campaigns (`/v3/contactdb/*`, `/v3/campaigns`): accounts that never moved to the new
Marketing Campaigns still keep their recipients, lists, segments and campaigns here.

SendGrid serves these endpoints only from the US host, and an account without legacy Marketing Campaigns
answers 403: both skip the stream with a warning. Recipient pages can come back empty before the end
(after batch deletes), so paging ends only on a 404.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import requests

from ..base import SendgridStream
from ..incremental import ClientFilteredStream
from ..substreams import SendgridSubStream
from ..not_found import request_page
from ..pagination import OffsetPager, PageNumberPager
from ..windows import normalize_time

LEGACY_SCOPE = "marketing_campaigns.read"


def recipient_record(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Every custom field value becomes text (see the schema's description). The epoch times need nothing
    here: the schema declares them date-time, and fitting a record to its schema writes them as RFC 3339."""
    fields = record.get("custom_fields")
    if type(fields) is not list:
        return record
    return {**record, "custom_fields": [_custom_field(field) for field in fields]}


def _custom_field(field: Any) -> Any:
    if type(field) is not dict:
        return field
    value = field.get("value")
    text = _custom_field_text(field.get("type"), value)
    return field if text is value else {**field, "value": text}


def _custom_field_text(kind: Optional[str], value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if kind == "date":
        return normalize_time(value)
    if type(value) is str:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class LegacyStream(SendgridStream):
    """Declarations every legacy Marketing Campaigns endpoint shares (docs/endpoints.md#hosts, #legacy-marketing-campaigns)."""

    required_scopes = (LEGACY_SCOPE,)
    us_only = True


class LegacyContacts(LegacyStream, ClientFilteredStream):
    """Every recipient of the legacy contact database; incremental on `updated_at`, filtered client-side
    because the endpoint has no time filter. Deleted recipients disappear only in a full refresh."""

    path_template = "/v3/contactdb/recipients"
    records_key = ("recipients",)
    pager = PageNumberPager(page_size=1000)
    cursor_field = "updated_at"

    def is_harmless_not_found(self, request: requests.PreparedRequest) -> bool:
        # A 404 past the first page is the end of the list. On the first page it cannot be told from an
        # endpoint that is gone, so the stream fails rather than emit nothing with success.
        return request_page(request) > 1

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return recipient_record(record)


class LegacyLists(LegacyStream):
    path_template = "/v3/contactdb/lists"
    records_key = ("lists",)


class LegacySegments(LegacyStream):
    path_template = "/v3/contactdb/segments"
    records_key = ("segments",)


class LegacyMembers(LegacyStream, SendgridSubStream):
    """Recipients of one list or segment, page by page until a 404; each record carries its parent's id."""

    records_key = ("recipients",)
    pager = PageNumberPager(page_size=1000)

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return recipient_record(record)


class LegacyListMembers(LegacyMembers):
    parent = LegacyLists
    parent_keys = {"id": "list_id"}
    path_template = "/v3/contactdb/lists/{list_id}/recipients"
    primary_key = ["list_id", "id"]


class LegacySegmentMembers(LegacyMembers):
    parent = LegacySegments
    parent_keys = {"id": "segment_id"}
    path_template = "/v3/contactdb/segments/{segment_id}/recipients"
    primary_key = ["segment_id", "id"]


class LegacyCustomFields(LegacyStream):
    """Definitions of the account's custom fields (id, name, type)."""

    path_template = "/v3/contactdb/custom_fields"
    records_key = ("custom_fields",)


class LegacyReservedFields(LegacyStream):
    """The field names SendGrid reserves; they have no id."""

    path_template = "/v3/contactdb/reserved_fields"
    records_key = ("reserved_fields",)
    primary_key = "name"


class LegacyCampaigns(LegacyStream):
    """Legacy campaigns, newest first. The API returns 10 per page unless asked: page with `limit`/`offset`."""

    path_template = "/v3/campaigns"
    records_key = ("result",)
    pager = OffsetPager(limit=100)
