"""Marketing Campaigns (current API): lists, segments 2.0, single sends, campaigns, their stats and link
clicks, automation stats and link clicks, field definitions and marketing senders. Contacts and memberships come from the export job
(`contacts_export.py`).

The spec serves these endpoints from the US host only and declares `on-behalf-of` only on the senders.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .. import cdk_seam
from ..base import SendgridStream
from ..incremental import ClientFilteredStream
from ..substreams import SendgridSubStream
from ..errors import response_body
from ..not_found import request_path
from ..pagination import PageTokenPager
from ..windows import normalize_time


class MarketingStream(SendgridStream):
    """A `/v3/marketing/*` endpoint: US-only, no `on-behalf-of`, scope `marketing.read`."""

    us_only = True
    accepts_subuser = False
    required_scopes = ("marketing.read",)
    time_fields: tuple = ()

    def _records_of(self, response: requests.Response) -> List[Any]:
        # The spec and the live API disagree on some envelopes (docs/endpoints.md#envelopes-that-differ): accept a bare list too.
        body = response_body(response)
        if isinstance(body, list):
            return body
        return super()._records_of(response)

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        # A record's own `_metadata` (a list's `self` link) is part of what SendGrid sends: it is kept.
        shaped = dict(record)
        for name in self.time_fields:
            if name in shaped:
                shaped[name] = normalize_time(shaped[name])
        return shaped


class Lists(MarketingStream):
    """Contact lists with their member counts (`contact_count`)."""

    path_template = "/v3/marketing/lists"
    records_key = ("result",)
    pager = PageTokenPager(page_size=1000)


class Segments(MarketingStream, ClientFilteredStream):
    """Segments of the 2.0 API. The spec describes one segment object; SendGrid sends `{"results": [...]}`
    (docs/endpoints.md#segment-list-envelope): both are read."""

    path_template = "/v3/marketing/segments/2.0"
    records_key = ("results", "result")
    cursor_field = "updated_at"
    time_fields = ("created_at", "updated_at", "sample_updated_at", "next_sample_update")

    def _records_of(self, response: requests.Response) -> List[Any]:
        body = response_body(response)
        if isinstance(body, Mapping) and "id" in body and not any(key in body for key in self.records_key):
            return [body]
        return super()._records_of(response)


class Singlesends(MarketingStream, ClientFilteredStream):
    """Single sends. The list lacks `send_to`, `email_config` and `warnings`, so each emitted single send is
    completed from `/v3/marketing/singlesends/{id}` (only the ones an incremental sync emits)."""

    path_template = "/v3/marketing/singlesends"
    records_key = ("result",)
    pager = PageTokenPager(page_size=100)
    cursor_field = "updated_at"
    time_fields = ("created_at", "updated_at", "send_at")

    def is_harmless_not_found(self, request: requests.PreparedRequest) -> bool:
        # A single send deleted between the list and its detail call answers 404: keep the list's record.
        # A 404 on the list itself is no empty account: it fails the stream.
        return not request_path(request).endswith(self.path_template)

    def parse_response(self, response: requests.Response, **kwargs: Any) -> Iterable[Mapping[str, Any]]:
        return [self._with_detail(record) for record in super().parse_response(response, **kwargs)]

    def _with_detail(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        _, response = cdk_seam.http_client(self).send_request(
            "GET", f"{self.url_base}{self.path_template}/{record['id']}", request_kwargs=self.request_kwargs(),
            headers=self.request_headers(),
        )
        if response.status_code >= 400:
            return record  # deleted (404) or refused after the list was read: keep what the list said
        detail = response_body(response)
        if not isinstance(detail, Mapping):
            raise AirbyteTracedException(
                message=f"SendGrid sent an unexpected body for single send {record['id']}.",
                failure_type=FailureType.system_error,
            )
        return {**record, **self.transform(detail, {})}


class Campaigns(MarketingStream):
    """The account's campaigns as one short row each (`status`, `channels`, `is_abtest`); in a live capture
    they are its single sends, under the same ids. SendGrid's published API does not describe this
    endpoint, so its shape comes from that capture (docs/sendgrid-behaviour.md), and a 404 (the endpoint
    withdrawn) skips the stream with a warning, as a key without the scope (403) does."""

    path_template = "/v3/marketing/campaigns"
    records_key = ("result",)
    pager = PageTokenPager(page_size=100)
    time_fields = ("created_at", "updated_at")
    not_found_is_empty = True

    def _note_unreadable(self, response: requests.Response) -> None:
        if response.status_code == 404:
            self._skip("SendGrid answered 404 to /v3/marketing/campaigns, an endpoint its published API does not "
                       "describe; it may be gone, or the account may not have Marketing Campaigns")
            return
        super()._note_unreadable(response)


class MarketingStats(MarketingStream):
    """Lifetime totals per row; one id has several rows (A/B variation and phase, or automation step)."""

    records_key = ("results",)
    pager = PageTokenPager(page_size=50)


class SinglesendStats(MarketingStats):
    path_template = "/v3/marketing/stats/singlesends"
    primary_key = ["id", "ab_variation", "ab_phase", "aggregation"]

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        # The spec does not require `aggregation` here and documents "total" as its default; it is part of the key.
        shaped = super().transform(record, stream_slice)
        return shaped if shaped.get("aggregation") is not None else {**shaped, "aggregation": "total"}


class StatsAutomations(MarketingStats):
    path_template = "/v3/marketing/stats/automations"
    primary_key = ["id", "step_id", "aggregation"]
    required_scopes = ("marketing.automation.read",)


class MarketingLinkStats(SendgridSubStream, MarketingStream):
    """Lifetime clicks per link of one single send or automation, read for each id its stats endpoint lists:
    those are the ones that can have clicks (the single send list also holds drafts, and costs a detail call
    per single send). The default view sums A/B variations and phases (or automation steps) into `"all"`.
    A link's place in the message (`url_location`, topmost 0) is part of the key: the same URL at two places
    is two rows."""

    records_key = ("results",)
    pager = PageTokenPager(page_size=50)


class SinglesendLinkStats(MarketingLinkStats):
    path_template = "/v3/marketing/stats/singlesends/{singlesend_id}/links"
    parent = SinglesendStats
    parent_keys = {"id": "singlesend_id"}
    primary_key = ["singlesend_id", "url", "url_location", "ab_variation", "ab_phase"]


class AutomationLinkStats(MarketingLinkStats):
    path_template = "/v3/marketing/stats/automations/{automation_id}/links"
    parent = StatsAutomations
    parent_keys = {"id": "automation_id"}
    primary_key = ["automation_id", "step_id", "url", "url_location"]
    required_scopes = ("marketing.automation.read",)


class FieldDefinitions(MarketingStream):
    """Custom and reserved contact fields in one stream; `reserved` tells them apart."""

    path_template = "/v3/marketing/field_definitions"

    def _records_of(self, response: requests.Response) -> List[Any]:
        body = response_body(response) or {}
        custom = [{**field, "reserved": False} for field in body.get("custom_fields") or []]
        reserved = [{**field, "reserved": True} for field in body.get("reserved_fields") or []]
        return custom + reserved


class MarketingSenders(MarketingStream):
    """Senders of Marketing Campaigns; unlike the rest of the family the spec declares `on-behalf-of`."""

    path_template = "/v3/marketing/senders"
    records_key = ("results", "result")
    accepts_subuser = True
    time_fields = ("created_at", "updated_at")

