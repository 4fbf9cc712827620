"""A key SendGrid refuses never looks like an empty account: check fails and read fails, through the entrypoint."""

from __future__ import annotations

import pytest
from airbyte_cdk.models import FailureType, Status
from airbyte_cdk.test.mock_http import HttpMocker

from unit_tests.builders import api_request, config, error_response, run_read, scopes_request, scopes_response
from unit_tests.test_source import check

REFUSALS = [
    pytest.param(401, "authorization required", "SendGrid rejected the API key (401 Unauthorized)", id="401-authorization-required"),
    pytest.param(403, "access forbidden", "SendGrid refused the API key (403 Forbidden)", id="403"),
]


@pytest.mark.parametrize("status, said, expected", REFUSALS)
def test_given_a_refusal_on_scopes_when_check_then_it_fails_saying_what_to_do(status, said, expected):
    with HttpMocker() as http:
        http.get(scopes_request(), error_response(status, said))
        output = check(config())
    result = output.connection_status_messages[0].connectionStatus
    assert result.status == Status.FAILED
    assert result.message.startswith(expected) and f"SendGrid said: '{said}'" in result.message


@pytest.mark.parametrize("status, said, expected", REFUSALS)
def test_given_a_refusal_on_scopes_when_read_then_it_fails_with_a_config_error_before_any_stream(status, said, expected):
    with HttpMocker() as http:
        http.get(scopes_request(), error_response(status, said))
        output = run_read(config(), "bounces", expecting_exception=True)
    assert not output.records
    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.config_error and error.message.startswith(expected)


def test_given_a_key_with_only_mail_send_when_check_then_it_fails_naming_the_scopes_it_needs():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["mail.send", "user.scopes.read"]))
        output = check(config())
    result = output.connection_status_messages[0].connectionStatus
    assert result.status == Status.FAILED
    assert "can read none of the streams" in result.message
    assert "suppression.bounces.read" in result.message and "marketing.read" in result.message


def test_given_a_key_with_only_mail_send_when_read_then_it_fails_with_a_config_error():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["mail.send"]))
        output = run_read(config(), "bounces", expecting_exception=True)
    assert not output.records
    assert output.is_in_logs("Skipping stream bounces: the API key lacks the scope suppression.bounces.read")
    error = output.errors[-1].trace.error
    assert error.failure_type == FailureType.config_error and "None of the selected streams could be read" in error.message


def test_given_a_403_on_the_only_selected_stream_when_read_then_it_fails_instead_of_ending_empty():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/groups"), error_response(403, "access forbidden"))
        output = run_read(config(), "suppression_groups", expecting_exception=True)
    assert not output.records
    assert output.is_in_logs("Skipping stream suppression_groups: SendGrid answered 403")
    assert output.errors[-1].trace.error.failure_type == FailureType.config_error


def test_given_a_key_that_can_read_some_streams_when_check_then_it_passes_and_names_the_others():
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response(["suppression.bounces.read"]))
        output = check(config())
    result = output.connection_status_messages[0].connectionStatus
    assert result.status == Status.SUCCEEDED and "blocks (needs suppression.blocks.read)" in result.message
