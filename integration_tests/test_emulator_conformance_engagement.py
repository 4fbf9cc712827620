"""The emulator's Engagement Quality and bounce classification endpoints answer as SendGrid's OpenAPI documents
say (SEQ has a document of its own, `spec/tsg_seq_v3.json`)."""

import datetime as dt

import pytest
import requests
from openapi_core.validation.response.exceptions import ResponseValidationError

from integration_tests.conformance import SEQ_SPEC_PATH, fetch_and_validate, validate
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator
from sendgrid_emulator.secrets_guard import register_config

AUTH = {"Authorization": f"Bearer {FULL_ACCESS_KEY}"}
SUBUSERS = 25


@pytest.fixture(scope="module")
def emulator():
    with Emulator(size=20, seed=6, counts={"seq_subusers": SUBUSERS, "seq_pending_days": 2}, families=["engagement"]) as running:
        # These tests call the emulator with the key themselves: it is the API host, not a leak.
        register_config({"api_base_url": running.url})
        yield running


def day(days_ago):
    return (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days_ago)).isoformat()


def seq(emulator, path, params):
    return fetch_and_validate(emulator, "GET", path, params, spec_path=SEQ_SPEC_PATH)


def test_scores_of_a_range_conform_and_leave_out_the_days_not_computed_yet(emulator):
    response = seq(emulator, "/v3/engagementquality/scores", {"from": day(10), "to": day(0)})
    assert response.status_code == 200
    dates = [score["date"] for score in response.json()["result"]]
    # Today and yesterday are not computed yet: the other nine days are there, in order.
    assert dates == [day(n) for n in range(10, 1, -1)]
    assert any("score" not in score for score in seq(emulator, "/v3/engagementquality/scores",
                                                      {"from": day(89), "to": day(0)}).json()["result"]), \
        "no day without a score: the emulator never shows an account that was not eligible"


def test_scores_of_days_none_of_which_is_computed_are_a_202(emulator):
    response = seq(emulator, "/v3/engagementquality/scores", {"from": day(1), "to": day(0)})
    assert response.status_code == 202 and response.json() == {}


def test_scores_become_available_once_computed(emulator):
    with Emulator(size=5, seed=1, counts={"seq_pending_days": 3}, families=["engagement"]) as fresh:
        register_config({"api_base_url": fresh.url})
        assert seq(fresh, "/v3/engagementquality/scores", {"from": day(2), "to": day(0)}).status_code == 202
        assert fresh.mutate("engagement", "compute", days=1)["computed"] == [day(2)]
        answered = seq(fresh, "/v3/engagementquality/scores", {"from": day(2), "to": day(0)}).json()["result"]
        assert [score["date"] for score in answered] == [day(2)]


def test_subuser_scores_conform_and_page_by_after_key(emulator):
    whole = seq(emulator, "/v3/engagementquality/subusers/scores", {"date": day(5)}).json()
    assert len(whole["result"]) == SUBUSERS and "next_params" not in whole["_metadata"]
    pages, after = [], None
    while True:
        params = {"date": day(5), "limit": 10, **({"after_key": after} if after else {})}
        body = seq(emulator, "/v3/engagementquality/subusers/scores", params).json()
        pages.append(body["result"])
        after = body["_metadata"].get("next_params", {}).get("after_key")
        if not after:
            break
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [score for page in pages for score in page] == whole["result"]


def test_subuser_scores_of_a_day_not_computed_are_a_202_without_a_body(emulator):
    response = seq(emulator, "/v3/engagementquality/subusers/scores", {"date": day(0)})
    assert response.status_code == 202 and response.content == b""


def test_subuser_scores_of_an_account_that_is_not_a_parent_are_a_403():
    with Emulator(size=5, families=["engagement"], products=[]) as not_a_parent:
        register_config({"api_base_url": not_a_parent.url})
        response = seq(not_a_parent, "/v3/engagementquality/subusers/scores", {"date": day(5)})
        assert response.status_code == 403
        # The account's own scores are there for every account.
        assert seq(not_a_parent, "/v3/engagementquality/scores", {"from": day(5), "to": day(5)}).status_code == 200


@pytest.mark.parametrize(
    "path, params, field, message",
    [
        ("/v3/engagementquality/scores", {"to": day(0)}, "from", '"from" must be provided'),
        ("/v3/engagementquality/scores", {"from": "01/02/2024", "to": day(0)}, "from", '"from" invalid'),
        ("/v3/engagementquality/scores", {"from": day(91), "to": day(0)}, "from", '"from" cannot be more than 90 days in the past'),
        ("/v3/engagementquality/scores", {"from": day(0), "to": day(-1)}, "to", '"to" cannot be in the future'),
        ("/v3/engagementquality/scores", {"from": day(2), "to": day(3)}, "to", '"from" cannot come after "to"'),
        ("/v3/engagementquality/subusers/scores", {}, "date", '"date" must be provided'),
        ("/v3/engagementquality/subusers/scores", {"date": day(91)}, "date", '"date" cannot be more than 90 days in the past'),
        ("/v3/engagementquality/subusers/scores", {"date": day(3), "limit": "many"}, "limit", '"limit" must be a positive integer'),
        ("/v3/engagementquality/subusers/scores", {"date": day(3), "after_key": "x"}, "after_key", '"after_key" invalid'),
    ],
)
def test_bad_seq_parameters_are_the_400s_of_the_spec(emulator, path, params, field, message):
    response = requests.get(emulator.url + path, params=params, headers=AUTH, timeout=10)
    assert response.status_code == 400
    validate(emulator, response, SEQ_SPEC_PATH)
    assert response.json()["errors"][0] == {"field": field, "message": f"failed to parse request: {message}"}


def test_90_days_back_is_the_oldest_day_asked_for(emulator):
    assert seq(emulator, "/v3/engagementquality/scores", {"from": day(90), "to": day(89)}).status_code == 200


def test_bounce_classifications_conform_per_day_largest_first(emulator):
    body = fetch_and_validate(emulator, "GET", "/v3/suppression/bounces/classifications",
                              {"start_date": day(6), "end_date": day(0)}).json()
    assert body["result"] and all(day(6) <= entry["date"] <= day(0) for entry in body["result"])
    for entry in body["result"]:
        counts = [stat["count"] for stat in entry["stats"]]
        assert counts == sorted(counts, reverse=True)
    everything = fetch_and_validate(emulator, "GET", "/v3/suppression/bounces/classifications").json()["result"]
    assert len(everything) > len(body["result"])


def test_bad_bounce_classification_dates_are_a_400(emulator):
    response = requests.get(emulator.url + "/v3/suppression/bounces/classifications",
                            params={"start_date": day(1), "end_date": day(3)}, headers=AUTH, timeout=10)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "end_date"


def test_the_validator_rejects_a_score_that_breaks_the_seq_spec(emulator):
    """Proves these conformance checks can fail: a score without its user_id must not validate."""
    response = seq(emulator, "/v3/engagementquality/scores", {"from": day(5), "to": day(5)})
    response._content = b'{"result": [{"date": "2024-01-01", "score": 3}]}'
    with pytest.raises(ResponseValidationError):
        validate(emulator, response, SEQ_SPEC_PATH)
