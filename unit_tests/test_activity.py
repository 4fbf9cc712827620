"""The email activity stream: BETWEEN queries, window splitting at the 1000-message cap, the add-on's 403."""

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker

from source_sendgrid.windows import format_time, from_epoch
from unit_tests.builders import (
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


def messages_in(start, end):
    query = (f'last_event_time BETWEEN TIMESTAMP "{format_time(from_epoch(start))}" '
             f'AND TIMESTAMP "{format_time(from_epoch(end))}"')
    return api_request("/v3/messages", {"query": query, "limit": 1000})


def message(msg_id, last_event="2024-01-10T08:00:00Z"):
    return {"msg_id": msg_id, "from_email": "a@example.com", "to_email": "b@example.com", "subject": "Hi",
            "status": "delivered", "opens_count": 1, "clicks_count": 0, "last_event_time": last_event}


def full_page(prefix, start=None, end=None):
    """1000 messages, spread evenly over [start, end] when given (else all in one second)."""
    if start is None:
        return json_response({"messages": [message(f"{prefix}-{i}") for i in range(1000)]})
    step = (end - start) / 999
    return json_response({"messages": [message(f"{prefix}-{i}", format_time(from_epoch(int(start + i * step))))
                                       for i in range(1000)]})


def test_given_a_window_when_read_then_it_is_queried_by_last_event_time_between_its_bounds():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(messages_in(JAN_1_2024, NOW_MINUS_ONE), json_response({"messages": [message("m1", "2024-01-10T08:00:00.000Z")]}))
        output = run_read(config(), "email_activity", SyncMode.incremental)
    assert records(output) == [message("m1", "2024-01-10T08:00:00Z")]
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"last_event_time": "2024-03-01T00:00:00Z"}


def messages_server(moments, headers=None, pick=None):
    """A /v3/messages that answers any BETWEEN query from `moments` (epoch seconds), newest first, at most
    1000, as SendGrid does, with `headers`; the queries it was asked, as (start, end, messages in it).
    `pick(inside)` chooses and orders the answer instead (a server that is not newest first)."""
    import re
    from urllib.parse import parse_qs, unquote, urlsplit

    from source_sendgrid.windows import parse_time

    asked = []

    def answer(request, context):
        query = parse_qs(urlsplit(request.url).query)["query"][0]
        low, high = (int(parse_time(text).timestamp()) for text in re.findall(r'TIMESTAMP "([^"]+)"', unquote(query)))
        inside = sorted((m for m in moments if low <= m <= high), reverse=True)
        asked.append((low, high, len(inside)))
        context.headers.update(headers or {})
        sent = pick(inside) if pick else inside[:1000]
        return {"messages": [message(f"m{m}-{i}", format_time(from_epoch(m))) for i, m in enumerate(sent)]}

    return answer, asked


def test_given_full_windows_when_read_then_every_message_is_emitted_once():
    import random

    import requests_mock

    rng = random.Random(7)
    # 2,600 messages in a busy week of February, 40 scattered over January.
    moments = [rng.randrange(1707955200, 1708560000) for _ in range(2600)] + \
              [rng.randrange(JAN_1_2024, 1706745600) for _ in range(40)]
    answer, asked = messages_server(moments)
    with requests_mock.Mocker() as mock:
        mock.get(requests_mock.ANY, json=answer)
        mock.get("https://api.sendgrid.com/v3/scopes", json={"scopes": ["messages.read"]})  # matched first
        output = run_read(config(), "email_activity", SyncMode.incremental)
    assert not output.errors
    emitted = sorted(int(r["msg_id"][1:].split("-")[0]) for r in records(output))
    assert emitted == sorted(moments)  # every message once
    assert any(count >= 1000 for _, _, count in asked), "no window came back full: the test proves nothing"
    assert len(asked) <= 20, asked
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"last_event_time": "2024-03-01T00:00:00Z"}


def test_given_a_state_when_read_incrementally_then_the_query_starts_a_second_after_the_cursor_minus_the_lookback():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(messages_in(1709164800 + 1 - 86400, NOW_MINUS_ONE), json_response({"messages": []}))
        output = run_read(config(lookback_days=1), "email_activity", SyncMode.incremental,
                          state("email_activity", {"last_event_time": "2024-02-29T00:00:00Z"}))
    assert not output.errors


def test_given_1000_messages_in_one_second_when_read_then_they_are_emitted_with_a_warning_that_more_may_exist():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(messages_in(NOW_MINUS_ONE, NOW_MINUS_ONE), full_page("same-second"))
        output = run_read(config(), "email_activity", SyncMode.incremental,
                          state("email_activity", {"last_event_time": "2024-02-29T23:59:59Z"}))
    assert len(records(output)) == 1000 and not output.errors
    assert output.is_in_logs("1000 messages share the last event second 2024-03-01T00:00:00Z")


def test_given_an_account_without_the_activity_add_on_when_read_then_the_stream_is_skipped_with_a_clear_warning():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(messages_in(JAN_1_2024, NOW_MINUS_ONE), error_response(403, "access forbidden"))
        output = run_read(config(), "email_activity", SyncMode.incremental, expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream email_activity: SendGrid answered 403 to /v3/messages: the account needs the paid")


def test_given_the_eu_region_when_read_then_email_activity_is_skipped_as_us_only():
    with HttpMocker() as http:
        http.get(scopes_request("https://api.eu.sendgrid.com"), scopes_response())
        output = run_read(config(region="eu"), "email_activity", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream email_activity: SendGrid serves this endpoint only from the global")


def test_given_a_start_date_years_ago_when_read_then_only_the_add_ons_history_is_queried():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(messages_in(NOW_MINUS_ONE + 1 - 90 * 86400, NOW_MINUS_ONE), json_response({"messages": []}))
        output = run_read(config(start_date="2015-01-01T00:00:00Z", window_days=180), "email_activity", SyncMode.incremental)
    assert not output.errors


def test_given_the_rate_limit_is_spent_when_the_next_query_waits_then_the_log_says_what_is_read_what_is_left_and_the_reset(
        no_real_sleep):
    import random

    import requests_mock

    from unit_tests.test_bad_answers import log_lines

    rng = random.Random(3)
    moments = [rng.randrange(1707955200, 1708560000) for _ in range(2500)]
    # Every answer spends the window: SendGrid allows 6 a minute, and the next resets in 30 s.
    answer, asked = messages_server(moments, {"X-RateLimit-Limit": "6", "X-RateLimit-Remaining": "0",
                                              "X-RateLimit-Reset": "30"})
    with requests_mock.Mocker() as mock:
        mock.get(requests_mock.ANY, json=answer)
        mock.get("https://api.sendgrid.com/v3/scopes", json={"scopes": ["messages.read"]})
        output = run_read(config(), "email_activity", SyncMode.incremental)
    assert not output.errors and len(records(output)) == 2500
    assert len(asked) >= 3 and len([s for s in no_real_sleep if s >= 29]) >= len(asked) - 1, no_real_sleep
    progress = [line for line in log_lines(output) if line.startswith("Stream email_activity: ")]
    assert len(progress) == len(asked) - 1, progress  # before every query but the first
    last = progress[-1]
    assert " messages read; left: " in last and " hours of last_event_time between 2024-0" in last, last
    assert "waits 30 s for SendGrid's rate limit on GET /v3/messages" in last and "resets at " in last, last
    waits = [line for line in log_lines(output) if line.startswith("Waiting ")]
    assert any("GET /v3/messages" in line and "6 per window" in line for line in waits), waits


def test_given_a_state_and_10000_messages_a_day_since_when_read_then_a_full_answer_is_followed_by_a_window_from_the_cursor_not_a_search():
    import math
    import random

    import requests_mock

    rng = random.Random(11)
    since = 1709164800 + 1 - 86400  # a second after the state's cursor, minus the day of lookback
    # Messages all along: before the state's cursor (read by the syncs before) and 20,000 in the two days since.
    moments = [rng.randrange(since - 5 * 86400, since) for _ in range(2000)] + \
              [rng.randrange(since, NOW_MINUS_ONE + 1) for _ in range(20_000)]
    answer, asked = messages_server(moments)
    with requests_mock.Mocker() as mock:
        mock.get(requests_mock.ANY, json=answer)
        mock.get("https://api.sendgrid.com/v3/scopes", json={"scopes": ["messages.read"]})  # matched first
        output = run_read(config(lookback_days=1), "email_activity", SyncMode.incremental,
                          state("email_activity", {"last_event_time": "2024-02-29T00:00:00Z"}))
    assert not output.errors
    emitted = sorted(int(r["msg_id"][1:].split("-")[0]) for r in records(output))
    assert emitted == sorted(m for m in moments if m >= since)  # every message since, once
    least = math.ceil(20_000 / 1000)
    # Today's cost: the whole range, full, then windows from the cursor at the rate it shows; a binary search
    # for where messages begin (as on a first sync) would add about four full answers: 27 queries.
    assert len(asked) <= least * 1.2, [(start - since, end - since, count) for start, end, count in asked]
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"last_event_time": "2024-03-01T00:00:00Z"}


def read_all(moments, cfg=None, pick=None):
    import requests_mock

    answer, asked = messages_server(moments, pick=pick)
    with requests_mock.Mocker() as mock:
        mock.get(requests_mock.ANY, json=answer)
        mock.get("https://api.sendgrid.com/v3/scopes", json={"scopes": ["messages.read"]})  # matched first
        output = run_read(cfg or config(), "email_activity", SyncMode.incremental)
    return output, asked


def emitted_moments(output):
    return sorted(int(r["msg_id"][1:].split("-")[0]) for r in records(output))


def test_given_30000_messages_when_first_read_then_full_answers_are_read_down_and_no_query_is_wasted():
    import random

    rng = random.Random(5)
    # The last 30 days of the 90 read back, as SendGrid's history add-on keeps them.
    moments = [rng.randrange(NOW_MINUS_ONE + 1 - 30 * 86400, NOW_MINUS_ONE + 1) for _ in range(30_000)]
    output, asked = read_all(moments, config(start_date="2023-01-01T00:00:00Z"))
    assert not output.errors
    assert emitted_moments(output) == sorted(moments)  # every message once
    assert asked[0] == (NOW_MINUS_ONE + 1 - 90 * 86400, NOW_MINUS_ONE, 30_000)  # all 90 days, newest 1000 first
    # 30 full answers, each read down below its oldest second, then the rest: no search, no answer thrown away.
    assert len(asked) == 31, [(start, end, count) for start, end, count in asked]
    assert output.state_messages[-1].state.stream.stream_state.__dict__ == {"last_event_time": "2024-03-01T00:00:00Z"}


def test_given_answers_that_are_not_newest_first_when_read_then_full_ones_are_asked_again_in_parts_and_nothing_is_lost():
    import random

    rng = random.Random(9)
    moments = [rng.randrange(JAN_1_2024, NOW_MINUS_ONE + 1) for _ in range(3000)]
    # Any 1000 of the window, in any order: a full answer's oldest second says nothing about what is left out.
    output, asked = read_all(moments, pick=lambda inside: rng.sample(inside, min(1000, len(inside))))
    assert not output.errors
    assert emitted_moments(output) == sorted(moments)
    assert any(count > 1000 for _, _, count in asked), "no answer left messages out: the test proves nothing"


def test_given_more_full_answers_than_ten_minutes_of_queries_when_read_down_then_the_state_still_moves_every_so_often():
    from source_sendgrid.message_windows import READ_DOWN_QUERIES

    # One message every 5 s over the last five days: about 86 full answers read down from the top.
    moments = list(range(NOW_MINUS_ONE - 5 * 86400, NOW_MINUS_ONE + 1, 5))
    output, asked = read_all(moments)
    assert not output.errors
    assert emitted_moments(output) == sorted(moments)
    # Records between two checkpoints: a sync killed between them reads at most this many again.
    between, longest = 0, 0
    for message in output.records_and_state_messages:
        between = between + 1 if message.record else 0
        longest = max(longest, between)
    assert longest <= (READ_DOWN_QUERIES + 1) * 1000, longest
    assert len(output.state_messages) > 1
    assert len(asked) <= len(moments) / 1000 * 1.2, len(asked)
