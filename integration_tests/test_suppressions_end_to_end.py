"""The suppression family end to end: the connector's output against the emulator's ground truth."""

import time

import pytest

from sendgrid_emulator.harness import (
    catalog_for,
    config_for,
    key_of,
    latest_states,
    read_in_process,
    records_of,
    run_cli,
    run_cli_killed_after,
    union_of,
)

SUPPRESSION_STREAMS = {
    "bounces": ["email"],
    "blocks": ["email"],
    "spam_reports": ["email"],
    "invalid_emails": ["email"],
    "global_suppressions": ["email"],
    "suppression_groups": ["id"],
    "suppression_group_members": ["group_id", "email"],
}


def assert_equals_truth(emitted, truth, streams=SUPPRESSION_STREAMS):
    for stream, primary_key in streams.items():
        got = sorted(emitted.get(stream, []), key=lambda r: key_of(r, primary_key))
        expected = sorted(truth[stream], key=lambda r: key_of(r, primary_key))
        assert len(got) == len(expected), f"{stream}: {len(got)} records, truth has {len(expected)}"
        assert got == expected, f"{stream}: records differ from the emulator's truth"


def test_full_refresh_equals_ground_truth(emulator):
    config = config_for(emulator, window_days=90)
    output = read_in_process(config, catalog_for(config, SUPPRESSION_STREAMS, mode="full_refresh"))
    assert not output.errors
    assert_equals_truth(records_of(output), emulator.truth())


def test_incremental_after_new_data_emits_exactly_the_new_records(emulator):
    config = config_for(emulator)
    catalog = catalog_for(config, SUPPRESSION_STREAMS)
    first = read_in_process(config, catalog)
    assert_equals_truth(records_of(first), emulator.truth())
    before = emulator.truth()

    emulator.mutate("suppressions", "add", count=3)
    # Windows end a second before "now", so records of the current second belong to the next sync.
    time.sleep(1.1)
    second = read_in_process(config, catalog, state=latest_states(first))

    after = emulator.truth()
    emitted = records_of(second)
    for stream in ("bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions", "suppression_group_members"):
        primary_key = SUPPRESSION_STREAMS[stream]
        new = {key_of(r, primary_key) for r in after[stream]} - {key_of(r, primary_key) for r in before[stream]}
        assert len(new) == 3
        assert {key_of(r, primary_key) for r in emitted.get(stream, [])} == new, stream
    # A full-refresh-only stream is read whole every time.
    assert len(emitted["suppression_groups"]) == len(after["suppression_groups"])


def test_incremental_with_nothing_new_reads_one_window_per_stream(emulator):
    config = config_for(emulator)
    catalog = catalog_for(config, SUPPRESSION_STREAMS)
    first = read_in_process(config, catalog)
    requests_before = len(emulator.requests_log)
    second = read_in_process(config, catalog, state=latest_states(first))
    assert records_of(second).get("bounces", []) == []
    # scopes + 5 lists x 1 window + groups + members
    assert len(emulator.requests_log) - requests_before <= 8


@pytest.mark.parametrize("kill_after_lines", [12, 40, 90])
def test_sync_killed_mid_stream_resumes_without_losing_records(emulator, kill_after_lines):
    config = config_for(emulator, window_days=60)
    catalog = catalog_for(config, SUPPRESSION_STREAMS)
    killed = run_cli_killed_after(config, catalog, state=None, kill_after_lines=kill_after_lines)
    assert killed.returncode != 0, "the sync finished before it could be killed: raise the data size"
    resumed = run_cli("read", config, catalog, state=killed.last_states())
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    union = union_of(killed.records(), resumed.records())
    truth = emulator.truth()
    for stream, primary_key in SUPPRESSION_STREAMS.items():
        got = {key_of(r, primary_key) for r in union.get(stream, [])}
        assert got == {key_of(r, primary_key) for r in truth[stream]}, stream


def test_ten_percent_faults_still_give_the_exact_truth(emulator):
    emulator.set_faults({"500": 0.03, "503": 0.02, "429": 0.02, "drop": 0.01, "truncate": 0.01, "nonjson": 0.01}, seed=3)
    config = config_for(emulator, window_days=365)
    run = run_cli("read", config, catalog_for(config, SUPPRESSION_STREAMS, mode="full_refresh"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert sum(emulator.faults.injected.values()) > 0, "no fault was injected: the test proves nothing"
    assert_equals_truth(run.records(), emulator.truth())


def test_a_key_without_suppression_scopes_skips_those_streams_and_succeeds(emulator):
    emulator.add_key("SG.groups-only", ["asm.groups.read"])
    config = config_for(emulator, api_key="SG.groups-only")
    output = read_in_process(config, catalog_for(config, SUPPRESSION_STREAMS))
    assert not output.errors
    emitted = records_of(output)
    assert set(emitted) == {"suppression_groups"}
    warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
    assert any("bounces" in w and "suppression.bounces.read" in w for w in warnings)


def test_check_lists_the_streams_the_key_cannot_read(emulator):
    emulator.add_key("SG.bounces-only", ["suppression.bounces.read"])
    run = run_cli("check", config_for(emulator, api_key="SG.bounces-only"))
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "SUCCEEDED"
    assert "blocks (needs suppression.blocks.read)" in status["message"]
    assert "bounces (" not in status["message"]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"api_key": "SG.wrong-key"}, "SendGrid rejected the API key"),
        ({"start_date": "2024-13-45"}, "`start_date` must look like"),
        ({"api_base_url": "http://example.com"}, "`api_base_url` must be an https:// URL"),
    ],
)
def test_bad_config_fails_check_and_read_with_a_clear_message(emulator, overrides, expected):
    config = config_for(emulator, **overrides)
    check = run_cli("check", config)
    status = check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and expected in status["message"]
    catalog = catalog_for(config_for(emulator), ["bounces"])
    read = run_cli("read", config, catalog)
    assert read.returncode != 0
    assert any(expected in message for message in read.error_messages()), read.error_messages()
    assert "Traceback" not in status["message"]
    assert "SG.wrong-key" not in read.stdout + read.stderr + check.stdout + check.stderr
