"""list_members and segment_members: contact ids from the export, memberships from the contacts batch read."""

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from source_sendgrid import SourceSendgrid
from unit_tests.builders import (BASE, config, error_response, json_response, records, run_read, scopes_request, scopes_response,
                             state)
from unit_tests.test_marketing import LIST_A, LIST_B, SEGMENT, export_file, mock_export, mock_fields

# The header of an export captured from a live account: no list or segment column.
LIVE_HEADER = ('"EMAIL","FIRST_NAME","LAST_NAME","ADDRESS_LINE_1","ADDRESS_LINE_2","CITY","STATE_PROVINCE_REGION",'
               '"POSTAL_CODE","COUNTRY","ALTERNATE_EMAILS","PHONE_NUMBER","WHATSAPP","LINE","FACEBOOK","UNIQUE_NAME",'
               '"CREATED_AT","UPDATED_AT","CONTACT_ID","NUM_ORDERS"\n')
BATCH_URL = f"{BASE}/v3/marketing/contacts/batch"


def live_row(n):
    return (f'"c{n}@example.com","Ann",,,,,,"22341",,,,,,,,"2023-01-01T00:00:00Z","2024-02-01T10:00:00Z",'
            f'"id-{n}","{n}"\n')


def contact(n, lists=(LIST_A,), segments=()):
    """A contact object as the batch read answers it (the spec's contact-details3)."""
    return {"id": f"id-{n}", "email": f"c{n}@example.com", "list_ids": list(lists), "segment_ids": list(segments),
            "alternate_emails": [], "created_at": "2023-01-01T00:00:00Z", "updated_at": "2024-02-01T10:00:00.000Z",
            "custom_fields": {"num_orders": n}, "_metadata": {"self": f"{BASE}/v3/marketing/contacts/id-{n}"}}


def mock_batch(http, ids, answered):
    http.post(HttpRequest(BATCH_URL, body={"ids": ids}), answered)


def batch_requests(http):
    return [r for r in http._mocker.request_history if r.url == BATCH_URL]


def test_discover_offers_list_and_segment_members_as_full_refresh_only():
    streams = {s.name: s for s in discover(SourceSendgrid(), config()).catalog.catalog.streams}
    for name in ("list_members", "segment_members"):
        assert [mode.value for mode in streams[name].supported_sync_modes] == ["full_refresh"]
        assert not streams[name].default_cursor_field and not streams[name].source_defined_cursor


def test_given_an_export_without_membership_columns_when_list_members_are_read_then_ids_are_read_100_at_a_time_in_batches():
    with HttpMocker() as http:  # any export filtered by a list would be unmatched, and fail the test
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(*(live_row(n) for n in range(250)), header=LIVE_HEADER)])
        for start in (0, 100, 200):
            ids = [f"id-{n}" for n in range(start, min(start + 100, 250))]
            mock_batch(http, ids, json_response({"result": [contact(int(i[3:]), lists=(LIST_A, LIST_B) if i == "id-7" else (LIST_A,))
                                                             for i in ids]}))
        output = run_read(config(), "list_members")
        sent = batch_requests(http)
    assert not output.errors
    assert [len(r.json()["ids"]) for r in sent] == [100, 100, 50]
    emitted = records(output)
    assert len(emitted) == 251
    assert {(r["list_id"], r["contact_id"]) for r in emitted if r["contact_id"] == "id-7"} == {(LIST_A, "id-7"), (LIST_B, "id-7")}
    assert emitted[0] == {"list_id": LIST_A, "contact_id": "id-0", "email": "c0@example.com",
                          "contact_updated_at": "2024-02-01T10:00:00Z"}


def test_given_contacts_deleted_after_the_export_when_segment_members_are_read_then_they_are_skipped_and_counted():
    rows = [live_row(n) for n in range(3)]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(*rows, header=LIVE_HEADER)])
        # id-1 was deleted between the export and the batch read: the answer leaves it out.
        mock_batch(http, ["id-0", "id-1", "id-2"], json_response({"result": [contact(0, segments=[SEGMENT]), contact(2)]}))
        output = run_read(config(), "segment_members")
    assert not output.errors
    assert [(r["segment_id"], r["contact_id"]) for r in records(output)] == [(SEGMENT, "id-0")]
    assert output.is_in_logs("1 of the 3 exported contacts were deleted before their memberships were read")


def test_given_a_batch_of_contacts_all_deleted_when_read_then_the_404_means_no_members_for_that_batch():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(*(live_row(n) for n in range(101)), header=LIVE_HEADER)])
        mock_batch(http, [f"id-{n}" for n in range(100)], json_response({"result": [contact(n) for n in range(100)]}))
        mock_batch(http, ["id-100"], error_response(404, "not found"))
        output = run_read(config(), "list_members")
    assert not output.errors and len(records(output)) == 100
    assert output.is_in_logs("1 of the 101 exported contacts were deleted")


@pytest.mark.parametrize("answer, message", [
    (error_response(404, "not found"), "found none of the 2 contacts the export listed"),
    (json_response({"result": [{"id": "id-0", "email": "c0@example.com"}]}), "sent contact id-0 without its list_ids"),
    (json_response({"contacts": []}), "holds no list of contacts"),
    (error_response(403, "access forbidden"), "SendGrid answered 403 to the contacts batch read of stream list_members"),
    (error_response(400, "ids is invalid"), "SendGrid answered 400 to a request of stream list_members: 'ids is invalid'"),
], ids=["none-found", "no-list-ids", "no-result", "forbidden", "refused"])
def test_given_a_batch_answer_that_cannot_give_the_memberships_when_read_then_the_stream_fails_clearly(answer, message):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(live_row(0), live_row(1), header=LIVE_HEADER)])
        mock_batch(http, ["id-0", "id-1"], answer)
        output = run_read(config(), "list_members", expecting_exception=True)
    assert records(output) == []
    assert any(message in e.trace.error.message for e in output.errors), [e.trace.error.message for e in output.errors]


def test_given_a_batch_answer_that_fails_with_500_when_read_then_it_is_retried(no_real_sleep):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(live_row(0), header=LIVE_HEADER)])
        mock_batch(http, ["id-0"], [error_response(500, "oops"), json_response({"result": [contact(0)]})])
        output = run_read(config(), "list_members")
    assert [(r["list_id"], r["contact_id"]) for r in records(output)] == [(LIST_A, "id-0")] and not output.errors


def test_given_a_state_when_list_members_are_read_then_every_membership_is_emitted_and_no_state_is_kept():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        mock_fields(http)
        mock_export(http, [export_file(live_row(0), header=LIVE_HEADER)])
        mock_batch(http, ["id-0"], json_response({"result": [contact(0)]}))
        output = run_read(config(), "list_members", SyncMode.full_refresh,
                          state("list_members", {"contact_updated_at": "2999-01-01T00:00:00Z"}))
    assert [r["contact_id"] for r in records(output)] == ["id-0"]
    # Only the CDK's marker of a stream without a cursor: nothing a later sync could filter by.
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [{"__ab_no_cursor_state_message": True}]
