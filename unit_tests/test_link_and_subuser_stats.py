"""Link click stats of single sends and automations, and the subuser streams (daily and monthly stats,
reputations): the requests they make, the records and state they emit, and when they are skipped."""

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker

from unit_tests.builders import (
    ALL_SCOPES,
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

TODAY = "2024-03-01"  # the frozen "now" is 2024-03-01T00:00:01Z
SUBUSER_SCOPES = ["subusers.stats.read", "subusers.stats.monthly.read", "subusers.reputations.read"]
SS_A, SS_B = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
AUTOMATION = "33333333-3333-4333-8333-333333333333"


@pytest.fixture(autouse=True)
def monthly_windows_see_the_frozen_now(monkeypatch, frozen_now):
    monkeypatch.setattr("source_sendgrid.streams.subuser_stats.utc_now", lambda: frozen_now)


def scopes(*extra):
    return scopes_response(ALL_SCOPES + SUBUSER_SCOPES + list(extra))


def asked_once(http, *requests):
    """HttpMocker used as a context manager does not check that each mocked request was made: this does
    (a request equal to a mocked one stands for it)."""
    for request in requests:
        matched = [m.actual_number_of_matches for m in http._get_matchers() if m.request == request]
        assert matched == [1], f"{request} was mocked {len(matched)} time(s) and asked for {sum(matched)} time(s), not once"


def states_of(output):
    return [m.state.stream.stream_state.__dict__ for m in output.state_messages]


def link(url, location, clicks, **more):
    return {"url": url, "url_location": location, "clicks": clicks, **more}


def links_page(results, next_token=None):
    metadata = {"self": "https://api.sendgrid.com/v3/marketing/stats/singlesends/x/links?page_size=50"}
    if next_token:
        metadata["next"] = f"https://api.sendgrid.com/v3/marketing/stats/singlesends/x/links?page_size=50&page_token={next_token}"
    return json_response({"results": results, "total_clicks": sum(r["clicks"] for r in results), "_metadata": metadata})


def stats_row(singlesend_id, variation="all", phase="all"):
    return {"id": singlesend_id, "ab_variation": variation, "ab_phase": phase, "aggregation": "total", "stats": {"clicks": 1}}


# --- link stats ----------------------------------------------------------------------------------

def test_given_an_ab_single_send_in_three_stats_rows_when_link_stats_are_read_then_its_links_are_asked_for_once_and_pages_follow_the_token():
    all_view = {"ab_variation": "all", "ab_phase": "all"}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(api_request("/v3/marketing/stats/singlesends", {"page_size": 50}),
                 json_response({"results": [stats_row(SS_A), stats_row(SS_A, "v1", "test"), stats_row(SS_A, "v2", "send"),
                                            stats_row(SS_B)], "_metadata": {}}))
        http.get(api_request(f"/v3/marketing/stats/singlesends/{SS_A}/links", {"page_size": 50}),
                 links_page([link("https://example.com/", 0, 4, **all_view), link("https://example.com/shoes", 1, 2, **all_view)], "tok2"))
        http.get(api_request(f"/v3/marketing/stats/singlesends/{SS_A}/links", {"page_size": 50, "page_token": "tok2"}),
                 links_page([link("https://example.com/", 2, 1, **all_view)]))
        http.get(api_request(f"/v3/marketing/stats/singlesends/{SS_B}/links", {"page_size": 50}), links_page([]))
        output = run_read(config(), "singlesend_link_stats")
        asked_once(http, api_request(f"/v3/marketing/stats/singlesends/{SS_A}/links", {"page_size": 50}),
                   api_request(f"/v3/marketing/stats/singlesends/{SS_A}/links", {"page_size": 50, "page_token": "tok2"}),
                   api_request(f"/v3/marketing/stats/singlesends/{SS_B}/links", {"page_size": 50}))
    assert not output.errors
    # The same URL at the top and the bottom of the message: two rows, told apart by url_location.
    assert records(output) == [
        {"url": "https://example.com/", "url_location": 0, "clicks": 4, **all_view, "singlesend_id": SS_A},
        {"url": "https://example.com/shoes", "url_location": 1, "clicks": 2, **all_view, "singlesend_id": SS_A},
        {"url": "https://example.com/", "url_location": 2, "clicks": 1, **all_view, "singlesend_id": SS_A},
    ]


def test_given_a_single_send_deleted_after_its_stats_were_listed_when_link_stats_are_read_then_its_404_is_no_links_and_the_next_is_read():
    all_view = {"ab_variation": "all", "ab_phase": "all"}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(api_request("/v3/marketing/stats/singlesends", {"page_size": 50}),
                 json_response({"results": [stats_row(SS_A), stats_row(SS_B)], "_metadata": {}}))
        http.get(api_request(f"/v3/marketing/stats/singlesends/{SS_A}/links", {"page_size": 50}), error_response(404, "not found"))
        http.get(api_request(f"/v3/marketing/stats/singlesends/{SS_B}/links", {"page_size": 50}),
                 links_page([link("https://example.com/", 0, 3, **all_view)]))
        output = run_read(config(), "singlesend_link_stats")
        asked_once(http, api_request(f"/v3/marketing/stats/singlesends/{SS_B}/links", {"page_size": 50}))
    assert not output.errors
    assert [r["singlesend_id"] for r in records(output)] == [SS_B]


def test_given_automation_stats_per_step_when_automation_link_stats_are_read_then_each_automation_is_read_once_with_its_id_on_every_row():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(api_request("/v3/marketing/stats/automations", {"page_size": 50}),
                 json_response({"results": [{"id": AUTOMATION, "aggregation": "total", "step_id": step, "stats": {}}
                                            for step in ("all", "s1", "s2")], "_metadata": {}}))
        http.get(api_request(f"/v3/marketing/stats/automations/{AUTOMATION}/links", {"page_size": 50}),
                 links_page([link("https://example.com/", 0, 5, step_id="all"), link("https://example.com/", 1, 2, step_id="all")]))
        output = run_read(config(), "automation_link_stats")
        asked_once(http, api_request(f"/v3/marketing/stats/automations/{AUTOMATION}/links", {"page_size": 50}))
    assert not output.errors
    assert records(output) == [
        {"url": "https://example.com/", "url_location": 0, "clicks": 5, "step_id": "all", "automation_id": AUTOMATION},
        {"url": "https://example.com/", "url_location": 1, "clicks": 2, "step_id": "all", "automation_id": AUTOMATION},
    ]


def test_given_a_key_without_the_automation_scope_when_automation_link_stats_are_read_then_the_stream_is_skipped_without_a_request():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response([s for s in ALL_SCOPES if s != "marketing.automation.read"]))
        output = run_read(config(), "automation_link_stats", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream automation_link_stats: the API key lacks the scope marketing.automation.read")


# --- subuser stats --------------------------------------------------------------------------------

def subusers_list(names):
    return json_response([{"id": 5000 + i, "username": name, "email": f"{name}@example.com", "disabled": False}
                          for i, name in enumerate(names)])


def subusers_request():
    return api_request("/v3/subusers", {"limit": 100, "offset": 0, "include_region": "true"})


def subuser_days(start, names, end=TODAY, offset=0):
    return api_request("/v3/subusers/stats", {"aggregated_by": "day", "start_date": start, "end_date": end,
                                              "limit": 500, "offset": offset, "subusers": names})


def subuser_day(date, *names, delivered=1):
    return {"date": date, "stats": [{"type": "subuser", "name": name, "metrics": {"delivered": delivered, "opens": 0}}
                                    for name in names]}


def test_given_23_subusers_when_subuser_stats_are_read_then_groups_of_10_are_named_and_each_date_and_subuser_is_one_row():
    names = [f"sub{i:02d}" for i in range(23)]
    groups = [names[0:10], names[10:20], names[20:23]]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(subusers_request(), subusers_list(names))
        for group in groups:
            http.get(subuser_days("2024-01-01", group), json_response([subuser_day("2024-02-01", *group), {"date": "2024-02-02", "stats": []}]))
        output = run_read(config(), "subuser_stats", SyncMode.incremental)
        asked_once(http, *(subuser_days("2024-01-01", group) for group in groups))
    assert not output.errors
    assert sorted(r["name"] for r in records(output)) == names
    assert records(output)[0] == {"date": "2024-02-01", "name": "sub00", "delivered": 1, "opens": 0}
    # The window counts as read only after its last group, so a killed sync asks for it again: no state before it.
    assert states_of(output) == [{"date": "2024-03-01T00:00:00Z"}]


def test_given_a_state_when_subuser_stats_are_read_incrementally_then_three_trailing_days_are_read_again():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(subusers_request(), subusers_list(["sub"]))
        http.get(subuser_days("2024-02-26", ["sub"]), json_response([subuser_day("2024-02-26", "sub", delivered=9)]))
        output = run_read(config(), "subuser_stats", SyncMode.incremental, state("subuser_stats", {"date": "2024-02-28T00:00:00Z"}))
        asked_once(http, subuser_days("2024-02-26", ["sub"]))
    assert not output.errors
    assert records(output) == [{"date": "2024-02-26", "name": "sub", "delivered": 9, "opens": 0}]


@pytest.mark.parametrize("stream", ["subuser_stats", "subuser_reputations"])
def test_given_an_account_that_is_not_a_parent_when_a_stream_needing_the_subuser_list_is_read_then_it_is_skipped_with_a_warning(stream):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(subusers_request(), error_response(403, "access forbidden"))
        output = run_read(config(), stream, expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs(f"Skipping stream {stream}: it needs the names listed by stream subusers, which could not be read")


def month_request(month, offset=0):
    return api_request("/v3/subusers/stats/monthly", {"date": month, "limit": 500, "offset": offset})


def month_body(month, *names):
    return json_response({"date": month, "stats": [
        {"first_name": "Ann", "last_name": "Doe", "name": name, "type": "subuser", "metrics": {"delivered": 3}} for name in names]})


def test_given_a_start_in_january_when_monthly_stats_are_read_then_each_month_is_asked_for_by_its_first_day_until_an_empty_page():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(month_request("2024-01-01"), month_body("2024-01-01", "a", "b"))
        # Two rows where 500 were asked for: SendGrid documents no largest page, so the next page is asked for.
        http.get(month_request("2024-01-01", offset=2), month_body("2024-01-01", "c"))
        http.get(month_request("2024-01-01", offset=3), month_body("2024-01-01"))
        http.get(month_request("2024-02-01"), month_body("2024-02-01"))
        http.get(month_request("2024-03-01"), month_body("2024-03-01", "a"))
        http.get(month_request("2024-03-01", offset=1), month_body("2024-03-01"))
        output = run_read(config(), "subuser_monthly_stats", SyncMode.incremental)
        asked_once(http, month_request("2024-01-01"), month_request("2024-01-01", offset=2), month_request("2024-01-01", offset=3),
                   month_request("2024-02-01"), month_request("2024-03-01"), month_request("2024-03-01", offset=1))
    assert not output.errors
    assert [(r["date"], r["name"]) for r in records(output)] == [
        ("2024-01-01", "a"), ("2024-01-01", "b"), ("2024-01-01", "c"), ("2024-03-01", "a")]
    assert records(output)[0] == {"date": "2024-01-01", "name": "a", "first_name": "Ann", "last_name": "Doe", "delivered": 3}
    assert states_of(output) == [{"date": "2024-01-01T00:00:00Z"}, {"date": "2024-02-01T00:00:00Z"}, {"date": "2024-03-01T00:00:00Z"}]


def test_given_empty_months_before_the_first_row_when_monthly_stats_are_read_without_state_then_the_first_checkpoint_follows_it():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(month_request("2024-01-01"), month_body("2024-01-01"))
        http.get(month_request("2024-02-01"), month_body("2024-02-01", "a"))
        http.get(month_request("2024-02-01", offset=1), month_body("2024-02-01"))
        http.get(month_request("2024-03-01"), month_body("2024-03-01"))
        output = run_read(config(), "subuser_monthly_stats", SyncMode.incremental)
    assert [(r["date"], r["name"]) for r in records(output)] == [("2024-02-01", "a")]
    # No state for January: a read resumed from it would read every month again.
    assert states_of(output) == [{"date": "2024-02-01T00:00:00Z"}, {"date": "2024-03-01T00:00:00Z"}]


def test_given_no_row_in_any_month_when_monthly_stats_are_read_without_state_then_one_checkpoint_at_the_last_month():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        for month in ("2024-01-01", "2024-02-01", "2024-03-01"):
            http.get(month_request(month), month_body(month))
        output = run_read(config(), "subuser_monthly_stats", SyncMode.incremental)
    assert records(output) == [] and not output.errors
    assert states_of(output) == [{"date": "2024-03-01T00:00:00Z"}]


@pytest.mark.parametrize("cursor, months", [
    # The month of the state was read before it ended: it is read again, with the months after it.
    ("2024-01-01T00:00:00Z", ["2024-01-01", "2024-02-01", "2024-03-01"]),
    ("2024-02-01T00:00:00Z", ["2024-02-01", "2024-03-01"]),
    # On the first of March, February's last days still collect late events: February is read again too.
    ("2024-03-01T00:00:00Z", ["2024-02-01", "2024-03-01"]),
])
def test_given_a_state_when_monthly_stats_are_read_incrementally_then_the_state_month_and_the_trailing_days_month_are_read_again(cursor, months):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        for month in months:
            http.get(month_request(month), month_body(month))
        output = run_read(config(), "subuser_monthly_stats", SyncMode.incremental, state("subuser_monthly_stats", {"date": cursor}))
        asked_once(http, *(month_request(month) for month in months))
    assert not output.errors
    assert states_of(output)[-1] == {"date": "2024-03-01T00:00:00Z"}


def test_given_an_account_that_is_not_a_parent_when_monthly_stats_are_read_then_the_stream_is_skipped_with_a_warning():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(month_request("2024-01-01"), error_response(403, "access forbidden"))
        output = run_read(config(), "subuser_monthly_stats", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream subuser_monthly_stats: SendGrid answered 403")


def test_given_12_subusers_when_reputations_are_read_then_they_are_asked_for_10_usernames_at_a_time():
    names = [f"sub{i:02d}" for i in range(12)]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(subusers_request(), subusers_list(names))
        for group in (names[:10], names[10:]):
            http.get(api_request("/v3/subusers/reputations", {"usernames": group}),
                     json_response([{"username": name, "reputation": 99.5} for name in group]))
        output = run_read(config(), "subuser_reputations")
        asked_once(http, *(api_request("/v3/subusers/reputations", {"usernames": group}) for group in (names[:10], names[10:])))
    assert not output.errors
    assert records(output) == [{"username": name, "reputation": 99.5} for name in names]


def test_given_a_key_without_the_reputations_scope_when_reputations_are_read_then_the_stream_is_skipped_without_a_request():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(ALL_SCOPES))
        output = run_read(config(), "subuser_reputations", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream subuser_reputations: the API key lacks the scope subusers.reputations.read")


def test_given_the_category_list_refused_when_category_stats_are_read_then_the_stream_is_skipped_like_the_subuser_streams():
    # category_stats names its categories the way subuser_stats names subusers (stats.NamedInRequests): a list
    # it cannot read skips it with a warning, instead of ending as if the account had no categories.
    with HttpMocker() as http:
        http.get(scopes_request(), scopes())
        http.get(api_request("/v3/categories", {"limit": 100, "offset": 0}), error_response(403, "access forbidden"))
        output = run_read(config(), "category_stats", expecting_exception=True)
    assert records(output) == [] and ended_with_nothing_readable(output)
    assert output.is_in_logs("Skipping stream category_stats: it needs the names listed by stream categories, which could not be read")
