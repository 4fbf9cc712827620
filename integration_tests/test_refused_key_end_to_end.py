"""Refused keys against the emulator, through the connector as a process: `check` fails and `read` exits
non-zero with a config error and no records, never exit 0 with warnings only."""

from __future__ import annotations

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, run_cli

UNKNOWN_KEY = "SG.a-key-this-account-never-had"
UNUSABLE_KEY = "SG.a-key-sendgrid-cannot-take-from-the-header"
MAIL_SEND_KEY = "SG.a-key-with-only-mail-send"


@pytest.fixture(scope="module")
def emulator():
    with Emulator(size=30, seed=13, families=["suppressions"]) as running:
        running.refuse_key(UNUSABLE_KEY, 401, "authorization required")
        running.add_key(MAIL_SEND_KEY, ["mail.send"])
        yield running


@pytest.mark.parametrize("key, expected", [
    (UNKNOWN_KEY, "SendGrid rejected the API key (401 Unauthorized)"),
    (UNUSABLE_KEY, "SendGrid rejected the API key (401 Unauthorized)"),
    (MAIL_SEND_KEY, "can read none of the streams"),
], ids=["unknown-key", "401-authorization-required", "mail-send-only"])
def test_a_refused_key_fails_check_and_read(emulator, key, expected):
    config = config_for(emulator, api_key=key)
    check = run_cli("check", config)
    status = check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and expected in status["message"]

    read = run_cli("read", config, catalog_for(config_for(emulator), ["bounces", "blocks", "suppression_groups"]))
    assert read.returncode != 0 and not read.records()
    errors = [m["trace"]["error"] for m in read.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
    assert errors and all(error["failure_type"] == "config_error" for error in errors)


def test_a_read_whose_streams_all_answer_403_in_worker_processes_fails_instead_of_ending_empty():
    """The key has every scope but the account lacks the product: each stream's endpoint answers 403.
    Three streams and concurrency 4: read in worker processes, whose skips the source must still see."""
    with Emulator(size=30, seed=13, families=["suppressions", "marketing"], products=["suppressions"]) as emulator:
        config = config_for(emulator, concurrency=4)
        read = run_cli("read", config, catalog_for(config, ["lists", "segments", "singlesends"]))
        assert read.returncode != 0 and not read.records()
        assert any("None of the selected streams could be read" in m for m in read.error_messages())
        # With one stream the key can read, the others are skipped and the read succeeds.
        read = run_cli("read", config, catalog_for(config, ["lists", "segments", "bounces"]))
        assert read.returncode == 0 and read.records()["bounces"]
