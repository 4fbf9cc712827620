"""Secrets, end to end. The session-wide guard (`secrets_guard.py`, loaded by both conftests) already scans
every test's output and requests; these tests aim at the places a key or a subuser name could slip out."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from sendgrid_emulator import secrets_guard
from sendgrid_emulator import FULL_ACCESS_KEY
from sendgrid_emulator.harness import catalog_for, config_for, read_in_process, run_cli

SUBUSER = "secret-subuser-name-42"


def every_text(run) -> str:
    return run.stdout + "\n" + run.stderr


def test_a_full_sync_with_faults_and_a_subuser_never_prints_the_key_or_the_subuser(emulator):
    emulator.set_faults({"500": 0.05, "429": 0.05, "truncate": 0.03, "html": 0.03}, seed=9)
    config = config_for(emulator, subuser=SUBUSER, start_date="2022-12-01T00:00:00Z", window_days=120, __debug=True)
    run = run_cli("read", config, catalog_for(config_for(emulator), ["bounces", "suppression_groups"]))
    assert run.returncode == 0, run.error_messages()
    assert run.records()["bounces"], "nothing was read: the test proves nothing"
    text = every_text(run)
    assert FULL_ACCESS_KEY not in text and SUBUSER not in text
    # The subuser is sent, as a header, and nothing secret ever rides in a URL.
    sent = [r for r in emulator.requests_log if r["path"].startswith("/v3/suppression")]
    assert sent and all(r["on_behalf_of"] == SUBUSER for r in sent)
    for logged in emulator.requests_log:
        query = logged["query"]
        assert FULL_ACCESS_KEY not in query and SUBUSER not in query
        assert not any(FULL_ACCESS_KEY in v for values in parse_qs(query).values() for v in values)


def test_a_rejected_key_and_a_failing_sync_keep_the_key_out_of_errors_and_traces(emulator):
    """(Streams that fail after spent retries are scanned by the guard in test_faults.py.)"""
    config = config_for(emulator, start_date="2024-01-01T00:00:00Z", window_days=3650)
    catalog = catalog_for(config, ["blocks"])
    ghost = {**catalog["streams"][0], "stream": {**catalog["streams"][0]["stream"], "name": "no_such_stream"}}
    failed = run_cli("read", config, {"streams": catalog["streams"] + [ghost]})
    assert failed.returncode != 0 and failed.error_messages()
    emulator.add_key("SG.another-secret-key-without-scopes", [])
    wrong = run_cli("check", {**config, "api_key": "SG.a-wrong-key-that-must-not-print"})
    for run in (failed, wrong):
        text = every_text(run)
        assert FULL_ACCESS_KEY not in text and "SG.a-wrong-key-that-must-not-print" not in text


def test_state_messages_never_hold_the_key(emulator):
    config = config_for(emulator, subuser=SUBUSER)
    output = read_in_process(config, catalog_for(config, ["bounces", "suppression_group_members"]))
    states = "\n".join(str(m.state) for m in output.state_messages)
    assert states and FULL_ACCESS_KEY not in states and SUBUSER not in states


@pytest.mark.parametrize("url", [
    "http://example.com",
    "http://10.0.0.8:8080",
    "http://localhost.example.com",
    "http://127.0.0.1.nip.io",
    "http://127.0.0.1@evil.example.com/",
    "http://0x7f.0.0.1",
    "ftp://127.0.0.1",
    "//api.sendgrid.com",
])
def test_plain_http_to_a_non_loopback_host_is_refused_before_any_request(url):
    import logging

    from source_sendgrid import SourceSendgrid

    status = SourceSendgrid().check(logging.getLogger("test"), {"api_key": FULL_ACCESS_KEY, "api_base_url": url})
    assert status.status.value == "FAILED"
    assert "`api_base_url` must be an https:// URL" in status.message
    assert FULL_ACCESS_KEY not in status.message
    if url in ("http://example.com", "http://10.0.0.8:8080"):  # and through the CLI
        run = run_cli("check", {"api_key": FULL_ACCESS_KEY, "api_base_url": url})
        cli_status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        assert cli_status["status"] == "FAILED" and "`api_base_url` must be" in cli_status["message"]
        assert FULL_ACCESS_KEY not in every_text(run)


def test_the_key_goes_only_to_the_configured_api_host(emulator, no_secret_leaks):
    """Every in-process request that carried the key went to the emulator (the guard checks every request;
    here it must have seen some, or it proved nothing)."""
    config = config_for(emulator)
    output = read_in_process(config, catalog_for(config))
    assert output.records
    carried = [url for url, _ in secrets_guard._requests]
    assert carried, "no request carried the key: the guard saw nothing"
    assert all(url.startswith(emulator.url) for url in carried)


def test_the_guard_itself_catches_a_leak():
    """The guard must be able to fail: a key in the connector's output is reported (masked)."""
    secrets_guard.register_secret("SG.guard-self-test-secret")
    secrets_guard.scan("log line with SG.guard-self-test-secret in it", "self-test")
    leaks = list(secrets_guard._leaks)
    secrets_guard._leaks.clear()
    assert leaks and "SG.guard-self-test-secret" not in leaks[0]
    secrets_guard._requests.clear()
