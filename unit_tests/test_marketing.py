"""Marketing Campaigns streams: requests, page_token pagination, the contacts export's life, parsing, state."""

import gzip
import json

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse

from unit_tests.builders import (
    API_KEY,
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

EXPORT_ID = "0c7a6b9e-1111-4c1b-9d0e-7f0d5a1b2c3d"
FILE_URL = "https://sendgrid-exports.s3.amazonaws.com/contacts/part-0.csv.gz"
FILE_URL_2 = "https://sendgrid-exports.s3.amazonaws.com/contacts/part-1.csv.gz"
LIST_A = "11111111-aaaa-4aaa-8aaa-111111111111"
LIST_B = "22222222-bbbb-4bbb-8bbb-222222222222"
SEGMENT = "33333333-cccc-4ccc-8ccc-333333333333"
FIELDS = {
    "custom_fields": [
        {"id": "e1_N", "name": "num_orders", "field_type": "Number"},
        {"id": "e2_D", "name": "Birthday", "field_type": "Date"},
        {"id": "e3_T", "name": "tier", "field_type": "Text"},
    ],
    "reserved_fields": [{"id": "_rf0_T", "name": "first_name", "field_type": "Text", "read_only": False}],
}
CSV_HEADER = "EMAIL,FIRST_NAME,ALTERNATE_EMAILS,CREATED_AT,UPDATED_AT,CONTACT_ID,LIST_IDS,SEGMENT_IDS,NUM_ORDERS,Birthday,tier\n"


def csv_row(n, updated="2024-02-01T10:00:00Z", lists=LIST_A, orders="12"):
    return (f'c{n}@example.com,Ann,"a{n}@example.org,b{n}@example.org",2023-01-01T00:00:00.000Z,{updated},'
            f'id-{n},"{lists}",{SEGMENT},{orders},2024-05-06T00:00:00Z,"gold, plus"\n')


def export_file(*rows, header=CSV_HEADER, compress=True):
    payload = (header + "".join(rows)).encode()
    return gzip.compress(payload) if compress else payload


def binary(payload, status=200):
    return HttpResponse(body=payload, status_code=status)


def mock_export(http, files, statuses=("pending", "ready"), export_id=EXPORT_ID, urls=None):
    """The export API: a POST that starts the job and GETs that answer `statuses` in turn, then the files."""
    urls = urls or [FILE_URL, FILE_URL_2][: len(files)]
    http.post(HttpRequest(f"{BASE}/v3/marketing/contacts/exports", body={"file_type": "csv"}),
              json_response({"id": export_id, "_metadata": {}}, 202))
    polls = []
    for status in statuses:
        body = {"id": export_id, "status": status, "created_at": "x", "updated_at": "x", "expires_at": "x"}
        if status == "ready":
            body["urls"] = urls
        if status in ("failure", "failed"):
            body["message"] = "boom"
        polls.append(json_response(body))
    http.get(HttpRequest(f"{BASE}/v3/marketing/contacts/exports/{export_id}"), polls)
    for url, payload in zip(urls, files):
        http.get(HttpRequest(url), payload if isinstance(payload, (HttpResponse, list)) else binary(payload))


def mock_fields(http, body=FIELDS):
    http.get(HttpRequest(f"{BASE}/v3/marketing/field_definitions"), json_response(body))


def download_requests(http):
    return [r for r in http._mocker.request_history if "amazonaws" in r.url]


# --- lists, segments, single sends, stats, fields, senders --------------------------------------

def test_given_three_pages_when_lists_are_read_then_page_tokens_are_followed_from_metadata_next():
    def page(ids, next_token=None):
        metadata = {"self": "x"}
        if next_token:
            metadata["next"] = f"https://api.sendgrid.com/v3/marketing/lists?page_size=1000&page_token={next_token}"
        return json_response({"result": [{"id": i, "name": i, "contact_count": 1, "_metadata": {"self": "s"}} for i in ids],
                              "_metadata": metadata})

    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/lists", {"page_size": 1000}), page(["a", "b"], "t1"))
        http.get(api_request("/v3/marketing/lists", {"page_size": 1000, "page_token": "t1"}), page(["c"], "t2"))
        http.get(api_request("/v3/marketing/lists", {"page_size": 1000, "page_token": "t2"}), page(["d"]))
        output = run_read(config(), "lists")
    assert [r["id"] for r in records(output)] == ["a", "b", "c", "d"]


def test_given_a_server_that_repeats_a_page_token_when_read_then_the_sync_stops_with_a_clear_error():
    looping = json_response({"result": [{"id": "a"}], "_metadata": {"next": f"{BASE}/v3/marketing/singlesends?page_token=same"}})
    looping_b = json_response({"result": [{"id": "b"}], "_metadata": {"next": f"{BASE}/v3/marketing/singlesends?page_token=same"}})
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/stats/singlesends", {"page_size": 50}), looping)
        http.get(api_request("/v3/marketing/stats/singlesends", {"page_size": 50, "page_token": "same"}), looping_b)
        output = run_read(config(), "singlesend_stats", expecting_exception=True)
    assert any("back to a page it had already read" in e.trace.error.message for e in output.errors)


@pytest.mark.parametrize("body", [
    {"results": [{"id": "s1", "name": "VIP", "updated_at": "2024-02-01T00:00:00.123Z", "contacts_count": 3}], "_metadata": {}},
    # The spec's schema: one segment object (docs/endpoints.md#segment-list-envelope).
    {"id": "s1", "name": "VIP", "updated_at": "2024-02-01T00:00:00.123Z", "contacts_count": 3},
])
def test_given_either_segments_shape_when_read_then_the_segment_is_emitted_with_normalized_times(body):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/segments/2.0", {}), json_response(body))
        output = run_read(config(), "segments")
    assert records(output) == [{"id": "s1", "name": "VIP", "updated_at": "2024-02-01T00:00:00Z", "contacts_count": 3}]


def test_given_a_state_when_singlesends_are_read_then_only_newer_ones_are_completed_from_their_detail():
    short = [{"id": "old", "name": "Old", "updated_at": "2024-01-01T00:00:00Z"},
             {"id": "new", "name": "New", "updated_at": "2024-02-10T00:00:00Z", "send_at": None}]
    detail = {"id": "new", "name": "New", "updated_at": "2024-02-10T00:00:00Z",
              "send_to": {"list_ids": [LIST_A], "segment_ids": [], "all": False}, "email_config": {"subject": "Hi"}}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/singlesends", {"page_size": 100}), json_response({"result": short, "_metadata": {}}))
        http.get(HttpRequest(f"{BASE}/v3/marketing/singlesends/new"), json_response(detail))
        output = run_read(config(), "singlesends", SyncMode.incremental, state("singlesends", {"updated_at": "2024-02-01T00:00:00Z"}))
    emitted = records(output)
    assert [r["id"] for r in emitted] == ["new"]
    assert emitted[0]["send_to"]["list_ids"] == [LIST_A] and emitted[0]["email_config"]["subject"] == "Hi"
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"updated_at": "2024-02-10T00:00:00Z"}


def test_given_field_definitions_when_read_then_custom_and_reserved_fields_are_told_apart():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        output = run_read(config(), "field_definitions")
    assert [(r["id"], r["reserved"]) for r in records(output)] == [("e1_N", False), ("e2_D", False), ("e3_T", False), ("_rf0_T", True)]


def test_given_a_subuser_when_senders_are_read_then_on_behalf_of_is_sent_and_epoch_times_become_rfc3339():
    sender = {"id": 7, "nickname": "Shop", "created_at": 1449872165, "updated_at": 1449872165}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(HttpRequest(f"{BASE}/v3/marketing/senders", headers={"on-behalf-of": "shop-eu"}), json_response({"results": [sender]}))
        output = run_read(config(subuser="shop-eu"), "marketing_senders")
    assert records(output)[0]["created_at"] == "2015-12-11T22:16:05Z"


def test_given_a_subuser_when_lists_are_read_then_on_behalf_of_is_not_sent_because_the_spec_does_not_declare_it():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/lists", {"page_size": 1000}), json_response({"result": [], "_metadata": {}}))
        run_read(config(subuser="shop-eu"), "lists")
        sent = [r for r in http._mocker.request_history if "/marketing/lists" in r.url]
    assert sent and "on-behalf-of" not in sent[0].headers


def test_given_a_key_without_the_automation_scope_when_read_then_stats_automations_is_skipped():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["marketing.read"]))
        output = run_read(config(), "stats_automations", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream stats_automations: the API key lacks the scope marketing.automation.read")


def test_given_the_eu_region_when_read_then_marketing_streams_are_skipped_as_us_only():
    with HttpMocker() as http:
        http.get(scopes_request("https://api.eu.sendgrid.com"), scopes_response())
        output = run_read(config(region="eu"), "lists", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream lists: SendGrid serves this endpoint only from the global")


# --- contacts export -------------------------------------------------------------------------------

def test_given_an_export_that_is_pending_then_ready_when_contacts_are_read_then_every_file_is_parsed_and_typed(no_real_sleep):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(csv_row(1), csv_row(2, orders="")), export_file(csv_row(3, orders="2.5"))],
                    statuses=("pending", "pending", "ready"))
        output = run_read(config(), "contacts")
        downloads = download_requests(http)
    emitted = records(output)
    assert [r["id"] for r in emitted] == ["id-1", "id-2", "id-3"] and not output.errors
    first = emitted[0]
    assert first["alternate_emails"] == ["a1@example.org", "b1@example.org"]
    assert first["list_ids"] == [LIST_A] and first["segment_ids"] == [SEGMENT]
    assert first["created_at"] == "2023-01-01T00:00:00Z"  # milliseconds dropped, RFC 3339 UTC
    assert first["custom_fields"] == {"num_orders": 12, "Birthday": "2024-05-06T00:00:00Z", "tier": "gold, plus"}
    assert emitted[1]["custom_fields"]["num_orders"] is None and emitted[2]["custom_fields"]["num_orders"] == 2.5
    assert "num_orders" not in first and "birthday" not in first
    # Pre-signed links: our API key must never travel to the file host.
    assert len(downloads) == 2 and all("Authorization" not in r.headers for r in downloads)
    assert all(API_KEY not in str(r.headers) for r in downloads)
    # Polling waited with a growing, bounded backoff.
    assert no_real_sleep[:3] == [1.0, 1.5, 2.25]


@pytest.mark.parametrize("payload", [
    b'{"contact_id": "id-1", "email": "c1@example.com", "list_ids": ["L"], "created_at": "2023-01-01T00:00:00Z", '
    b'"updated_at": "2024-02-01T00:00:00Z", "custom_fields": {"num_orders": "7", "e2_D": "2024-05-06T00:00:00Z"}}\n'
    b'{"contact_id": "id-2", "email": "c2@example.com", "list_ids": [], "custom_fields": {}}\n',
    json.dumps([{"contact_id": "id-1", "email": "c1@example.com", "list_ids": ["L"], "created_at": "2023-01-01T00:00:00Z",
                 "updated_at": "2024-02-01T00:00:00Z", "custom_fields": {"num_orders": 7, "e2_D": "2024-05-06T00:00:00Z"}},
                {"contact_id": "id-2", "email": "c2@example.com", "list_ids": [], "custom_fields": {}}]).encode(),
], ids=["json-lines", "json-array"])
@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_given_a_json_export_gzip_or_plain_when_read_then_the_format_is_detected_from_the_bytes(payload, compress):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [gzip.compress(payload) if compress else payload])
        output = run_read(config(), "contacts")
    emitted = records(output)
    assert [r["id"] for r in emitted] == ["id-1", "id-2"], output.errors
    assert emitted[0]["custom_fields"] == {"num_orders": 7, "Birthday": "2024-05-06T00:00:00Z"}
    assert emitted[0]["list_ids"] == ["L"]


def test_given_a_plain_csv_export_when_read_then_it_is_not_taken_for_gzip():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(csv_row(1), compress=False)])
        output = run_read(config(), "contacts")
    assert [r["id"] for r in records(output)] == ["id-1"]


def test_given_a_failed_job_when_read_then_a_new_export_is_started_and_read():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        http.post(HttpRequest(f"{BASE}/v3/marketing/contacts/exports", body={"file_type": "csv"}),
                  [json_response({"id": "job-1"}, 202), json_response({"id": EXPORT_ID}, 202)])
        http.get(HttpRequest(f"{BASE}/v3/marketing/contacts/exports/job-1"),
                 json_response({"id": "job-1", "status": "failed", "message": "internal"}))
        http.get(HttpRequest(f"{BASE}/v3/marketing/contacts/exports/{EXPORT_ID}"),
                 json_response({"id": EXPORT_ID, "status": "ready", "urls": [FILE_URL]}))
        http.get(HttpRequest(FILE_URL), binary(export_file(csv_row(1))))
        output = run_read(config(), "contacts")
    assert [r["id"] for r in records(output)] == ["id-1"] and not output.errors
    assert output.is_in_logs("ended with status 'failed'")


def test_given_a_job_that_always_fails_when_read_then_the_sync_fails_after_a_bounded_number_of_exports():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [], statuses=("failure",))
        output = run_read(config(), "contacts", expecting_exception=True)
        posts = [r for r in http._mocker.request_history if r.method == "POST"]
    assert len(posts) == 3
    assert "SendGrid failed the contacts export 3 times" in output.errors[0].trace.error.message


def test_given_an_expired_download_link_when_read_then_the_export_is_created_again():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        http.post(HttpRequest(f"{BASE}/v3/marketing/contacts/exports", body={"file_type": "csv"}),
                  [json_response({"id": "job-1"}, 202), json_response({"id": EXPORT_ID}, 202)])
        http.get(HttpRequest(f"{BASE}/v3/marketing/contacts/exports/job-1"),
                 json_response({"id": "job-1", "status": "ready", "urls": [FILE_URL]}))
        http.get(HttpRequest(f"{BASE}/v3/marketing/contacts/exports/{EXPORT_ID}"),
                 json_response({"id": EXPORT_ID, "status": "ready", "urls": [FILE_URL_2]}))
        http.get(HttpRequest(FILE_URL), binary(b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", 403))
        http.get(HttpRequest(FILE_URL_2), binary(export_file(csv_row(1))))
        output = run_read(config(), "contacts")
    assert [r["id"] for r in records(output)] == ["id-1"] and not output.errors


def test_given_a_download_that_fails_with_500_when_read_then_it_is_retried():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [[binary(b"oops", 500), binary(export_file(csv_row(1), csv_row(2)))]])
        output = run_read(config(), "contacts")
    assert [r["id"] for r in records(output)] == ["id-1", "id-2"]


def test_given_a_state_when_contacts_are_read_incrementally_then_only_newer_contacts_are_emitted_and_state_moves_at_the_end():
    rows = [csv_row(1, updated="2024-01-10T00:00:00Z"), csv_row(2, updated="2024-02-20T00:00:00Z"),
            csv_row(3, updated="2024-02-15T00:00:00Z")]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_search(http, "2024-02-14T12:00:00Z", after=2)
        mock_fields(http)
        mock_export(http, [export_file(*rows)])
        output = run_read(config(lookback_days=1), "contacts", SyncMode.incremental,
                          state("contacts", {"updated_at": "2024-02-15T12:00:00Z"}))
    # Lookback of a day: contact 3 (updated 12 h before the cursor) comes again, contact 1 does not.
    assert [r["id"] for r in records(output)] == ["id-2", "id-3"]
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [{"updated_at": "2024-02-20T00:00:00Z"}]


def mock_search(http, threshold, after, before=None, total=None, found=()):
    """The contact search for contacts updated after `threshold` (`found`: the contacts it returns; when given,
    also the search at or before it) and the count."""
    def search(operator, count, result=()):
        http.post(HttpRequest(f"{BASE}/v3/marketing/contacts/search", body={"query": f"updated_at {operator} TIMESTAMP '{threshold}'"}),
                  count if isinstance(count, HttpResponse) else json_response({"result": list(result), "contact_count": count, "_metadata": {}}))
    search(">", after, found)
    if before is not None:
        search("<=", before)
    if total is not None:
        http.get(HttpRequest(f"{BASE}/v3/marketing/contacts/count"), json_response({"contact_count": total, "billable_count": total}))


def test_given_no_contact_updated_since_the_state_when_read_incrementally_then_no_export_is_made_and_state_stays():
    with HttpMocker() as http:  # any export request would be unmatched, and fail the test
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_search(http, "2024-02-14T12:00:00Z", after=0, before=1200, total=1200)
        output = run_read(config(lookback_days=1), "contacts", SyncMode.incremental,
                          state("contacts", {"updated_at": "2024-02-15T12:00:00Z"}))
    assert records(output) == [] and not output.errors
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [{"updated_at": "2024-02-15T12:00:00Z"}]
    assert output.is_in_logs(r"the contact search found every contact updated after 2024-02-14T12:00:00Z \(0\)")


def test_given_a_few_contacts_updated_since_the_state_when_read_incrementally_then_they_come_from_the_search_without_an_export():
    found = [{"id": "id-7", "email": "c7@example.com", "first_name": "Ann", "list_ids": [LIST_A], "segment_ids": [],
              "alternate_emails": [], "created_at": "2023-01-01T00:00:00Z", "updated_at": "2024-02-20T00:00:00.000Z",
              "custom_fields": {"num_orders": "12", "Birthday": "2024-05-06T00:00:00Z", "tier": "gold"},
              "_metadata": {"self": "https://api.sendgrid.com/v3/marketing/contacts/id-7"}}]
    with HttpMocker() as http:  # any export request would be unmatched, and fail the test
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_search(http, "2024-02-14T12:00:00Z", after=1, found=found, before=1199, total=1200)
        output = run_read(config(lookback_days=1), "contacts", SyncMode.incremental,
                          state("contacts", {"updated_at": "2024-02-15T12:00:00Z"}))
    assert records(output) == [{
        "id": "id-7", "email": "c7@example.com", "first_name": "Ann", "list_ids": [LIST_A], "segment_ids": [],
        "alternate_emails": [], "created_at": "2023-01-01T00:00:00Z", "updated_at": "2024-02-20T00:00:00Z",
        "custom_fields": {"num_orders": 12, "Birthday": "2024-05-06T00:00:00Z", "tier": "gold"},
    }]
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [{"updated_at": "2024-02-20T00:00:00Z"}]


def test_given_more_changed_contacts_than_the_search_returns_when_read_incrementally_then_contacts_are_exported():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_search(http, "2024-02-14T12:00:00Z", after=51, found=[{"id": f"id-{n}"} for n in range(50)])
        mock_export(http, [export_file(csv_row(1, updated="2024-02-20T00:00:00Z"))])
        output = run_read(config(lookback_days=1), "contacts", SyncMode.incremental,
                          state("contacts", {"updated_at": "2024-02-15T12:00:00Z"}))
    assert [r["id"] for r in records(output)] == ["id-1"] and not output.errors


@pytest.mark.parametrize("before, total", [(1100, 1200), (None, 1200)], ids=["search-misses-contacts", "search-times-out"])
def test_given_a_search_that_does_not_account_for_every_contact_when_read_incrementally_then_contacts_are_exported(before, total):
    rows = [csv_row(1, updated="2024-02-20T00:00:00Z")]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_search(http, "2024-02-14T12:00:00Z", after=0, before=before if before is not None else error_response(408, "timeout"),
                    total=total)
        mock_fields(http)
        mock_export(http, [export_file(*rows)])
        output = run_read(config(lookback_days=1), "contacts", SyncMode.incremental,
                          state("contacts", {"updated_at": "2024-02-15T12:00:00Z"}))
    assert [r["id"] for r in records(output)] == ["id-1"] and not output.errors


def test_given_a_search_sendgrid_refuses_when_read_incrementally_then_contacts_are_exported_without_an_error():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_search(http, "2024-02-14T12:00:00Z", after=error_response(400, "invalid query"))
        mock_fields(http)
        mock_export(http, [export_file(csv_row(1, updated="2024-02-20T00:00:00Z"))])
        output = run_read(config(lookback_days=1), "contacts", SyncMode.incremental,
                          state("contacts", {"updated_at": "2024-02-15T12:00:00Z"}))
    assert [r["id"] for r in records(output)] == ["id-1"] and not output.errors
    assert not [log for log in output.logs if log.log.level.value == "ERROR"]


def test_given_list_and_segment_members_when_read_then_each_membership_is_one_record():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(csv_row(1, lists=f"{LIST_A},{LIST_B}"), csv_row(2, lists=""))])
        output = run_read(config(), "list_members")
    assert [(r["list_id"], r["contact_id"]) for r in records(output)] == [(LIST_A, "id-1"), (LIST_B, "id-1")]
    assert records(output)[0]["contact_updated_at"] == "2024-02-01T10:00:00Z"


def test_given_a_key_without_marketing_read_when_the_export_answers_403_then_contacts_are_skipped():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(HttpRequest(f"{BASE}/v3/marketing/field_definitions"), error_response(403, "access forbidden"))
        output = run_read(config(), "contacts", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream contacts")


def test_given_a_proxy_error_page_served_with_200_when_downloaded_then_it_is_retried_and_never_emitted():
    page = binary(b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [[page, binary(export_file(csv_row(1)))]])
        output = run_read(config(), "contacts")
    assert [r["id"] for r in records(output)] == ["id-1"] and not output.errors
