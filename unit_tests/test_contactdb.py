"""Legacy Marketing Campaigns streams: page-number paging to the 404, members of each parent, record
shapes, regions and accounts without the product."""

import re

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from unit_tests.builders import (
    BASE,
    api_request,
    config,
    ended_with_nothing_readable,
    error_response,
    json_response,
    records,
    run_read,
    scopes_request,
    scopes_response,
    state,
)

EU = "https://api.eu.sendgrid.com"


def recipient(n, updated_at=1709000000, **extra):
    return {"id": f"r{n}", "email": f"r{n}@example.com", "first_name": None, "last_name": "Jones",
            "created_at": 1422313607, "updated_at": updated_at, "last_clicked": None, "last_emailed": 1438613272,
            "last_opened": None, "custom_fields": [], **extra}


def recipients_page(path, page, page_size=1000):
    return api_request(path, {"page": page, "page_size": page_size})


def test_given_an_empty_page_before_the_end_when_read_then_paging_goes_on_until_the_404():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        path = "/v3/contactdb/recipients"
        http.get(recipients_page(path, 1), json_response({"recipients": [recipient(1), recipient(2)]}))
        http.get(recipients_page(path, 2), json_response({"recipients": []}))  # a batch delete emptied it
        http.get(recipients_page(path, 3), json_response({"recipients": [recipient(3)]}))
        http.get(recipients_page(path, 4), error_response(404, "No more pages"))
        output = run_read(config(), "legacy_contacts")
    assert [r["id"] for r in records(output)] == ["r1", "r2", "r3"]
    assert not output.errors


def test_given_epoch_times_and_typed_custom_fields_when_read_then_times_are_rfc3339_and_values_text():
    fields = [
        {"id": 1, "name": "birthday", "type": "date", "value": 1422313607},
        {"id": 2, "name": "age", "type": "number", "value": 25.0},
        {"id": 3, "name": "score", "type": "number", "value": 60.5},
        {"id": 4, "name": "pet", "type": "text", "value": "Indiana"},
        {"id": 5, "name": "city", "type": "text", "value": None},
    ]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(recipients_page("/v3/contactdb/recipients", 1), json_response({"recipients": [recipient(1, custom_fields=fields)]}))
        http.get(recipients_page("/v3/contactdb/recipients", 2), error_response(404, "No more pages"))
        output = run_read(config(), "legacy_contacts")
    record = records(output)[0]
    assert record["created_at"] == "2015-01-26T23:06:47Z"
    assert record["last_emailed"] == "2015-08-03T14:47:52Z"
    assert "last_clicked" not in record  # null top-level fields are left out of records by the protocol
    assert [f["value"] for f in record["custom_fields"]] == ["2015-01-26T23:06:47Z", "25", "60.5", "Indiana", None]


def test_given_a_state_when_contacts_are_read_incrementally_then_only_newer_recipients_are_emitted():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        page = [recipient(1, updated_at=1700000000), recipient(2, updated_at=1709000000)]
        http.get(recipients_page("/v3/contactdb/recipients", 1), json_response({"recipients": page}))
        http.get(recipients_page("/v3/contactdb/recipients", 2), error_response(404, "No more pages"))
        output = run_read(config(), "legacy_contacts", SyncMode.incremental,
                          state("legacy_contacts", {"updated_at": "2024-01-01T00:00:00Z"}))
    assert [r["id"] for r in records(output)] == ["r2"]
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"updated_at": "2024-02-27T02:13:20Z"}


def test_given_two_lists_and_one_deleted_mid_sync_when_members_are_read_then_the_other_list_is_read_whole():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        lists = [{"id": 7, "name": "gone", "recipient_count": 1}, {"id": 8, "name": "kept", "recipient_count": 2}]
        http.get(api_request("/v3/contactdb/lists", {}), json_response({"lists": lists}))
        http.get(recipients_page("/v3/contactdb/lists/7/recipients", 1), error_response(404, "Returned if list_id is invalid"))
        http.get(recipients_page("/v3/contactdb/lists/8/recipients", 1), json_response({"recipients": [recipient(1)]}))
        http.get(recipients_page("/v3/contactdb/lists/8/recipients", 2), json_response({"recipients": [recipient(2)]}))
        http.get(recipients_page("/v3/contactdb/lists/8/recipients", 3), error_response(404, "No more pages"))
        output = run_read(config(), "legacy_list_members")
    assert [(r["list_id"], r["id"]) for r in records(output)] == [(8, "r1"), (8, "r2")]
    assert not output.errors


def test_given_segments_when_members_are_read_then_each_record_carries_its_segment_id():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        segments = [{"id": 5, "name": "s", "conditions": [], "recipient_count": 1}]
        http.get(api_request("/v3/contactdb/segments", {}), json_response({"segments": segments}))
        http.get(recipients_page("/v3/contactdb/segments/5/recipients", 1), json_response({"recipients": [recipient(1)]}))
        http.get(recipients_page("/v3/contactdb/segments/5/recipients", 2), error_response(404, "No more pages"))
        output = run_read(config(), "legacy_segment_members")
    assert [(r["segment_id"], r["id"]) for r in records(output)] == [(5, "r1")]


def test_given_more_campaigns_than_the_default_page_when_read_then_every_page_is_requested():
    def campaign(n):
        return {"id": n, "title": f"t{n}", "status": "Sent"}

    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        for offset, count in ((0, 100), (100, 100), (200, 7)):
            http.get(api_request("/v3/campaigns", {"limit": 100, "offset": offset}),
                     json_response({"result": [campaign(offset + i) for i in range(count)]}))
        output = run_read(config(), "legacy_campaigns")
    assert len(records(output)) == 207


def test_given_an_account_without_legacy_marketing_campaigns_when_read_then_the_stream_is_skipped():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(recipients_page("/v3/contactdb/recipients", 1), error_response(403, "access forbidden"))
        output = run_read(config(), "legacy_contacts", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream legacy_contacts: SendGrid answered 403")


def test_given_a_missing_parent_scope_when_members_are_read_then_the_stream_is_skipped_before_any_request():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["templates.read"]))
        output = run_read(config(), "legacy_list_members", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream legacy_list_members: the API key lacks the scope marketing_campaigns.read")


def test_given_the_eu_region_when_legacy_streams_are_read_then_they_are_skipped_without_calling_any_host():
    for stream in ("legacy_contacts", "legacy_list_members", "legacy_campaigns", "legacy_senders"):
        with HttpMocker() as http:
            # Only /v3/scopes on the EU host is mocked: any call to either host's legacy endpoint would fail the read.
            http.get(scopes_request(EU), scopes_response())
            output = run_read(config(region="eu"), stream, expecting_exception=True)
        assert records(output) == [] and ended_with_nothing_readable(output), stream
        assert output.is_in_logs(re.escape(f"Skipping stream {stream}: SendGrid serves this endpoint only from the global (US) region")), stream


def test_given_a_subuser_when_legacy_lists_are_read_then_on_behalf_of_is_sent():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        request = HttpRequest(url=f"{BASE}/v3/contactdb/lists", headers={"on-behalf-of": "shop-us"})
        http.get(request, json_response({"lists": [{"id": 1, "name": "the jones", "recipient_count": 1}]}))
        output = run_read(config(subuser="shop-us"), "legacy_lists")
    assert records(output) == [{"id": 1, "name": "the jones", "recipient_count": 1}]
