"""The files acceptance-test-config.yml points at are right, and cover what the CDK's standard tests do not:
expected records, incremental reads from a future state, and a configured catalog of discoverable streams.
Regenerate the files with `.venv/bin/python -m integration_tests.acceptance --write`."""

import json

import pytest
import yaml

from integration_tests.acceptance import (
    CATALOG,
    CONFIG,
    EXPECTED_RECORD_STREAMS,
    FUTURE_STATE,
    INVALID_CONFIG,
    acceptance_emulator,
    expected_records,
    load_json,
)
from sendgrid_emulator.harness import catalog_for, read_in_process, records_of, run_cli
from integration_tests.acceptance import HERE

ROOT = HERE.parent
REGENERATE = "run `.venv/bin/python -m integration_tests.acceptance --write`"


@pytest.fixture(scope="module")
def acceptance_emulator_running():
    with acceptance_emulator() as running:
        yield running


def test_acceptance_config_points_at_existing_files():
    config = yaml.safe_load((ROOT / "acceptance-test-config.yml").read_text())
    paths = []
    for section in config["acceptance_tests"].values():
        for entry in section["tests"]:
            paths += [entry.get("config_path"), entry.get("configured_catalog_path"), entry.get("spec_path"),
                      (entry.get("expect_records") or {}).get("path"), (entry.get("future_state") or {}).get("future_state_path")]
    missing = [path for path in paths if path and not (ROOT / path).is_file()]
    assert not missing
    assert set(config["acceptance_tests"]) == {"spec", "connection", "discovery", "basic_read", "full_refresh", "incremental"}


def test_configured_catalog_lists_only_discovered_streams(acceptance_emulator_running):
    discovered = {c["stream"]["name"] for c in catalog_for(load_json(CONFIG), mode="full_refresh")["streams"]}
    listed = [c["stream"]["name"] for c in load_json(CATALOG)["streams"]]
    assert len(listed) == len(set(listed))
    assert set(listed) <= discovered, f"not discovered: {set(listed) - discovered}; {REGENERATE}"


def test_expected_records_equal_a_read_of_the_seeded_account(acceptance_emulator_running):
    config = load_json(CONFIG)
    catalog = catalog_for(config, EXPECTED_RECORD_STREAMS, mode="full_refresh")
    emitted = records_of(read_in_process(config, catalog))
    expected = {}
    for line in expected_records():
        expected.setdefault(line["stream"], []).append(json.dumps(line["data"], sort_keys=True))
    assert set(expected) == set(EXPECTED_RECORD_STREAMS)
    for stream in EXPECTED_RECORD_STREAMS:
        got = sorted(json.dumps(record, sort_keys=True) for record in emitted.get(stream, []))
        assert got == sorted(expected[stream]), f"{stream}: expected_records.jsonl is stale; {REGENERATE}"


def test_incremental_read_from_the_future_state_emits_nothing_for_those_streams(acceptance_emulator_running):
    config = load_json(CONFIG)
    catalog = load_json(CATALOG)
    states = load_json(FUTURE_STATE)
    stated = {state["stream"]["stream_descriptor"]["name"] for state in states}
    incremental = {c["stream"]["name"] for c in catalog["streams"] if c["sync_mode"] == "incremental"}
    assert stated == incremental, f"sample_state.json does not match the catalog's incremental streams; {REGENERATE}"

    output = read_in_process(config, catalog, state=states)
    assert not output.errors
    emitted = records_of(output)
    assert {stream: len(emitted[stream]) for stream in stated if emitted.get(stream)} == {}
    # Full-refresh streams are read whole whatever the state.
    assert emitted.get("suppression_groups")


def test_check_with_the_acceptance_configs_through_the_cli(acceptance_emulator_running):
    good = run_cli("check", load_json(CONFIG))
    bad = run_cli("check", load_json(INVALID_CONFIG))
    assert [m["connectionStatus"]["status"] for m in good.of_type("CONNECTION_STATUS")] == ["SUCCEEDED"]
    assert [m["connectionStatus"]["status"] for m in bad.of_type("CONNECTION_STATUS")] == ["FAILED"]
