"""Marketing Campaigns (current API): lists, segments 2.0, single sends, their stats, automation stats,
field definitions and marketing senders. Contacts and memberships come from the export job
(`contacts_export.py`).

The spec serves these endpoints from the US host only and declares `on-behalf-of` only on the senders.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .. import cdk_seam
from ..base import ClientFilteredStream, SendgridStream
from ..errors import response_body
from ..pagination import PageTokenPager
from ..windows import normalize_time


class MarketingStream(SendgridStream):
    """A `/v3/marketing/*` endpoint: US-only, no `on-behalf-of`, scope `marketing.read`."""

    us_only = True
    accepts_subuser = False
    required_scopes = ("marketing.read",)
    time_fields: tuple = ()

    def _records_of(self, response: requests.Response) -> List[Any]:
        # The spec and the live API disagree on some envelopes (ENDPOINTS.md §11): accept a bare list too.
        body = response_body(response)
        if isinstance(body, list):
            return body
        return super()._records_of(response)

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        shaped = {key: value for key, value in record.items() if key != "_metadata"}
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
    (ENDPOINTS.md §11.1): both are read."""

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
    # A single send deleted between the list and its detail call answers 404: keep the list's record.
    not_found_is_empty = True

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


class MarketingStats(MarketingStream):
    """Lifetime totals per row; one id has several rows (A/B variation and phase, or automation step)."""

    records_key = ("results",)
    pager = PageTokenPager(page_size=50)


class SinglesendStats(MarketingStats):
    path_template = "/v3/marketing/stats/singlesends"
    primary_key = ["id", "ab_variation", "ab_phase", "aggregation"]


class StatsAutomations(MarketingStats):
    path_template = "/v3/marketing/stats/automations"
    primary_key = ["id", "step_id", "aggregation"]
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

