"""The suppression streams: requests sent, pagination, windows, state and skipping."""

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

JAN_1_2024 = 1704067200
NOW_MINUS_ONE = 1709251200  # the frozen "now" (2024-03-01T00:00:01Z) minus one second


def bounce(n, created=JAN_1_2024 + 60):
    return {"created": created, "email": f"b{n}@example.com", "reason": "550", "status": "5.1.1"}


def page(path, offset, start=JAN_1_2024, end=NOW_MINUS_ONE, limit=500):
    return api_request(path, {"limit": limit, "offset": offset, "start_time": start, "end_time": end})


def test_given_two_full_pages_and_a_short_one_when_read_then_offsets_advance_by_the_page_size():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        for offset, count in ((0, 500), (500, 500), (1000, 3)):
            # Later pages are anchored on the oldest `created` read (here every record has the same second).
            end = NOW_MINUS_ONE if offset == 0 else JAN_1_2024 + 60
            http.get(page("/v3/suppression/bounces", offset, end=end), json_response([bounce(offset + i) for i in range(count)]))
        output = run_read(config(), "bounces")
    emitted = records(output)
    assert len(emitted) == 1003 and not output.errors
    assert emitted[0]["created"] == "2024-01-01T00:01:00Z"  # epoch seconds become RFC 3339 UTC


def test_given_windows_of_30_days_when_read_incrementally_then_state_follows_each_finished_window():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(page("/v3/suppression/blocks", 0, JAN_1_2024, JAN_1_2024 + 30 * 86400 - 1), json_response([bounce(1)]))
        # 2024 is a leap year: the second window ends on Feb 29, the third is the last second before "now".
        http.get(page("/v3/suppression/blocks", 0, JAN_1_2024 + 30 * 86400, NOW_MINUS_ONE - 1), json_response([]))
        http.get(page("/v3/suppression/blocks", 0, NOW_MINUS_ONE, NOW_MINUS_ONE), json_response([]))
        output = run_read(config(window_days=30, start_date="2024-01-01T00:00:00Z"), "blocks", SyncMode.incremental)
    states = [m.state.stream.stream_state.__dict__ for m in output.state_messages]
    assert states[0] == {"created": "2024-01-30T23:59:59Z"}
    assert states[-1] == {"created": "2024-03-01T00:00:00Z"}
    assert len(records(output)) == 1


def test_given_empty_windows_before_the_first_record_when_read_without_state_then_the_first_checkpoint_follows_that_record():
    day = 86400
    # window_days 10: an empty window doubles the next one, a window with records sets the size back.
    windows = [(0, 10, []), (10, 30, [bounce(1, created=JAN_1_2024 + 20 * day)]), (30, 40, []), (40, 60, [])]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        for first_day, end_day, body in windows:
            http.get(page("/v3/suppression/bounces", 0, JAN_1_2024 + first_day * day, JAN_1_2024 + end_day * day - 1),
                     json_response(body))
        http.get(page("/v3/suppression/bounces", 0, NOW_MINUS_ONE, NOW_MINUS_ONE), json_response([]))
        output = run_read(config(window_days=10), "bounces", SyncMode.incremental)
    assert len(records(output)) == 1 and not output.errors
    # Nothing before the window that held the record; after it, every finished window, empty or not.
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [
        {"created": "2024-01-30T23:59:59Z"}, {"created": "2024-02-09T23:59:59Z"},
        {"created": "2024-02-29T23:59:59Z"}, {"created": "2024-03-01T00:00:00Z"}]


def test_given_no_record_in_any_window_when_read_without_state_then_one_checkpoint_at_the_end_of_the_read():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(page("/v3/suppression/bounces", 0, JAN_1_2024, JAN_1_2024 + 30 * 86400 - 1), json_response([]))
        http.get(page("/v3/suppression/bounces", 0, JAN_1_2024 + 30 * 86400, NOW_MINUS_ONE), json_response([]))
        output = run_read(config(window_days=30), "bounces", SyncMode.incremental)
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [{"created": "2024-03-01T00:00:00Z"}]


def test_given_a_state_and_a_lookback_when_read_incrementally_then_the_window_starts_lookback_before_the_cursor():
    cursor = "2024-02-20T00:00:00Z"
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        start = 1708387200 + 1 - 2 * 86400  # cursor + 1 s - 2 days
        http.get(page("/v3/suppression/spam_reports", 0, start, NOW_MINUS_ONE), json_response([]))
        output = run_read(config(lookback_days=2), "spam_reports", SyncMode.incremental, state("spam_reports", {"created": cursor}))
    assert not output.errors
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"created": "2024-03-01T00:00:00Z"}


def test_given_an_epoch_state_from_an_older_version_when_read_then_it_is_understood():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(page("/v3/suppression/invalid_emails", 0, 1708387200 + 1, NOW_MINUS_ONE), json_response([]))
        output = run_read(config(), "invalid_emails", SyncMode.incremental, state("invalid_emails", {"created": 1708387200}))
    assert not output.errors


def test_given_a_future_state_when_read_incrementally_then_nothing_is_requested():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        output = run_read(config(), "bounces", SyncMode.incremental, state("bounces", {"created": "2030-01-01T00:00:00Z"}))
    assert records(output) == [] and not output.errors


def test_given_a_subuser_when_read_then_the_on_behalf_of_header_is_sent():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        request = HttpRequest(url=f"{BASE}/v3/asm/groups", headers={"on-behalf-of": "shop-eu"})
        http.get(request, json_response([{"id": 1, "name": "News", "description": "d", "is_default": True, "unsubscribes": 3}]))
        output = run_read(config(subuser="shop-eu"), "suppression_groups")
    assert records(output)[0]["id"] == 1


def test_given_group_members_and_a_state_when_read_incrementally_then_only_newer_members_are_emitted():
    members = [
        {"email": "old@example.com", "group_id": 1, "group_name": "News", "created_at": 1700000000},
        {"email": "new@example.com", "group_id": 1, "group_name": "News", "created_at": 1709000000},
        {"email": "new@example.com", "group_id": 2, "group_name": "Deals", "created_at": 1709000001},
    ]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/suppressions", {}), json_response(members))
        output = run_read(config(), "suppression_group_members", SyncMode.incremental,
                          state("suppression_group_members", {"created_at": "2024-01-01T00:00:00Z"}))
    assert [(r["group_id"], r["email"]) for r in records(output)] == [(1, "new@example.com"), (2, "new@example.com")]
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"created_at": "2024-02-27T02:13:21Z"}


def test_given_a_key_without_the_scope_when_read_then_the_stream_is_skipped_with_a_warning():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["asm.groups.read"]))
        output = run_read(config(), "bounces", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream bounces: the API key lacks the scope suppression.bounces.read")


def test_given_the_endpoint_answers_403_when_read_then_the_stream_is_skipped():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(page("/v3/suppression/bounces", 0), error_response(403, "access forbidden"))
        output = run_read(config(), "bounces", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream bounces")
