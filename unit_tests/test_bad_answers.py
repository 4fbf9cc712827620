"""Hostile answers through a real read: empty or null pages, bodies of the wrong kind, lone surrogates, absurd
rate-limit headers, absurd or foreign states, records dated in the future, records without their key.
Nothing is lost silently and nothing crashes with a generic error: a page is read again, a record is left
out with a counted warning, or the stream fails with a clear message."""

from __future__ import annotations

import json

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse

from unit_tests.builders import (
    ALL_SCOPES,
    BASE,
    api_request,
    config,
    json_response,
    records,
    run_read,
    scopes_request,
    scopes_response,
    state,
)

GENERIC_CRASH = "Something went wrong"
GROUPS_PATH = "/v3/asm/groups"
TEMPLATES_PATH = "/v3/templates"


def warnings_of(output) -> list:
    return [log.log.message for log in output.logs if log.log.level.value in ("WARN", "WARNING")]


def log_lines(output) -> list:
    return [log.log.message for log in output.logs]


def error_messages(output) -> list:
    return [error.trace.error.message for error in output.errors]


def last_state(output, stream: str) -> dict:
    states = [m.state.stream.stream_state.__dict__ for m in output.state_messages
              if m.state.stream.stream_descriptor.name == stream]
    return states[-1] if states else {}


def template(template_id: str, updated_at: str) -> dict:
    return {"id": template_id, "name": template_id, "generation": "dynamic", "updated_at": updated_at, "versions": []}


def templates_page(items: list, next_token: str = "") -> HttpResponse:
    metadata = {"next": f"{BASE}{TEMPLATES_PATH}?page_size=200&page_token={next_token}"} if next_token else {}
    return json_response({"result": items, "_metadata": metadata})


def templates_request(token: str = "") -> HttpRequest:
    query = {"generations": "legacy,dynamic", "page_size": 200, **({"page_token": token} if token else {})}
    return api_request(TEMPLATES_PATH, query)


FIRST = [template("t1", "2024-02-01 00:00:00"), template("t2", "2024-02-02 00:00:00")]
SECOND = [template("t3", "2024-02-03 00:00:00"), template("t4", "2024-02-04 00:00:00")]


# --- item 2: an empty or null page is a bad answer, not "no records" ----------------------------------------

@pytest.mark.parametrize("bad_body", ["", "null"], ids=["empty", "null"])
def test_an_empty_or_null_page_in_the_middle_is_read_again_and_nothing_is_lost(bad_body):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(templates_request(), templates_page(FIRST, "p2"))
        http.get(templates_request("p2"), [HttpResponse(body=bad_body, status_code=200), templates_page(SECOND)])
        output = run_read(config(), "templates", SyncMode.incremental)
    assert [r["id"] for r in records(output)] == ["t1", "t2", "t3", "t4"]
    assert not output.errors
    assert last_state(output, "templates") == {"updated_at": "2024-02-04T00:00:00Z"}


def test_a_page_that_stays_null_fails_the_stream_and_the_state_does_not_move_past_it():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(templates_request(), templates_page(FIRST, "p2"))
        http.get(templates_request("p2"), HttpResponse(body="null", status_code=200))
        output = run_read(config(), "templates", SyncMode.incremental,
                          state("templates", {"updated_at": "2024-01-01T00:00:00Z"}), expecting_exception=True)
    assert output.errors
    assert not any(GENERIC_CRASH in message for message in error_messages(output))
    assert any("empty (or null) body" in line for line in log_lines(output) + error_messages(output))
    assert last_state(output, "templates") in ({}, {"updated_at": "2024-01-01T00:00:00Z"})


@pytest.mark.parametrize("body", [[{"id": 1, "email": "a@example.com"}], "maintenance", 7],
                         ids=["list", "string", "number"])
def test_a_body_of_the_wrong_kind_fails_the_stream_clearly_instead_of_reading_as_no_records(body):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/verified_senders"), json_response(body))
        output = run_read(config(), "verified_senders", expecting_exception=True)
    assert not records(output)
    messages = error_messages(output)
    assert any("expected a JSON object holding the records" in message for message in messages), messages


# --- item 8: a lone surrogate is well-formed JSON: kept, not retried ------------------------------------------

@pytest.mark.parametrize("raw, name", [
    (b'[{"id": 1, "name": "News \\ud800 letter"}]', "News \ufffd letter"),
    (b'[{"id": 1, "name": "low \\udfff, pair \\ud83d\\ude00"}]', "low \ufffd, pair \U0001F600"),
    (b'[{"id": 1, "name": "not utf-8: \xff"}]', "not utf-8: \ufffd"),
], ids=["lone-high", "lone-low-and-a-valid-pair", "invalid-utf8-byte"])
def test_a_page_with_characters_orjson_refuses_is_read_once_with_them_replaced(raw, name, no_real_sleep):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(GROUPS_PATH), HttpResponse(body=raw, status_code=200))
        output = run_read(config(), "suppression_groups")
    assert [r["name"] for r in records(output)] == [name]
    assert not output.errors and not no_real_sleep  # no retry, no wait
    assert any("not valid Unicode" in warning and "1 character" in warning for warning in warnings_of(output))


def test_a_page_nested_deeper_than_any_parser_follows_fails_at_once_without_retries(no_real_sleep):
    deep = b'[{"id": 1, "name": "n", "description": ' + b"[" * 3000 + b"]" * 3000 + b"}]"
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(GROUPS_PATH), HttpResponse(body=deep, status_code=200))
        output = run_read(config(), "suppression_groups", expecting_exception=True)
    assert not records(output) and not no_real_sleep
    assert any("nested deeper than this connector can read" in message and "/v3/asm/groups" in message for message in error_messages(output)), error_messages(output)


# --- item 9: absurd rate-limit headers are read as absent; long waits are logged -----------------------------

GROUPS = [{"id": 1, "name": "News", "description": "d", "is_default": True, "unsubscribes": 3}]


@pytest.mark.parametrize("headers", [
    {"X-RateLimit-Remaining": "inf", "X-RateLimit-Reset": "5"},
    {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(10**12)},
    {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "inf"},
    {"X-RateLimit-Remaining": "-3", "X-RateLimit-Reset": "30"},
], ids=["remaining-inf", "reset-1e12", "reset-inf", "remaining-negative"])
def test_absurd_rate_limit_headers_are_read_as_absent(headers, no_real_sleep):
    # The scopes answer carries the headers, so the stream's own request is the one that would wait.
    with HttpMocker() as http:
        http.get(scopes_request(), json_response({"scopes": ALL_SCOPES}, headers=headers))
        http.get(api_request(GROUPS_PATH), json_response(GROUPS, headers=headers))
        output = run_read(config(), "suppression_groups")
    assert [r["id"] for r in records(output)] == [1]
    assert not output.errors
    assert all(wait < 10 for wait in no_real_sleep), no_real_sleep


def test_a_429_with_an_absurd_reset_backs_off_briefly_instead_of_waiting_minutes(no_real_sleep):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(GROUPS_PATH), [
            json_response({"errors": [{"message": "too many requests"}]}, 429, {"X-RateLimit-Reset": str(10**12)}),
            json_response(GROUPS),
        ])
        output = run_read(config(), "suppression_groups")
    assert [r["id"] for r in records(output)] == [1]
    assert no_real_sleep and max(no_real_sleep) < 10, no_real_sleep


def test_a_wait_longer_than_ten_seconds_is_logged_with_what_it_waits_for_and_until_when(no_real_sleep):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(GROUPS_PATH), [
            json_response({"errors": [{"message": "too many requests"}]}, 429, {"X-RateLimit-Reset": "30"}),
            json_response(GROUPS),
        ])
        output = run_read(config(), "suppression_groups")
    assert [r["id"] for r in records(output)] == [1]
    waits = [line for line in log_lines(output) if line.startswith("Waiting ")]
    assert waits and "rate-limit window to reset" in waits[0] and " until " in waits[0] and "UTC" in waits[0], waits


# --- item 9: absurd or foreign states ------------------------------------------------------------------------

BOUNCE = {"created": 1706745600, "email": "a@example.com", "reason": "r", "status": "5.1.1"}


@pytest.mark.parametrize("cursor", ["0001-01-01", "0001-01-01T00:00:00Z", "1969-12-31T00:00:00Z"])
def test_a_state_cursor_before_1970_reads_from_start_date(cursor):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/suppression/bounces"), json_response([BOUNCE]))
        output = run_read(config(lookback_days=1), "bounces", SyncMode.incremental, state("bounces", {"created": cursor}))
    assert [r["email"] for r in records(output)] == ["a@example.com"]
    assert not output.errors
    assert any("not a usable time" in warning for warning in warnings_of(output))
    assert last_state(output, "bounces") == {"created": "2024-03-01T00:00:00Z"}


def test_a_client_filtered_state_cursor_before_1970_reads_everything():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(templates_request(), templates_page(FIRST))
        output = run_read(config(lookback_days=1), "templates", SyncMode.incremental,
                          state("templates", {"updated_at": "0001-01-01T00:00:00Z"}))
    assert [r["id"] for r in records(output)] == ["t1", "t2"]
    assert not output.errors


@pytest.mark.parametrize("stream, cursor_field", [("bounces", "created"), ("global_stats", "date")])
@pytest.mark.parametrize("cursor", ["9999-12-31T23:59:59Z", "9999-12-31"])
def test_a_far_future_state_cursor_reads_nothing_new_and_the_state_stays(stream, cursor_field, cursor):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        output = run_read(config(lookback_days=1), stream, SyncMode.incremental, state(stream, {cursor_field: cursor}))
    assert not records(output)
    assert not output.errors
    assert output.state_messages and last_state(output, stream) == {cursor_field: cursor}
    assert any("is in the future" in warning for warning in warnings_of(output))


def test_a_global_state_message_is_a_clear_config_error(tmp_path):
    from source_sendgrid import SourceSendgrid

    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps([{"type": "GLOBAL", "global": {
        "shared_state": {"cursor": "2024-01-01"},
        "stream_states": [{"stream_descriptor": {"name": "bounces"}, "stream_state": {"created": "2024-01-01T00:00:00Z"}}],
    }}]))
    with pytest.raises(Exception) as raised:
        SourceSendgrid.read_state(str(state_file))
    assert "GLOBAL" in getattr(raised.value, "message", "") and "per-stream" in raised.value.message
    assert raised.value.failure_type.value == "config_error"


# --- item 3: a record dated in the future does not carry the state past the sync's start --------------------

def test_a_record_dated_in_the_future_is_emitted_but_the_state_stops_at_the_sync_start(frozen_now):
    items = [template("t1", "2024-02-01 00:00:00"), template("t2099", "2099-01-01 00:00:00"),
             template("t2100", "2100-01-01 00:00:00")]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(templates_request(), templates_page(items))
        output = run_read(config(), "templates", SyncMode.incremental, state("templates", {"updated_at": "2024-01-01T00:00:00Z"}))
    assert [r["id"] for r in records(output)] == ["t1", "t2099", "t2100"]
    assert last_state(output, "templates") == {"updated_at": "2024-03-01T00:00:01Z"}
    future = [warning for warning in warnings_of(output) if "dated after this sync started" in warning]
    assert len(future) == 1 and "2 record(s)" in future[0] and "2100-01-01T00:00:00Z" in future[0], future


# --- item 10: records without their primary key --------------------------------------------------------------

def test_records_without_their_primary_key_are_left_out_and_counted():
    body = [{"id": 1, "name": "kept"}, {}, {"id": None, "name": "null id"}, {"name": "no id"}]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(GROUPS_PATH), json_response(body))
        output = run_read(config(), "suppression_groups")
    assert [r["id"] for r in records(output)] == [1]
    assert not output.errors
    assert any("dropped 3 record(s)" in warning and "primary key" in warning for warning in warnings_of(output))


def test_a_composite_key_needs_every_part():
    body = [{"group_id": 1, "email": "a@example.com", "created_at": 1706745600},
            {"group_id": 1, "created_at": 1706745600}, {"email": "b@example.com", "created_at": 1706745600},
            {"group_id": None, "email": None}]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/suppressions"), json_response(body))
        output = run_read(config(), "suppression_group_members")
    assert [(r["group_id"], r["email"]) for r in records(output)] == [(1, "a@example.com")]
    assert any("dropped 3 record(s)" in warning for warning in warnings_of(output))


def test_a_key_part_that_comes_from_the_parent_counts_and_a_keyless_child_is_left_out():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(templates_request(), templates_page([template("t1", "2024-02-01 00:00:00")]))
        http.get(api_request("/v3/templates/t1"), json_response({"id": "t1", "versions": [
            {"id": "v1", "template_id": "t1", "name": "one"}, {"name": "no id"}]}))
        output = run_read(config(), "template_versions")
    assert [(r["template_id"], r["id"]) for r in records(output)] == [("t1", "v1")]
    assert any("dropped 1 record(s)" in warning for warning in warnings_of(output))


def test_a_single_send_without_an_id_is_left_out_instead_of_crashing_the_detail_call():
    listed = [{"id": "s1", "name": "One", "updated_at": "2024-02-10T00:00:00Z"}, {"name": "No id", "updated_at": "2024-02-11T00:00:00Z"}]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/singlesends", {"page_size": 100}), json_response({"result": listed, "_metadata": {}}))
        http.get(HttpRequest(f"{BASE}/v3/marketing/singlesends/s1"), json_response({**listed[0], "email_config": {"subject": "Hi"}}))
        output = run_read(config(), "singlesends")
    assert [r["id"] for r in records(output)] == ["s1"]
    assert not output.errors
    assert any("dropped 1 record(s)" in warning for warning in warnings_of(output))


def test_a_singlesend_stats_row_without_aggregation_takes_the_documented_default_and_keeps_its_key():
    rows = [{"id": "s1", "ab_variation": "all", "ab_phase": "all", "stats": {"delivered": 3}},
            {"id": "s2", "ab_variation": "all", "ab_phase": "all", "aggregation": "total", "stats": {}},
            {"ab_variation": "all", "ab_phase": "all", "aggregation": "total", "stats": {}}]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/marketing/stats/singlesends", {"page_size": 50}), json_response({"results": rows, "_metadata": {}}))
        output = run_read(config(), "singlesend_stats")
    assert [(r["id"], r["aggregation"]) for r in records(output)] == [("s1", "total"), ("s2", "total")]
    assert any("dropped 1 record(s)" in warning for warning in warnings_of(output))


def test_a_wait_for_an_exhausted_rate_limit_window_is_logged_with_its_endpoint_and_until_when(no_real_sleep):
    spent = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}
    recipients = "/v3/contactdb/recipients"
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(recipients, {"page": 1, "page_size": 1000}),
                 json_response({"recipients": [{"id": "r1", "email": "r1@example.com"}]}, headers=spent))
        http.get(api_request(recipients, {"page": 2, "page_size": 1000}), json_response({"errors": []}, 404))
        output = run_read(config(), "legacy_contacts")
    assert [r["id"] for r in records(output)] == ["r1"]
    assert no_real_sleep and max(no_real_sleep) >= 29, no_real_sleep
    waits = [line for line in log_lines(output) if line.startswith("Waiting ")]
    assert any("no requests left" in line and " until " in line and f"GET {recipients}" in line
               and "600 per window" in line for line in waits), waits
