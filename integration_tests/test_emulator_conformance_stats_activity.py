"""The emulator's statistics and email activity endpoints answer as SendGrid's OpenAPI spec says."""

import datetime as dt

import pytest
import requests
from openapi_core.validation.response.exceptions import ResponseValidationError

from integration_tests.conformance import fetch_and_validate, validate
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator
from sendgrid_emulator.secrets_guard import register_config

AUTH = {"Authorization": f"Bearer {FULL_ACCESS_KEY}"}


@pytest.fixture(scope="module")
def emulator():
    with Emulator(size=30, seed=5, counts={"categories": 12, "messages": 40}, families=["stats", "activity"]) as running:
        # These tests call the emulator with the key themselves: it is the API host, not a leak.
        register_config({"api_base_url": running.url})
        yield running


def week_ago():
    return (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=7)).isoformat()


@pytest.mark.parametrize("path", ["/v3/stats", "/v3/mailbox_providers/stats", "/v3/browsers/stats", "/v3/devices/stats", "/v3/geo/stats"])
def test_paged_stats_conform_and_page_by_offset_over_dates(emulator, path):
    params = {"start_date": week_ago(), "aggregated_by": "day"}
    whole = fetch_and_validate(emulator, "GET", path, {**params, "limit": 500}).json()
    first = fetch_and_validate(emulator, "GET", path, {**params, "limit": 5, "offset": 0}).json()
    rest = fetch_and_validate(emulator, "GET", path, {**params, "limit": 5, "offset": 5}).json()
    assert len(whole) == 8 and first + rest == whole
    assert [day["date"] for day in whole] == sorted(day["date"] for day in whole)


def test_client_and_category_stats_conform(emulator):
    fetch_and_validate(emulator, "GET", "/v3/clients/stats", {"start_date": week_ago(), "aggregated_by": "day"})
    names = [c["category"] for c in fetch_and_validate(emulator, "GET", "/v3/categories", {"limit": 50}).json()]
    body = fetch_and_validate(emulator, "GET", "/v3/categories/stats",
                              {"start_date": week_ago(), "categories": names[:10], "aggregated_by": "day"}).json()
    assert {entry["name"] for day in body for entry in day["stats"]} <= set(names[:10])


def test_categories_page_by_offset_and_filter_by_prefix(emulator):
    everything = fetch_and_validate(emulator, "GET", "/v3/categories", {"limit": 50}).json()
    page = fetch_and_validate(emulator, "GET", "/v3/categories", {"limit": 5, "offset": 10}).json()
    assert len(everything) == 12 and page == everything[10:12]
    assert fetch_and_validate(emulator, "GET", "/v3/categories", {"category": "receipts"}).json() == [{"category": "receipts/orders"}]


def test_weekly_aggregation_sums_the_days(emulator):
    start = week_ago()
    daily = fetch_and_validate(emulator, "GET", "/v3/stats", {"start_date": start, "aggregated_by": "day"}).json()
    weekly = fetch_and_validate(emulator, "GET", "/v3/stats", {"start_date": start, "aggregated_by": "week"}).json()
    total = lambda days: sum(day["stats"][0]["metrics"]["delivered"] for day in days if day["stats"])  # noqa: E731
    assert total(weekly) == total(daily) and len(weekly) < len(daily)


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/v3/stats", {}, "start_date"),
        ("/v3/stats", {"start_date": "01/02/2024"}, "start_date"),
        ("/v3/stats", {"start_date": "2024-02-01", "end_date": "2024-01-01"}, "end_date"),
        ("/v3/browsers/stats", {"start_date": "2024-02-01", "aggregated_by": "hour"}, "aggregated_by"),
        ("/v3/categories/stats", {"start_date": "2024-02-01"}, "categories"),
        ("/v3/categories/stats", {"start_date": "2024-02-01", "categories": [f"c{i}" for i in range(11)]}, "categories"),
        ("/v3/geo/stats", {"start_date": "2024-02-01", "country": "FR"}, "country"),
    ],
)
def test_bad_stats_parameters_are_a_400_like_sendgrids(emulator, path, params, field):
    response = requests.get(emulator.url + path, params=params, headers=AUTH, timeout=10)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_messages_conform_and_are_capped_at_the_limit(emulator):
    query = 'last_event_time BETWEEN TIMESTAMP "2000-01-01T00:00:00Z" AND TIMESTAMP "2100-01-01T00:00:00Z"'
    everything = fetch_and_validate(emulator, "GET", "/v3/messages", {"query": query, "limit": 1000}).json()["messages"]
    capped = fetch_and_validate(emulator, "GET", "/v3/messages", {"query": query, "limit": 7}).json()["messages"]
    assert len(everything) == 40 and capped == everything[:7]
    moment = everything[3]["last_event_time"]
    exact = f'last_event_time BETWEEN TIMESTAMP "{moment}" AND TIMESTAMP "{moment}"'
    inclusive = fetch_and_validate(emulator, "GET", "/v3/messages", {"query": exact, "limit": 1000}).json()["messages"]
    assert inclusive and all(m["last_event_time"] == moment for m in inclusive)


@pytest.mark.parametrize("params", [{"query": 'status="delivered"'}, {"query": "last_event_time BETWEEN 1 AND 2"}, {},
                                    {"query": 'last_event_time BETWEEN TIMESTAMP "2024-01-01T00:00:00Z" AND TIMESTAMP "2024-01-02T00:00:00Z"', "limit": 1001}])
def test_messages_answer_400_to_what_they_cannot_parse(emulator, params):
    response = requests.get(emulator.url + "/v3/messages", params=params, headers=AUTH, timeout=10)
    assert response.status_code == 400
    if "query" in params and "limit" not in params:
        validate(emulator, response)
        assert response.json()["errors"][0]["message"].startswith("invalid syntax")


def test_messages_without_the_add_on_are_a_403(emulator):
    query = 'last_event_time BETWEEN TIMESTAMP "2024-01-01T00:00:00Z" AND TIMESTAMP "2024-01-02T00:00:00Z"'
    with Emulator(size=5, families=["activity"], products=[]) as no_add_on:
        register_config({"api_base_url": no_add_on.url})
        response = requests.get(no_add_on.url + "/v3/messages", params={"query": query}, headers=AUTH, timeout=10)
    assert response.status_code == 403
    emulator.add_key("SG.no-messages", ["stats.global.read"])
    response = requests.get(emulator.url + "/v3/messages", params={"query": query},
                            headers={"Authorization": "Bearer SG.no-messages"}, timeout=10)
    assert response.status_code == 403


def test_the_validator_rejects_a_message_that_breaks_the_spec(emulator):
    """Proves the conformance checks can fail: a message without msg_id must not validate."""
    query = 'last_event_time BETWEEN TIMESTAMP "2000-01-01T00:00:00Z" AND TIMESTAMP "2100-01-01T00:00:00Z"'
    response = fetch_and_validate(emulator, "GET", "/v3/messages", {"query": query, "limit": 1})
    response._content = b'{"messages": [{"subject": "no id"}]}'
    with pytest.raises(ResponseValidationError):
        validate(emulator, response)
