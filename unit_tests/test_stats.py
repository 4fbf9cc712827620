"""The email statistics streams: day windows, flattening, trailing re-read, category batches."""

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker

from unit_tests.builders import (
    ALL_SCOPES,
    api_request,
    config,
    ended_with_nothing_readable,
    json_response,
    records,
    run_read,
    scopes_request,
    scopes_response,
    state,
)

TODAY = "2024-03-01"  # the frozen "now" is 2024-03-01T00:00:01Z


def days(path, start, end=TODAY, paged=True, offset=0, **extra):
    query = {"aggregated_by": "day", "start_date": start, "end_date": end, **extra}
    if paged:
        query.update(limit=500, offset=offset)
    return api_request(path, query)


def day(date, *entries):
    return {"date": date, "stats": list(entries)}


def entry(kind, name, **metrics):
    return {"type": kind, "name": name, "metrics": metrics}


def states_of(output):
    return [m.state.stream.stream_state.__dict__ for m in output.state_messages]


def test_given_global_stats_when_read_then_dates_go_out_as_days_and_each_day_is_one_row_of_columns():
    body = [day("2024-01-01", {"metrics": {"delivered": 5, "opens": 2}}), day("2024-01-02", {"metrics": {"delivered": 0, "opens": 0}})]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(days("/v3/stats", "2024-01-01"), json_response(body))
        output = run_read(config(), "global_stats")
    assert not output.errors
    assert records(output) == [{"date": "2024-01-01", "delivered": 5, "opens": 2}, {"date": "2024-01-02", "delivered": 0, "opens": 0}]


def test_given_segmented_stats_when_read_then_each_date_type_and_name_is_one_row():
    body = [day("2024-02-01", entry("browser", "Chrome", clicks=3, unique_clicks=2), entry("browser", "Firefox", clicks=1, unique_clicks=1)),
            day("2024-02-02")]  # a day without activity has no rows
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(days("/v3/browsers/stats", "2024-01-01"), json_response(body))
        output = run_read(config(), "browser_stats")
    assert records(output) == [
        {"date": "2024-02-01", "type": "browser", "name": "Chrome", "clicks": 3, "unique_clicks": 2},
        {"date": "2024-02-01", "type": "browser", "name": "Firefox", "clicks": 1, "unique_clicks": 1},
    ]


def test_given_windows_of_30_days_when_read_incrementally_then_bounds_are_inclusive_days_and_state_follows_each_window():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(days("/v3/mailbox_providers/stats", "2024-01-01", "2024-01-30"), json_response([day("2024-01-30", entry("mailbox_provider", "Gmail", delivered=9))]))
        http.get(days("/v3/mailbox_providers/stats", "2024-01-31", "2024-02-29"), json_response([]))
        http.get(days("/v3/mailbox_providers/stats", "2024-03-01", "2024-03-01"), json_response([]))
        output = run_read(config(window_days=30), "mailbox_provider_stats", SyncMode.incremental)
    assert not output.errors and len(records(output)) == 1
    assert states_of(output)[0] == {"date": "2024-01-30T00:00:00Z"}
    assert states_of(output)[-1] == {"date": "2024-03-01T00:00:00Z"}


def test_given_a_state_when_read_incrementally_then_at_least_three_trailing_days_are_read_again():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        # The cursor day and the two before it are re-read though lookback_days is 0: their counts still change.
        http.get(days("/v3/stats", "2024-02-26"), json_response([day("2024-02-26", {"metrics": {"opens": 7}})]))
        output = run_read(config(lookback_days=0), "global_stats", SyncMode.incremental, state("global_stats", {"date": "2024-02-28T00:00:00Z"}))
    assert records(output) == [{"date": "2024-02-26", "opens": 7}]


def test_given_a_longer_lookback_in_the_config_when_read_incrementally_then_it_wins_over_the_stats_minimum():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(days("/v3/clients/stats", "2024-02-19", paged=False), json_response([]))
        output = run_read(config(lookback_days=10), "client_stats", SyncMode.incremental, state("client_stats", {"date": "2024-02-28T00:00:00Z"}))
    assert not output.errors


def test_given_more_than_500_days_when_read_then_stats_pages_advance_by_offset():
    first = [day(f"2022-{m:02d}-01", entry("province", "TX", opens=1)) for m in range(1, 13)] * 42  # 504 entries
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(days("/v3/geo/stats", "2022-01-01", offset=0), json_response(first[:500]))
        http.get(days("/v3/geo/stats", "2022-01-01", offset=500), json_response(first[500:]))
        output = run_read(config(start_date="2022-01-01T00:00:00Z"), "geo_stats")
    assert len(records(output)) == 504 and not output.errors


def test_given_23_categories_when_category_stats_are_read_then_they_are_asked_for_in_groups_of_10_and_state_waits_for_the_last():
    names = [f"cat {i:02d}" for i in range(23)]
    groups = [names[0:10], names[10:20], names[20:23]]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/categories", {"limit": 100, "offset": 0}), json_response([{"category": n} for n in names]))
        for group in groups:
            body = [day("2024-02-01", *(entry("category", n, delivered=1) for n in group))]
            http.get(days("/v3/categories/stats", "2024-01-01", paged=False, categories=group), json_response(body))
        output = run_read(config(), "category_stats", SyncMode.incremental)
    assert not output.errors
    assert sorted(r["name"] for r in records(output)) == names
    # The window counts as read only after its last group, so a killed sync asks again: no state before it.
    assert states_of(output) == [{"date": "2024-03-01T00:00:00Z"}]


def test_given_the_eu_region_when_geo_stats_are_read_then_the_stream_is_skipped_as_us_only():
    with HttpMocker() as http:
        http.get(scopes_request("https://api.eu.sendgrid.com"), scopes_response())
        output = run_read(config(region="eu"), "geo_stats", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream geo_stats: SendGrid serves this endpoint only from the global")


def test_given_a_key_without_category_stats_scope_when_read_then_no_category_is_listed_and_the_stream_is_skipped():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response([s for s in ALL_SCOPES if s != "categories.stats.read"]))
        output = run_read(config(), "category_stats", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream category_stats: the API key lacks the scope categories.stats.read")
