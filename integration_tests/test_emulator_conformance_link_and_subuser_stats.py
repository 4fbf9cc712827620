"""The emulator's link click stats and subuser statistics endpoints answer as SendGrid's OpenAPI spec says.

The spec contradicts itself on the link stats as on the single send stats (see
test_emulator_conformance_marketing.py): `ab_variation` and `step_id` are typed `format: uuid`, yet their
descriptions say they read "all" when the request does not group by them, as the emulator answers. Those
bodies are validated with a uuid in place of "all".
"""

import datetime as dt
import json

import pytest
import requests

from integration_tests.conformance import fetch_and_validate, validate
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator
from sendgrid_emulator.secrets_guard import register_config

AUTH = {"Authorization": f"Bearer {FULL_ACCESS_KEY}"}
SOME_UUID = "00000000-0000-4000-8000-000000000000"
UNKNOWN_ID = "00000000-0000-4000-8000-00000000abcd"


@pytest.fixture(scope="module")
def emulator():
    # 60 links a message: more than the largest page (50) of the link stats.
    with Emulator(size=60, seed=5, counts={"links_per_message": 60},
                  families=["marketing", "account", "subuser_stats"]) as running:
        yield running


@pytest.fixture(autouse=True)
def emulator_is_the_api_host(emulator):
    """These tests send the key to the emulator on purpose: it stands for the API host."""
    register_config({"api_base_url": emulator.url})


def get(emulator, path, params=None):
    return requests.get(f"{emulator.url}{path}", params=params, headers=AUTH, timeout=10)


def validated_with_all_as_uuid(emulator, path, params=None):
    """The body as sent, after validating it with "all" written as a uuid where the spec demands one."""
    response = get(emulator, path, params)
    body = response.json()
    text = json.dumps(body).replace('"ab_variation": "all"', f'"ab_variation": "{SOME_UUID}"')
    response._content = text.replace('"step_id": "all"', f'"step_id": "{SOME_UUID}"').encode()
    validate(emulator, response)
    return body


def ids(emulator, path, ids_param):
    rows = get(emulator, path, {"page_size": 50}).json()["results"]
    return sorted({row["id"] for row in rows})


def test_singlesend_link_stats_conform_page_by_token_and_tell_one_url_apart_by_its_place(emulator):
    singlesend = ids(emulator, "/v3/marketing/stats/singlesends", "singlesend_ids")[0]
    path = f"/v3/marketing/stats/singlesends/{singlesend}/links"
    first = validated_with_all_as_uuid(emulator, path, {"page_size": 50})
    assert len(first["results"]) == 50 and "next" in first["_metadata"]
    token = first["_metadata"]["next"].split("page_token=")[1]
    rest = validated_with_all_as_uuid(emulator, path, {"page_size": 50, "page_token": token})
    rows = first["results"] + rest["results"]
    assert "next" not in rest["_metadata"] and first["total_clicks"] == sum(row["clicks"] for row in rows)
    assert all(row["ab_variation"] == "all" and row["ab_phase"] == "all" and row["clicks"] >= 1 for row in rows)
    places = {}
    for row in rows:
        places.setdefault(row["url"], []).append(row["url_location"])
    assert any(len(at) == 2 for at in places.values()), "no URL at two places: the seed proves nothing"
    assert get(emulator, path, {"page_size": 51}).status_code == 400


def test_singlesend_link_stats_group_by_variation_and_phase_and_filter_on_them(emulator):
    singlesends = get(emulator, "/v3/marketing/stats/singlesends", {"page_size": 50}).json()["results"]
    variation = next(row for row in singlesends if row["ab_variation"] != "all")
    path = f"/v3/marketing/stats/singlesends/{variation['id']}/links"
    grouped = fetch_and_validate(emulator, "GET", path, {"group_by": "ab_variation,ab_phase", "page_size": 50}).json()
    assert {row["ab_phase"] for row in grouped["results"]} <= {"test", "send"}
    assert grouped["total_clicks"] == get(emulator, path, {"page_size": 50}).json()["total_clicks"]
    only = fetch_and_validate(emulator, "GET", path, {"ab_variation_id": variation["ab_variation"], "page_size": 50}).json()
    assert only["results"] and {row["ab_variation"] for row in only["results"]} == {variation["ab_variation"]}
    assert get(emulator, path, {"group_by": "step_id"}).status_code == 400
    assert get(emulator, path, {"ab_phase_id": "later"}).status_code == 400


def test_automation_link_stats_conform_and_group_by_step(emulator):
    automation = ids(emulator, "/v3/marketing/stats/automations", "automation_ids")[0]
    path = f"/v3/marketing/stats/automations/{automation}/links"
    summed = validated_with_all_as_uuid(emulator, path, {"page_size": 50})
    assert {row["step_id"] for row in summed["results"]} == {"all"} and "next" in summed["_metadata"]
    by_step = fetch_and_validate(emulator, "GET", path, {"group_by": "step_id", "page_size": 50}).json()
    steps = {row["step_id"] for row in by_step["results"]}
    assert len(steps) == 2 and by_step["total_clicks"] == summed["total_clicks"]
    one = sorted(steps)[0]
    filtered = fetch_and_validate(emulator, "GET", path, {"group_by": "step_id", "step_ids": one, "page_size": 50}).json()
    assert {row["step_id"] for row in filtered["results"]} == {one}


@pytest.mark.parametrize("path", [f"/v3/marketing/stats/singlesends/{UNKNOWN_ID}/links",
                                  f"/v3/marketing/stats/automations/{UNKNOWN_ID}/links"])
def test_link_stats_of_an_unknown_id_answer_404_as_the_spec_declares(emulator, path):
    assert fetch_and_validate(emulator, "GET", path).status_code == 404


def subuser_names(emulator):
    return [s["username"] for s in get(emulator, "/v3/subusers", {"limit": 500}).json()]


def days_ago(days):
    return (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)).isoformat()


def test_subuser_stats_conform_name_at_most_10_subusers_and_page_by_offset_over_dates(emulator):
    names = subuser_names(emulator)
    params = {"subusers": names[:10], "start_date": days_ago(99), "aggregated_by": "day"}
    whole = fetch_and_validate(emulator, "GET", "/v3/subusers/stats", {**params, "limit": 500}).json()
    first = fetch_and_validate(emulator, "GET", "/v3/subusers/stats", {**params, "limit": 50, "offset": 0}).json()
    rest = fetch_and_validate(emulator, "GET", "/v3/subusers/stats", {**params, "limit": 50, "offset": 50}).json()
    assert len(whole) == 100 and len(first) == 50 and first + rest == whole
    assert {entry["name"] for day in whole for entry in day["stats"]} == set(names[:10])
    assert all(entry["type"] == "subuser" for day in whole for entry in day["stats"])
    assert get(emulator, "/v3/subusers/stats", {**params, "subusers": names[:11]}).status_code == 400
    assert get(emulator, "/v3/subusers/stats", {"start_date": "2020-01-01"}).status_code == 400


def test_subuser_monthly_stats_conform_default_to_5_rows_sorted_by_delivered(emulator):
    month = days_ago(0)
    first = fetch_and_validate(emulator, "GET", "/v3/subusers/stats/monthly", {"date": month}).json()
    assert first["date"] == month[:8] + "01" and len(first["stats"]) == 5
    everyone = fetch_and_validate(emulator, "GET", "/v3/subusers/stats/monthly", {"date": month, "limit": 100}).json()["stats"]
    delivered = [row["metrics"]["delivered"] for row in everyone]
    assert delivered == sorted(delivered, reverse=True) and everyone[:5] == first["stats"]
    page = fetch_and_validate(emulator, "GET", "/v3/subusers/stats/monthly", {"date": month, "limit": 5, "offset": 5}).json()
    assert page["stats"] == everyone[5:10]
    assert get(emulator, "/v3/subusers/stats/monthly", {"date": month, "sort_by_metric": "processed"}).status_code == 400
    assert get(emulator, "/v3/subusers/stats/monthly").status_code == 400


def test_subuser_reputations_conform_and_filter_on_usernames(emulator):
    names = subuser_names(emulator)
    everyone = fetch_and_validate(emulator, "GET", "/v3/subusers/reputations").json()
    assert sorted(r["username"] for r in everyone) == sorted(names)
    some = fetch_and_validate(emulator, "GET", "/v3/subusers/reputations", {"usernames": names[:3]}).json()
    assert sorted(r["username"] for r in some) == sorted(names[:3])


@pytest.mark.parametrize("path, params", [
    ("/v3/subusers/stats", {"subusers": "subuser0", "start_date": "2020-01-01"}),
    ("/v3/subusers/stats/monthly", {"date": "2024-01-01"}),
    ("/v3/subusers/reputations", {}),
])
def test_an_account_that_is_not_a_parent_is_refused_with_403(path, params):
    with Emulator(size=20, seed=1, families=["account", "subuser_stats"], products=[]) as other:
        register_config({"api_base_url": other.url})
        assert get(other, path, params).status_code == 403
