"""Engagement Quality scores (the account's and its subusers') and bounce classification totals."""

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

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

TODAY = "2024-03-01"  # the frozen "now" is 2024-03-01T00:00:01Z
SCORES = "/v3/engagementquality/scores"
SUBUSER_SCORES = "/v3/engagementquality/subusers/scores"
CLASSIFICATIONS = "/v3/suppression/bounces/classifications"
METRICS = {"engagement_recency": 4, "open_rate": 1, "bounce_classification": 2, "bounce_rate": 4, "spam_rate": 4}


def score(date, user_id="180", **fields):
    return {"date": date, "user_id": user_id, "username": "jdoe123", "score": 3, "metrics": dict(METRICS), **fields}


def days(first, last):
    from datetime import date, timedelta

    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def final_state(output):
    return output.state_messages[-1].state.stream.stream_state.__dict__ if output.state_messages else None


def not_computed(body=""):
    return HttpResponse(body=body, status_code=202)


def test_given_a_start_date_years_back_when_scores_are_read_then_only_the_last_89_days_are_asked_for_and_metrics_are_columns():
    answer = [score("2023-12-03"), {"date": "2023-12-04", "user_id": "180"}] + [score(day) for day in days("2023-12-05", TODAY)]
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(SCORES, {"from": "2023-12-03", "to": TODAY}), json_response({"result": answer}))
        output = run_read(config(start_date="2009-01-01T00:00:00Z"), "engagement_quality_scores")
    assert not output.errors
    emitted = records(output)
    assert len(emitted) == 90
    assert emitted[0] == {"date": "2023-12-03", "user_id": "180", "username": "jdoe123", "score": 3, **METRICS}
    # A day the account was not eligible for a score has neither score nor metrics.
    assert emitted[1] == {"date": "2023-12-04", "user_id": "180"}


def test_given_a_key_with_none_of_the_documented_scopes_when_scores_are_read_then_they_are_read_all_the_same():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["mail.send"]))
        http.get(api_request(SCORES, {"from": "2024-02-29", "to": TODAY}), json_response({"result": [score("2024-02-29")]}))
        output = run_read(config(start_date="2024-02-29T00:00:00Z"), "engagement_quality_scores")
    assert not output.errors and len(records(output)) == 1


def test_given_a_range_whose_last_days_are_not_computed_when_read_incrementally_then_the_state_stops_before_them():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(SCORES, {"from": "2024-02-20", "to": TODAY}),
                 json_response({"result": [score(day) for day in days("2024-02-20", "2024-02-28")]}))
        output = run_read(config(start_date="2024-02-20T00:00:00Z"), "engagement_quality_scores", SyncMode.incremental)
    assert not output.errors and len(records(output)) == 9
    assert final_state(output) == {"date": "2024-02-28T00:00:00Z"}
    assert output.is_in_logs("SendGrid has not computed the scores of 2024-02-29 yet")


@pytest.mark.parametrize("body", ["", "{}"], ids=["no body", "empty object"])
def test_given_a_202_when_read_incrementally_then_nothing_is_emitted_the_sync_succeeds_and_the_state_stays(body):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        # The state's day and the three before it are asked again (recent scores are re-read).
        http.get(api_request(SCORES, {"from": "2024-02-23", "to": TODAY}), not_computed(body))
        output = run_read(config(), "engagement_quality_scores", SyncMode.incremental,
                          state("engagement_quality_scores", {"date": "2024-02-25T00:00:00Z"}))
    assert not output.errors and records(output) == []
    assert final_state(output) == {"date": "2024-02-25T00:00:00Z"}
    assert len(http._mocker.request_history) == 2, "the 202 was retried: it is an answer, not a broken page"


def test_given_a_window_not_computed_when_a_later_window_is_then_the_state_does_not_jump_over_it():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(SCORES, {"from": "2024-01-01", "to": "2024-01-30"}),
                 json_response({"result": [score(day) for day in days("2024-01-01", "2024-01-30")]}))
        http.get(api_request(SCORES, {"from": "2024-01-31", "to": "2024-02-29"}), not_computed())
        http.get(api_request(SCORES, {"from": TODAY, "to": TODAY}), json_response({"result": [score(TODAY)]}))
        output = run_read(config(window_days=30), "engagement_quality_scores", SyncMode.incremental)
    assert not output.errors and len(records(output)) == 31
    assert final_state(output) == {"date": "2024-01-30T00:00:00Z"}


def test_given_seq_answers_403_when_read_then_the_stream_is_skipped_with_a_warning():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(SCORES), error_response(403, "access forbidden"))
        output = run_read(config(), "engagement_quality_scores", expecting_exception=True)
    assert records(output) == []
    assert output.is_in_logs("Skipping stream engagement_quality_scores: SendGrid answered 403")
    assert ended_with_nothing_readable(output)


def test_given_subusers_when_their_scores_are_read_then_each_day_is_asked_alone_in_keyset_pages_and_a_202_day_stops_the_state():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(SUBUSER_SCORES, {"date": "2024-02-27", "limit": 1000}),
                 json_response({"result": [score("2024-02-27", "5000"), {"user_id": "5001", "metrics": {"date": "1999-01-01", "open_rate": 2}}],
                                "_metadata": {"next_params": {"after_key": "5001"}}}))
        http.get(api_request(SUBUSER_SCORES, {"date": "2024-02-27", "limit": 1000, "after_key": "5001"}),
                 json_response({"result": [score("2024-02-27", "5002")], "_metadata": {}}))
        http.get(api_request(SUBUSER_SCORES, {"date": "2024-02-28", "limit": 1000}), json_response({"result": []}))
        http.get(api_request(SUBUSER_SCORES, {"date": "2024-02-29", "limit": 1000}), not_computed())
        http.get(api_request(SUBUSER_SCORES, {"date": TODAY, "limit": 1000}), not_computed())
        output = run_read(config(start_date="2024-02-27T00:00:00Z"), "subuser_engagement_quality_scores", SyncMode.incremental)
    assert not output.errors
    emitted = records(output)
    assert [(r["date"], r["user_id"]) for r in emitted] == [("2024-02-27", "5000"), ("2024-02-27", "5001"), ("2024-02-27", "5002")]
    assert emitted[0]["spam_rate"] == 4 and "metrics" not in emitted[0]
    # The spec requires only user_id: a score without its date is for the day asked, whatever its metrics hold.
    assert emitted[1] == {"date": "2024-02-27", "user_id": "5001", "open_rate": 2}
    # 2024-02-28 had no subusers' scores and was answered: the state moves to it, and not past 2024-02-29.
    assert final_state(output) == {"date": "2024-02-28T00:00:00Z"}


def test_given_an_account_that_is_not_a_parent_when_subusers_scores_are_read_then_the_stream_is_skipped_with_a_warning():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(SUBUSER_SCORES), error_response(403, "access forbidden"))
        output = run_read(config(start_date="2024-02-20T00:00:00Z"), "subuser_engagement_quality_scores",
                          expecting_exception=True)
    assert records(output) == []
    assert output.is_in_logs("Skipping stream subuser_engagement_quality_scores: SendGrid answered 403")
    assert output.is_in_logs("only a parent account has subusers' scores")
    assert len(http._mocker.request_history) == 2, "after the 403, no other day was asked for"
    assert ended_with_nothing_readable(output)


def test_given_bounce_classification_totals_when_read_then_each_date_and_classification_is_one_row_with_its_count():
    body = {"result": [
        {"date": "2024-02-01", "stats": [{"classification": "Unclassified", "count": 35}, {"classification": "Invalid Address", "count": 14}]},
        {"date": "2024-02-02", "stats": []},
    ]}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["mail.send"]))
        http.get(api_request(CLASSIFICATIONS, {"start_date": "2024-01-01", "end_date": TODAY}), json_response(body))
        output = run_read(config(), "bounce_classifications")
    assert not output.errors
    assert records(output) == [{"date": "2024-02-01", "classification": "Unclassified", "count": 35},
                               {"date": "2024-02-01", "classification": "Invalid Address", "count": 14}]


def test_given_a_state_when_bounce_classifications_are_read_incrementally_then_the_three_last_days_are_read_again():
    body = {"result": [{"date": "2024-02-27", "stats": [{"classification": "Content", "count": 2}]}]}
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(CLASSIFICATIONS, {"start_date": "2024-02-27", "end_date": TODAY}), json_response(body))
        output = run_read(config(), "bounce_classifications", SyncMode.incremental,
                          state("bounce_classifications", {"date": "2024-02-29T00:00:00Z"}))
    assert not output.errors and len(records(output)) == 1
    assert final_state(output) == {"date": "2024-03-01T00:00:00Z"}


def test_given_bounce_classifications_answer_403_when_read_then_the_stream_is_skipped_with_a_warning():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request(CLASSIFICATIONS), error_response(403, "access forbidden"))
        output = run_read(config(), "bounce_classifications", expecting_exception=True)
    assert records(output) == [] and output.is_in_logs("Skipping stream bounce_classifications: SendGrid answered 403")
    assert ended_with_nothing_readable(output)
