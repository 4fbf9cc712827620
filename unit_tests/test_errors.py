"""The error policy through a real read: retries, rate limits, skips, clear failures, no leaked key."""

import time

from airbyte_cdk.models import FailureType
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

from unit_tests.builders import (
    API_KEY,
    all_output_text,
    api_request,
    config,
    error_response,
    json_response,
    records,
    run_read,
    scopes_request,
    scopes_response,
)

GROUPS = [{"id": 1, "name": "News", "description": "d", "is_default": True, "unsubscribes": 3}]


def read_groups_after(*first_responses):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/groups"), [*first_responses, json_response(GROUPS)])
        return run_read(config(), "suppression_groups")


def test_429_with_an_epoch_reset_waits_until_the_reset(no_real_sleep):
    output = read_groups_after(error_response(429, "too many requests", {"X-RateLimit-Reset": str(int(time.time()) + 7)}))
    assert records(output) == GROUPS
    assert 6 <= no_real_sleep[0] <= 9  # the wait until the reset (+ the CDK's extra second)


def test_429_with_a_delta_reset_waits_that_many_seconds(no_real_sleep):
    output = read_groups_after(error_response(429, "too many requests", {"X-RateLimit-Reset": "3"}))
    assert records(output) == GROUPS
    assert 3 <= no_real_sleep[0] <= 4.2


def test_429_waits_are_bounded(no_real_sleep):
    output = read_groups_after(error_response(429, "slow down", {"X-RateLimit-Reset": str(int(time.time()) + 86400)}))
    assert records(output) == GROUPS
    assert no_real_sleep[0] <= 122


def test_5xx_and_html_error_pages_are_retried_with_backoff(no_real_sleep):
    html = HttpResponse(body="<html><h1>502 Bad Gateway</h1></html>", status_code=502)
    output = read_groups_after(error_response(500, "internal"), html, error_response(503, "unavailable"))
    assert records(output) == GROUPS and not output.errors
    assert len(no_real_sleep) == 3


def test_a_truncated_or_non_json_200_body_is_retried_and_never_emitted():
    truncated = HttpResponse(body='[{"id": 1, "name": "Ne', status_code=200)
    not_json = HttpResponse(body="<html>Welcome to nginx!</html>", status_code=200)
    output = read_groups_after(truncated, not_json)
    assert records(output) == GROUPS and not output.errors


def test_when_retries_run_out_the_stream_fails_with_a_clear_error():
    output = read_groups_after(*[error_response(500, "internal")] * 9)
    assert records(output) == []
    assert output.errors
    message = output.errors[-1].trace.error.message
    assert "SendGrid answered 500" in message or "Exhausted available request attempts" in message


def test_a_400_fails_the_stream_with_sendgrids_own_words():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/groups"), error_response(400, "id must be a number"))
        output = run_read(config(), "suppression_groups", expecting_exception=True)
    assert output.errors[0].trace.error.message.endswith("'id must be a number'.")


def test_a_rejected_key_fails_the_read_once_as_a_config_error_without_printing_the_key():
    with HttpMocker() as http:
        http.get(scopes_request(), error_response(401, "The provided authorization grant is invalid, expired, or revoked"))
        output = run_read(config(), "bounces", expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.config_error
    assert "SendGrid rejected the API key" in error.message
    assert API_KEY not in all_output_text(output)


def test_the_key_is_masked_even_in_debug_logs_of_failed_requests():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/groups"), error_response(400, f"bad key {API_KEY}"))
        output = run_read({**config(), "__debug": True}, "suppression_groups", expecting_exception=True)
    assert API_KEY not in all_output_text(output)


def test_a_404_on_an_endpoint_that_must_exist_fails_clearly():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/groups"), error_response(404, "resource not found"))
        output = run_read(config(), "suppression_groups", expecting_exception=True)
    assert "SendGrid answered 404" in output.errors[0].trace.error.message


def test_a_server_that_ignores_the_offset_ends_with_an_error_instead_of_looping():
    from unit_tests.test_suppressions import bounce, page

    same_page = json_response([bounce(i) for i in range(500)])
    one_second = bounce(0)["created"]  # every record of the page has this `created`
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(page("/v3/suppression/bounces", 0), same_page)
        # The pager anchors the next page on the oldest second read so far and counts on within it.
        http.get(page("/v3/suppression/bounces", 500, end=one_second), same_page)
        output = run_read(config(), "bounces", expecting_exception=True)
    assert "the same page twice in a row" in output.errors[0].trace.error.message
    assert len(records(output)) == 1000  # the first two pages only, then a clear stop
