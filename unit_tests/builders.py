"""Shared builders for unit tests: config, catalog, requests and responses per endpoint."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpRequest, HttpResponse
from airbyte_cdk.test.mock_http.request import ANY_QUERY_PARAMS
from airbyte_cdk.test.state_builder import StateBuilder

from source_sendgrid import SourceSendgrid

API_KEY = "SG.unit-test-secret-key-1234567890"
BASE = "https://api.sendgrid.com"
ALL_SCOPES = [
    "suppression.bounces.read", "suppression.blocks.read", "suppression.spam_reports.read",
    "suppression.invalid_emails.read", "suppression.unsubscribes.read", "asm.groups.read",
    "asm.groups.suppressions.read",
    "marketing_campaigns.read", "templates.read", "templates.versions.read", "subusers.read",
    "stats.global.read", "categories.read", "categories.stats.read", "mailbox_providers.stats.read",
    "browsers.stats.read", "devices.stats.read", "clients.stats.read", "geo.stats.read", "messages.read",
    "marketing.read", "marketing.automation.read",
]


def config(**overrides: Any) -> Dict[str, Any]:
    return {"api_key": API_KEY, "start_date": "2024-01-01T00:00:00Z", "window_days": 3650, "lookback_days": 0, **overrides}


def catalog(stream: str, sync_mode: SyncMode = SyncMode.full_refresh):
    return CatalogBuilder().with_stream(stream, sync_mode).build()


def state(stream: str, value: Mapping[str, Any]) -> list:
    return StateBuilder().with_stream_state(stream, dict(value)).build()


def run_read(cfg: Mapping[str, Any], stream: str, sync_mode: SyncMode = SyncMode.full_refresh,
             stream_state: Optional[list] = None, expecting_exception: bool = False) -> EntrypointOutput:
    return read(SourceSendgrid(), dict(cfg), catalog(stream, sync_mode), state=stream_state,
                expecting_exception=expecting_exception)


def api_request(path: str, query: Optional[Mapping[str, Any]] = None, base: str = BASE) -> HttpRequest:
    return HttpRequest(url=f"{base}{path}", query_params=dict(query) if query is not None else ANY_QUERY_PARAMS)


def json_response(body: Any, status: int = 200, headers: Optional[Mapping[str, str]] = None) -> HttpResponse:
    return HttpResponse(body=json.dumps(body), status_code=status, headers=dict(headers or {}))


def error_response(status: int, message: str, headers: Optional[Mapping[str, str]] = None) -> HttpResponse:
    return json_response({"errors": [{"field": None, "message": message}]}, status, headers)


def scopes_request(base: str = BASE) -> HttpRequest:
    return HttpRequest(url=f"{base}/v3/scopes")


def scopes_response(scopes: Iterable[str] = ALL_SCOPES) -> HttpResponse:
    return json_response({"scopes": list(scopes)})


def records(output: EntrypointOutput) -> List[Dict[str, Any]]:
    return [message.record.data for message in output.records]


def ended_with_nothing_readable(output: EntrypointOutput) -> bool:
    """The read's one error is the config error of a sync whose every selected stream was skipped."""
    return len(output.errors) == 1 and output.errors[0].trace.error.message.startswith(
        "None of the selected streams could be read")


def all_output_text(output: EntrypointOutput) -> str:
    """Every message and stderr line the connector produced, as text (for secret-leak checks)."""
    from airbyte_cdk.models import AirbyteMessageSerializer

    lines = [json.dumps(AirbyteMessageSerializer.dump(m)) for m in output.get_message_iterator()]
    return "\n".join(lines) + "\n" + str(output.stderr or "")
