"""SendGrid answers some requests in one piece however long they are (every suppression group member at once):
such an answer is read as it arrives, a block of records at a time, so memory does not grow with it."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

from unit_tests.builders import api_request, config, records, run_read, scopes_request, scopes_response, state

MEMBERS = "/v3/asm/suppressions"
STREAM = "suppression_group_members"


def members(count: int) -> list:
    return [{"email": f"member{i}@example.com", "group_id": 1 + i % 5, "group_name": "Newsletter",
             "created_at": 1_690_000_000 + i} for i in range(count)]


def cursors_saved(output) -> list:
    return [message.state.stream.stream_state.__dict__ for message in output.state_messages]


def test_given_60k_group_members_and_none_new_when_read_then_memory_holds_a_block_not_the_whole_answer():
    body = json.dumps(members(60_000))  # about 6 MB; read whole it took more than 60 MB of Python objects
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(MEMBERS), HttpResponse(body=body))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            output = run_read(config(), STREAM, SyncMode.incremental, state(STREAM, {"created_at": "2024-02-01T00:00:00Z"}))
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    assert not output.errors and records(output) == []
    assert cursors_saved(output)[-1] == {"created_at": "2024-02-01T00:00:00Z"}
    # The body itself is held twice by the mock (text and bytes): about 12 MB of the peak.
    assert peak < 30 * 1024 * 1024, f"peak {peak / 1024 / 1024:.0f} MB"


def test_given_an_answer_that_breaks_off_after_records_were_handed_over_when_read_then_the_stream_fails_saying_so_and_the_state_stays():
    whole = json.dumps(members(5_000))
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(MEMBERS), [HttpResponse(body=whole[: len(whole) * 3 // 4]), HttpResponse(body=whole)])
        output = run_read(config(), STREAM, SyncMode.incremental, state(STREAM, {"created_at": "2023-01-01T00:00:00Z"}),
                          expecting_exception=True)
    failures = [error.trace.error.message for error in output.errors]
    assert any("broke off after" in message and "next sync reads it again" in message for message in failures), failures
    assert 0 < len(records(output)) < 5_000
    assert all(saved == {"created_at": "2023-01-01T00:00:00Z"} for saved in cursors_saved(output))


@pytest.mark.parametrize("broken", ["", "null", '[{"email": "member0@exa'], ids=["empty", "null", "cut-short"])
def test_given_an_answer_broken_before_any_record_when_read_then_it_is_asked_again_and_nothing_is_lost(broken):
    # Also true of the answer read whole; kept here because the streamed read checks the body itself.
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(MEMBERS), [HttpResponse(body=broken), HttpResponse(body=json.dumps(members(3_000)))])
        output = run_read(config(), STREAM)
    assert not output.errors
    assert len(records(output)) == 3_000


def test_given_members_whose_text_holds_brackets_and_commas_when_read_in_many_blocks_then_every_record_is_exact():
    # Guard (also true of the answer read whole): a block may end only between two members, never at a `},`
    # inside a string or a nested object; whitespace between members (a pretty-printed answer) is allowed.
    tricky = ['}, {"email": "x"}', "},{", '\\"},', "{[}]", "plain"]
    sent = [{**member, "group_name": tricky[i % len(tricky)], "extra": [{"a": i}, {"b": [{}]}] if i % 3 else None}
            for i, member in enumerate(members(4_000))]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(MEMBERS), HttpResponse(body=json.dumps(sent, indent=1)))
        output = run_read(config(), STREAM)
    assert not output.errors
    got = {(r["group_id"], r["email"]): (r["group_name"], r.get("extra")) for r in records(output)}
    assert got == {(m["group_id"], m["email"]): (m["group_name"], m["extra"]) for m in sent}
