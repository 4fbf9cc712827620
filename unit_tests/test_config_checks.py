"""Config values that used to pass and then crash or leak: refused up front, through the command line's
entrypoint, with an error that says what to do and makes no request."""

from __future__ import annotations

import pytest
from airbyte_cdk.test.mock_http import HttpMocker

from unit_tests.builders import config
from unit_tests.test_secret_masking import GENERIC_CRASH, run_in_process


def check_status(cfg) -> dict:
    with HttpMocker():  # no request is expected: an unexpected one fails to match
        messages = run_in_process("check", cfg)
    statuses = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert statuses, messages
    assert GENERIC_CRASH not in str(messages)
    return statuses[0]


@pytest.mark.parametrize("url", [
    "http://evil.example\\@127.0.0.1:8765",  # urlsplit reads 127.0.0.1, urllib3 (requests) reads evil.example
    "https://api.sendgrid.com\\@127.0.0.1",
    "http://127.0.0.1:8765#@evil.example",
    "http://127.0.0.1:8765?@evil.example",
    "https://user:pass@api.sendgrid.com",
    "https://api.sendgrid.com/ v3",
    "https://api.sendgrid.com/\tx",
    "http://127.0.0.1:99999",
])
def test_an_api_base_url_the_http_client_could_read_differently_is_refused_before_any_request(url):
    status = check_status(config(api_base_url=url))
    assert status["status"] == "FAILED"
    assert "`api_base_url` must be an https:// URL" in status["message"]


def test_a_key_that_is_not_latin_1_fails_check_clearly_instead_of_crashing():
    status = check_status(config(api_key="SG.ключ-not-latin-1-ключ"))
    assert status["status"] == "FAILED"
    assert "`api_key` is not a SendGrid API key" in status["message"]
    assert "ключ" not in status["message"]


@pytest.mark.parametrize("start_date", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_a_start_date_before_1970_fails_check_clearly(start_date):
    status = check_status(config(start_date=start_date))
    assert status["status"] == "FAILED"
    assert "`start_date`" in status["message"] and "1970" in status["message"]


def test_the_spec_states_the_start_date_bound_that_the_config_enforces():
    from source_sendgrid import SourceSendgrid

    description = SourceSendgrid().spec(logger=None).connectionSpecification["properties"]["start_date"]["description"]
    assert "from 1970-01-01T00:00:00Z on" in description
