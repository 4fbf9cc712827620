"""The API key and the subuser never get out, in any spelling, and masking them never breaks a message:
through the command line's entrypoint (source_sendgrid/run.py), as a process or in-process."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import pytest
from airbyte_cdk.test.mock_http import HttpMocker

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, run_cli
from source_sendgrid import SourceSendgrid
from source_sendgrid.run import SendgridEntrypoint
from unit_tests.builders import API_KEY, api_request, config, error_response, scopes_request, scopes_response

GENERIC_CRASH = "Something went wrong in the connector"


@pytest.fixture(scope="module")
def emulator():
    with Emulator(size=20, seed=5, families=["suppressions"]) as running:
        yield running


def spellings(secret: str) -> List[str]:
    """The ways a value can be printed: as is, in a repr, in a JSON string, in a repr inside a JSON string."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    return sorted(forms | {json.dumps(form)[1:-1] for form in forms})


def assert_printed_nowhere(text: str, *parts: str) -> None:
    for part in parts:
        for form in spellings(part):
            assert form not in text, f"{part[:3]}… was printed"


def run_in_process(command: str, cfg: Mapping[str, Any], catalog: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
    """The command through SendgridEntrypoint in this process (so HttpMocker answers), as parsed messages."""
    with tempfile.TemporaryDirectory() as directory:
        args = [command, "--config", str(Path(directory) / "config.json")]
        Path(args[-1]).write_text(json.dumps(cfg))
        if catalog is not None:
            args += ["--catalog", str(Path(directory) / "catalog.json")]
            Path(args[-1]).write_text(json.dumps(catalog))
        entrypoint = SendgridEntrypoint(SourceSendgrid())
        lines: List[str] = []
        try:
            for text in entrypoint.run(entrypoint.parse_args(args)):
                lines.extend(text.split("\n"))
        except Exception:  # noqa: BLE001 - a failed read raises at its end; its messages were written before
            pass
    return [json.loads(line) for line in lines if line]


@pytest.mark.parametrize("field, value", [
    ("api_key", "SG.first-half-of-key\nsecond-half-of-key"),
    ("subuser", "subuser-first-half\r\nsubuser-second-half"),
])
def test_a_key_or_subuser_with_a_line_break_inside_is_refused_clearly_and_printed_nowhere(emulator, field, value):
    cfg = config_for(emulator, **{field: value})
    check = run_cli("check", cfg)
    read = run_cli("read", cfg, catalog_for(config_for(emulator), ["bounces"]))
    status = check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and f"`{field}`" in status["message"]
    assert read.returncode != 0 and not read.records()
    assert any(f"`{field}`" in message for message in read.error_messages())
    for run in (check, read):
        assert GENERIC_CRASH not in run.stdout and "Traceback" not in "".join(run.error_messages())
        assert_printed_nowhere(run.stdout + run.stderr, value, *value.split())


def test_given_an_error_body_that_echoes_the_key_when_check_then_the_connection_status_masks_it():
    with HttpMocker() as http:
        http.get(scopes_request(), error_response(401, f"The key {API_KEY} is invalid, expired, or revoked"))
        messages = run_in_process("check", config())
    status = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert status and status[0]["status"] == "FAILED" and "SendGrid rejected the API key" in status[0]["message"]
    assert "****" in status[0]["message"]
    assert_printed_nowhere(json.dumps(messages), API_KEY)


def test_a_key_that_a_repr_spells_differently_is_masked_in_that_spelling_too():
    """A backslash is doubled in the repr that quotes SendGrid's words in an error message."""
    key = "SG.back\\slash-key-0123456789"
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/asm/groups"), error_response(400, f"no such key {key}"))
        messages = run_in_process("read", config(api_key=key), catalog_for(config(), ["suppression_groups"]))
    errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    assert errors and "SendGrid answered 400" in errors[0]["message"]
    assert_printed_nowhere(json.dumps(messages), key)


@pytest.mark.parametrize("subuser", ["y", "e"])
def test_a_subuser_too_short_to_mask_safely_is_not_masked_and_every_message_stays_valid(emulator, subuser):
    """The CDK masks a crash's trace as serialised text: a one-letter subuser would turn "type" into "typ****"."""
    catalog = catalog_for(config_for(emulator), ["bounces"])
    ghost = json.loads(json.dumps(catalog["streams"][0]))
    ghost["stream"]["name"] = "no_such_stream"  # ends the read with an error trace
    run = run_cli("read", config_for(emulator, subuser=subuser), {"streams": catalog["streams"] + [ghost]})
    assert run.returncode != 0
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert lines and all(json.loads(line).get("type") for line in lines), "a message lost its type"
    assert "****" not in run.stdout
    assert any("no_such_stream" in message for message in run.error_messages())
