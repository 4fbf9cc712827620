"""Malformed configs, catalogs and states through the real entrypoint: a clear error (never a generic crash or a
traceback as the message), or, where the input can be read safely, a correct sync."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, List

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import REPO, catalog_for, config_for, run_cli

GENERIC_CRASH = "Something went wrong in the connector"


@pytest.fixture(scope="module")
def emulator():
    with Emulator(size=30, seed=3, families=["suppressions"]) as running:
        yield running


def run_raw(command: str, config: Any, catalog: Any = None, state: Any = None, raw: bool = False) -> dict:
    """The CLI with files written as given (raw: written as text, not JSON)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "source_sendgrid", command]
        for flag, content in (("--config", config), ("--catalog", catalog), ("--state", state)):
            if content is None:
                continue
            path = Path(tmp) / f"{flag[2:]}.json"
            path.write_text(content if raw and isinstance(content, str) else json.dumps(content))
            args += [flag, str(path)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    messages = []
    for line in done.stdout.splitlines():
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    errors = [m["trace"]["error"] for m in messages if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR"]
    status = [m["connectionStatus"] for m in messages if m.get("type") == "CONNECTION_STATUS"]
    records = [m["record"] for m in messages if m.get("type") == "RECORD"]
    return {"code": done.returncode, "errors": errors, "status": status, "records": records, "stderr": done.stderr}


def assert_clear(errors: List[dict], *expected: str) -> None:
    assert errors, "no error was reported"
    messages = " | ".join(f"{e.get('message') or ''} {e.get('internal_message') or ''}" for e in errors)
    assert GENERIC_CRASH not in messages, messages
    assert "Traceback" not in messages
    for text in expected:
        assert text.lower() in messages.lower(), messages


# The CDK validates a config against the spec first; its messages name the bad value, not the field.
@pytest.mark.parametrize("overrides, expected", [
    ({"api_key": ""}, "api_key"),
    ({"window_days": 0}, "0 is less than the minimum of 1"),
    ({"window_days": "thirty"}, "'thirty' is not of type 'integer'"),
    ({"lookback_days": -1}, "-1 is less than the minimum of 0"),
    ({"concurrency": 1000}, "1000 is greater than the maximum"),
    ({"region": "mars"}, "'mars' is not one of"),
    ({"start_date": "yesterday"}, "start_date"),
])
def test_a_malformed_config_fails_check_and_read_clearly(emulator, overrides, expected):
    config = {**config_for(emulator), **overrides}
    check = run_raw("check", config)
    assert (check["status"] and check["status"][0]["status"] == "FAILED") or check["errors"]
    text = " ".join([s.get("message") or "" for s in check["status"]] + [e.get("message") or "" for e in check["errors"]])
    assert expected in text and GENERIC_CRASH not in text and "Traceback" not in text
    read = run_raw("read", config, catalog_for(config_for(emulator), ["bounces"]))
    assert read["code"] != 0 and not read["records"]
    assert_clear(read["errors"], expected)


def test_a_config_file_that_is_not_json_fails_clearly(emulator):
    result = run_raw("check", "{not json", raw=True)
    assert result["code"] != 0
    assert "SG." not in result["stderr"]


def test_an_unknown_stream_in_the_catalog_is_reported_and_the_others_still_sync(emulator):
    config = config_for(emulator)
    catalog = catalog_for(config, ["bounces"])
    ghost = json.loads(json.dumps(catalog["streams"][0]))
    ghost["stream"]["name"] = "no_such_stream"
    result = run_raw("read", config, {"streams": catalog["streams"] + [ghost]})
    assert_clear(result["errors"], "no_such_stream")
    assert len([r for r in result["records"] if r["stream"] == "bounces"]) == len(emulator.truth()["bounces"])


def test_an_invalid_sync_mode_fails_clearly(emulator):
    config = config_for(emulator)
    catalog = catalog_for(config, ["bounces"])
    catalog["streams"][0]["sync_mode"] = "sideways"
    result = run_raw("read", config, catalog)
    assert result["code"] != 0 and not result["records"]
    assert "sideways" in result["stderr"] + json.dumps(result["errors"])


def test_incremental_asked_of_a_full_refresh_stream_reads_it_whole(emulator):
    config = config_for(emulator)
    catalog = catalog_for(config, ["suppression_groups"], mode="full_refresh")
    catalog["streams"][0]["sync_mode"] = "incremental"
    result = run_raw("read", config, catalog)
    assert result["code"] == 0, result["errors"]
    assert len(result["records"]) == len(emulator.truth()["suppression_groups"])


@pytest.mark.parametrize("state", ["[{broken", '{"type": "STREAM"}', '[{"foo": 1}]', '"just a string"', "[1, 2]"])
def test_a_corrupt_state_file_fails_clearly(emulator, state):
    config = config_for(emulator)
    result = run_raw("read", config, catalog_for(config, ["bounces"]), state=state, raw=True)
    assert result["code"] != 0 and not result["records"]
    assert_clear(result["errors"], "state")


@pytest.mark.parametrize("cursor", ["garbage", {"nested": 1}, None, -5, "9999-99-99T00:00:00Z", 10**20])
def test_an_unreadable_cursor_value_reads_from_the_start_date_instead_of_crashing(emulator, cursor):
    config = config_for(emulator)
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "bounces"}, "stream_state": {"created": cursor}}}]
    result = run_raw("read", config, catalog_for(config, ["bounces"]), state=state)
    assert result["code"] == 0, result["errors"]
    emitted = sorted(r["data"]["email"] for r in result["records"] if r["stream"] == "bounces")
    expected = sorted(r["email"] for r in emulator.truth()["bounces"])
    if cursor == -5:  # 1969: a real, very old cursor
        assert emitted == expected
    else:
        assert emitted == expected, "an unreadable cursor must not skip records"
