"""The shared rate-limit budget, and reading several streams at once (statuses, failures, order)."""

import re
import threading

from airbyte_cdk.models import AirbyteStreamStatus, SyncMode
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.mock_http import HttpMocker
import pytest
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction
from hypothesis import given
from hypothesis import strategies as st

from source_sendgrid import SourceSendgrid
from source_sendgrid.budget import RateBudget, RequestStats
from source_sendgrid.parallel import can_read_in_processes, fork_context
from source_sendgrid.windows import format_time, normalize_time, parse_time
from unit_tests.builders import api_request, config, error_response, json_response, scopes_request, scopes_response


class FakeClock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def response(status=200, remaining=None, reset=None):
    import requests

    answer = requests.Response()
    answer.status_code = status
    if remaining is not None:
        answer.headers["X-RateLimit-Remaining"] = str(remaining)
    if reset is not None:
        answer.headers["X-RateLimit-Reset"] = str(reset)
    return answer


def send(budget, answer):
    budget.acquire_call(None)
    budget.update_from_response(None, answer)


def test_given_no_rate_limit_headers_when_requests_go_out_then_nothing_waits():
    clock = FakeClock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    for _ in range(50):
        send(budget, response())
    assert clock.slept == []


def test_given_the_window_is_spent_when_the_next_request_goes_out_then_it_waits_for_the_reset_instead_of_a_429():
    clock = FakeClock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    reset = int(clock.now) + 10
    send(budget, response(remaining=2, reset=reset))
    send(budget, response(remaining=1, reset=reset))
    send(budget, response(remaining=0, reset=reset))
    assert clock.slept == []
    budget.acquire_call(None)  # the fourth request of the window
    assert len(clock.slept) == 1 and 10 <= clock.slept[0] < 10.1
    assert clock.now >= reset


def test_given_a_429_when_the_next_request_goes_out_then_it_waits_for_the_reset_seconds():
    clock = FakeClock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    send(budget, response(status=429, reset=3))  # the spec's "seconds until reset" form
    budget.acquire_call(None)
    assert len(clock.slept) == 1 and 3 <= clock.slept[0] < 3.1


def test_given_requests_in_flight_when_a_response_reports_the_remaining_count_then_they_are_counted_as_spent():
    clock = FakeClock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    reset = int(clock.now) + 5
    send(budget, response(remaining=100, reset=reset))
    others = [threading.Thread(target=budget.acquire_call, args=(None,)) for _ in range(3)]
    for other in others:  # three requests of other threads, not answered yet
        other.start()
        other.join()
    send(budget, response(remaining=3, reset=reset))  # 3 left, but 3 are still in flight: none left
    budget.acquire_call(None)
    assert len(clock.slept) == 1


def test_given_a_late_response_from_an_old_window_then_it_does_not_reopen_the_spent_window():
    clock = FakeClock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    now = int(clock.now)
    send(budget, response(remaining=0, reset=now + 10))
    send(budget, response(remaining=50, reset=now + 5))  # answered late, from the window before
    budget.acquire_call(None)
    assert len(clock.slept) == 1 and clock.slept[0] >= 10


def prepared(method, path):
    import requests

    return requests.Request(method, f"https://api.sendgrid.com{path}").prepare()


def send_to(budget, request, answer):
    budget.acquire_call(request)
    budget.update_from_response(request, answer)


def test_given_one_endpoints_window_is_spent_when_another_endpoint_is_called_then_it_does_not_wait():
    clock = FakeClock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    messages = prepared("GET", "/v3/messages?query=x&limit=1000")
    bounces = prepared("GET", "/v3/suppression/bounces?offset=0")
    send_to(budget, messages, response(remaining=0, reset=int(clock.now) + 60))
    for _ in range(20):  # bounces' own window is wide open, and its headers say so
        send_to(budget, bounces, response(remaining=500, reset=int(clock.now) + 60))
    assert clock.slept == []
    budget.acquire_call(messages)  # /v3/messages' window is still spent: its next request waits
    assert len(clock.slept) == 1 and clock.slept[0] >= 59


def test_given_a_429_on_one_endpoint_when_another_is_called_then_only_the_first_waits():
    clock = FakeClock()
    budget = RateBudget(clock=clock, sleep=clock.sleep)
    export = prepared("POST", "/v3/marketing/contacts/exports")
    send_to(budget, export, response(status=429, reset=30))
    send_to(budget, prepared("GET", "/v3/marketing/contacts/exports/0b6a6a44-77f5-4a58-a5c6-6c4a7f9ab1a2"), response())
    send_to(budget, prepared("GET", "/v3/asm/groups"), response())
    assert clock.slept == []
    budget.acquire_call(export)
    assert len(clock.slept) == 1 and clock.slept[0] >= 30


def test_every_path_the_connector_calls_is_one_endpoint_whatever_its_ids():
    from source_sendgrid.budget import endpoint_of
    from source_sendgrid.streams import ALL_STREAMS

    ids = ["17", "0b6a6a44-77f5-4a58-a5c6-6c4a7f9ab1a2", "d-2c214ac919e84170b21855cc129b4a5f", "YUBhLmNvbQ==",
           "a@example.com", "8c6e6f3a1b2d4e5f"]
    templates = {cls.path_template for cls in ALL_STREAMS} | {"/v3/scopes", "/v3/marketing/contacts/exports/{id}",
                                                             "/v3/marketing/contacts/count", "/v3/marketing/contacts/search"}
    endpoints = set()
    for template in templates:
        names = re.findall(r"{(\w+)}", template)
        seen = {endpoint_of("GET", "https://api.sendgrid.com" + template.format(**{n: i for n in names}) + "?page=2")
                for i in ids}
        assert len(seen) == 1, (template, seen)
        endpoint = seen.pop()
        assert endpoint == "GET " + re.sub(r"{\w+}", "{id}", template)
        endpoints.add(endpoint)
    assert len(endpoints) == len(templates)


@given(st.one_of(st.integers(min_value=-10, max_value=300_000_000_000), st.text(max_size=24),
                 st.floats(allow_nan=False, min_value=0, max_value=4e9), st.none()))
def test_normalize_time_fast_paths_give_what_the_general_path_gives(value):
    try:
        moment = parse_time(value)
    except (OverflowError, OSError, ValueError):
        return  # out of datetime's range: the general path raises, nothing to compare
    expected = (None if value in (None, "") else value) if moment is None else format_time(moment)
    assert normalize_time(value) == expected


def bounce(n):
    return {"created": 1704067260 + n, "email": f"b{n}@example.com", "reason": "550", "status": "5.1.1"}


def test_given_one_stream_fails_when_streams_are_read_at_once_then_the_others_finish_and_the_sync_fails_naming_it():
    catalog = (CatalogBuilder().with_stream("bounces", SyncMode.full_refresh)
               .with_stream("blocks", SyncMode.full_refresh)
               .with_stream("spam_reports", SyncMode.full_refresh).build())
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/suppression/bounces"), json_response([bounce(i) for i in range(3)]))
        http.get(api_request("/v3/suppression/blocks"), error_response(400, "invalid parameter"))
        http.get(api_request("/v3/suppression/spam_reports"), json_response([bounce(i) for i in range(5)]))
        output = read(SourceSendgrid(), config(concurrency=4), catalog, expecting_exception=True)

    by_stream = {}
    for message in output.records:
        by_stream.setdefault(message.record.stream, []).append(message.record.data["email"])
    assert by_stream == {"bounces": [f"b{i}@example.com" for i in range(3)],
                         "spam_reports": [f"b{i}@example.com" for i in range(5)]}  # each stream in its own order
    statuses = {}
    for message in output.get_message_iterator():
        if message.type == MessageType.TRACE and message.trace.stream_status:
            status = message.trace.stream_status
            statuses.setdefault(status.stream_descriptor.name, []).append(status.status)
    assert statuses["bounces"] == [AirbyteStreamStatus.STARTED, AirbyteStreamStatus.RUNNING, AirbyteStreamStatus.COMPLETE]
    assert statuses["spam_reports"] == [AirbyteStreamStatus.STARTED, AirbyteStreamStatus.RUNNING, AirbyteStreamStatus.COMPLETE]
    assert statuses["blocks"] == [AirbyteStreamStatus.STARTED, AirbyteStreamStatus.INCOMPLETE]
    errors = [m.trace.error for m in output.errors]
    assert any(e.stream_descriptor and e.stream_descriptor.name == "blocks" and "400" in e.message for e in errors)
    assert "blocks" in errors[-1].message  # the final error names the failed stream, as AbstractSource.read does


def test_given_empty_years_when_windows_are_cut_then_they_grow_stay_contiguous_and_shrink_back_after_records():
    from source_sendgrid.config import SendgridConfig
    from source_sendgrid.errors import RequestStats
    from source_sendgrid.scopes import ScopeGate
    from source_sendgrid.streams.suppressions import Bounces

    stream = Bounces(SendgridConfig.from_mapping(config(start_date="2009-01-01T00:00:00Z", window_days=180)),
                     ScopeGate(lambda: None), RequestStats())
    slices, lengths = [], []
    for window in stream.stream_slices(SyncMode.full_refresh):
        slices.append(window)
        lengths.append(window["window_end"] - window["window_start"] + 1)
        # Records only from 2012 on: earlier windows come back empty.
        stream._windows.told(5 if window["window_end"] >= 1325376000 else 0)
    assert slices[0]["window_start"] == 1230768000  # 2009-01-01
    assert slices[-1]["window_end"] == 1709251200  # a second before the frozen now
    assert all(b["window_start"] == a["window_end"] + 1 for a, b in zip(slices, slices[1:]))
    assert len(slices) < 31  # 180-day windows all the way would take 31
    assert lengths[1] == 2 * lengths[0]
    assert max(lengths) <= 32 * 180 * 86400
    assert lengths[:4] == [180 * 86400, 360 * 86400, 720 * 86400, 180 * 86400]  # back to 180 days after records


@pytest.mark.skipif(not can_read_in_processes(), reason="worker processes need fork")
def test_given_stats_shared_with_processes_when_a_worker_process_spends_the_budget_then_the_parent_counts_it_and_waits():
    clock = FakeClock()
    stats = RequestStats()
    stats.budget = RateBudget(clock=clock, sleep=clock.sleep)
    stats.share_with_processes(fork_context())
    send(stats.budget, response(remaining=2, reset=int(clock.now) + 10))

    def worker():
        for _ in range(2):
            stats.budget.acquire_call(None)
            stats.budget.update_from_response(None, None)
            stats.count(ResponseAction.SUCCESS)

    process = fork_context().Process(target=worker)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert stats.requests == 2  # counted in the worker, read in the parent
    stats.budget.acquire_call(None)  # the window's two requests were the worker's: wait for the reset
    assert len(clock.slept) == 1 and clock.slept[0] >= 10


@pytest.mark.skipif(not can_read_in_processes(), reason="worker processes need fork")
def test_given_worker_processes_when_one_spends_an_endpoints_window_then_all_wait_for_that_endpoint_only():
    clock = FakeClock()
    stats = RequestStats()
    stats.budget = RateBudget(clock=clock, sleep=clock.sleep)
    stats.share_with_processes(fork_context())
    messages = prepared("GET", "/v3/messages?query=a")
    groups = prepared("GET", "/v3/asm/groups")

    def worker():  # a worker learns both endpoints' windows; only /v3/messages' is spent
        send_to(stats.budget, messages, response(remaining=0, reset=int(clock.now) + 60))
        send_to(stats.budget, groups, response(remaining=599, reset=int(clock.now) + 60))

    process = fork_context().Process(target=worker)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    send_to(stats.budget, groups, response(remaining=598, reset=int(clock.now) + 60))
    assert clock.slept == []
    stats.budget.acquire_call(messages)  # spent in the worker: the parent waits for that window
    assert len(clock.slept) == 1 and clock.slept[0] >= 59
