"""What a real SendGrid account answers, where it differs from what 0.2.2 assumed: advanced statistics asked
for over the whole range, the undocumented `/v3/marketing/campaigns`, 404s on list endpoints, and the
`_metadata.self` link every list carries (docs/sendgrid-behaviour.md)."""

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from source_sendgrid import SourceSendgrid
from unit_tests.builders import (
    ALL_SCOPES,
    ended_with_nothing_readable,
    BASE,
    api_request,
    config,
    error_response,
    json_response,
    records,
    run_read,
    scopes_request,
    scopes_response,
)

# Two campaigns as SendGrid answers them (the fields and formats of a live capture).
CAMPAIGN_SENT = {"created_at": "2021-09-08T09:07:48Z", "id": "3c5a9fa6-1084-11ec-ac32-4228d699bad5",
                 "name": "Untitled Single Send", "status": "triggered", "updated_at": "2021-09-08T09:11:08Z",
                 "is_abtest": False, "channels": ["email"]}
CAMPAIGN_DRAFT = {"created_at": "2021-02-01T12:13:02Z", "id": "d497b877-6486-11eb-be53-b2a243c7228c",
                  "name": "Campaign 18", "status": "draft", "updated_at": "2021-02-01T12:13:02Z",
                  "is_abtest": False, "channels": ["email"]}


def warnings_of(output):
    return [log.log.message for log in output.logs if log.log.level.value == "WARN"]


# --- advanced statistics -------------------------------------------------------------------------

def test_given_an_old_start_date_when_device_stats_are_read_then_every_day_since_the_start_is_asked_for():
    # The spec's "we only store up to 7 days" is not taken at its word: older days SendGrid holds are read too.
    query = {"aggregated_by": "day", "start_date": "2020-01-01", "end_date": "2024-03-01", "limit": 500, "offset": 0}
    body = [{"date": "2023-06-01", "stats": [{"type": "device", "name": "Desktop", "metrics": {"opens": 2, "unique_opens": 1}}]},
            {"date": "2024-02-29", "stats": [{"type": "device", "name": "Phone", "metrics": {"opens": 4, "unique_opens": 3}}]}]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/devices/stats", query), json_response(body))
        output = run_read(config(start_date="2020-01-01T00:00:00Z"), "device_stats")
    assert not output.errors
    assert records(output) == [{"date": "2023-06-01", "type": "device", "name": "Desktop", "opens": 2, "unique_opens": 1},
                               {"date": "2024-02-29", "type": "device", "name": "Phone", "opens": 4, "unique_opens": 3}]


# --- campaigns -----------------------------------------------------------------------------------

def test_campaigns_are_discovered_as_a_full_refresh_stream_keyed_by_id():
    streams = {s.name: s for s in discover(SourceSendgrid(), config()).catalog.catalog.streams}
    campaigns = streams["campaigns"]
    assert campaigns.source_defined_primary_key == [["id"]]
    assert [mode.value for mode in campaigns.supported_sync_modes] == ["full_refresh"]
    assert set(campaigns.json_schema["properties"]) == {"id", "name", "status", "channels", "is_abtest", "created_at", "updated_at"}
    assert campaigns.json_schema["properties"]["created_at"]["format"] == "date-time"


def test_given_two_pages_of_campaigns_when_read_then_the_next_link_is_followed_and_records_are_as_sent():
    next_link = f"{BASE}/v3/marketing/campaigns?page_size=100&page_token=tok2"
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/campaigns", {"page_size": 100}),
                 json_response({"result": [CAMPAIGN_SENT], "_metadata": {"self": "x", "next": next_link, "count": 2}}))
        http.get(api_request("/v3/marketing/campaigns", {"page_size": 100, "page_token": "tok2"}),
                 json_response({"result": [CAMPAIGN_DRAFT], "_metadata": {"self": "y", "count": 2}}))
        output = run_read(config(), "campaigns")
    assert not output.errors
    assert records(output) == [CAMPAIGN_SENT, CAMPAIGN_DRAFT]


def test_given_a_key_without_marketing_read_when_read_then_campaigns_are_skipped_with_a_warning_without_a_request():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response([s for s in ALL_SCOPES if s != "marketing.read"]))
        output = run_read(config(), "campaigns")
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream campaigns: the API key lacks the scope marketing.read")


def test_given_campaigns_answer_403_when_read_then_the_stream_is_skipped_with_a_warning():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/campaigns", {"page_size": 100}), error_response(403, "access forbidden"))
        output = run_read(config(), "campaigns")
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert any("Skipping stream campaigns: SendGrid answered 403" in w for w in warnings_of(output))


def test_given_campaigns_answer_404_when_read_then_the_stream_is_skipped_with_a_warning_naming_the_endpoint():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/campaigns", {"page_size": 100}), error_response(404, "resource not found"))
        output = run_read(config(), "campaigns")
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert any("Skipping stream campaigns: SendGrid answered 404 to /v3/marketing/campaigns" in w for w in warnings_of(output))


# --- a 404 on a list endpoint --------------------------------------------------------------------

def test_a_404_on_a_single_sends_detail_keeps_the_list_record_but_a_404_on_the_list_fails_the_stream():
    short = {"id": "gone", "name": "Deleted since", "updated_at": "2024-02-10T00:00:00Z"}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/singlesends", {"page_size": 100}), json_response({"result": [short], "_metadata": {}}))
        http.get(HttpRequest(f"{BASE}/v3/marketing/singlesends/gone"), error_response(404, "not found"))
        detail_gone = run_read(config(), "singlesends")
    assert not detail_gone.errors and records(detail_gone) == [short]

    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/singlesends", {"page_size": 100}), error_response(404, "resource not found"))
        list_gone = run_read(config(), "singlesends", expecting_exception=True)
    assert records(list_gone) == []
    message = list_gone.errors[0].trace.error.message
    assert "SendGrid answered 404" in message and "singlesends" in message and "resource not found" in message


def test_given_legacy_recipients_answer_404_on_the_first_page_when_read_then_the_stream_fails_instead_of_emitting_nothing():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/contactdb/recipients", {"page": 1, "page_size": 1000}), error_response(404, "resource not found"))
        output = run_read(config(), "legacy_contacts", SyncMode.incremental, expecting_exception=True)
    assert records(output) == []
    assert "SendGrid answered 404" in output.errors[0].trace.error.message


# --- lists keep their _metadata -------------------------------------------------------------------

def test_given_lists_with_their_self_link_when_read_then_every_record_keeps_metadata_self_as_declared():
    listed = [{"name": "Test List: 19", "id": "0236d6d2-75d2-42c5-962d-603e0deaf8d1", "contact_count": 20,
               "_metadata": {"self": f"{BASE}/v3/marketing/lists/0236d6d2-75d2-42c5-962d-603e0deaf8d1"}}]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/lists", {"page_size": 1000}), json_response({"result": listed, "_metadata": {"self": "x"}}))
        output = run_read(config(), "lists")
    assert records(output) == listed
    schema = {s.name: s for s in discover(SourceSendgrid(), config()).catalog.catalog.streams}["lists"].json_schema
    assert schema["properties"]["_metadata"]["properties"]["self"]["type"] == ["null", "string"]
