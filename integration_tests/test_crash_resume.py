"""Crash safety, end to end: SIGKILL the connector at seeded random points of full and incremental syncs of
every stream in the catalog, resume from the last state it emitted, and check that the union of the records
equals the emulator's ground truth (at-least-once: a record of the window in progress may come twice).

Every state message must be valid JSON for a stream of the catalog, and older state shapes must still load.
`CRASH_SEEDS=40` runs more seeds (the CI default is a handful).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, Dict, List, Mapping, Optional

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import (
    CliRun,
    catalog_for,
    config_for,
    key_of,
    latest_states,
    read_in_process,
    records_of,
    run_cli,
    run_cli_killed_after,
)

SEEDS = range(int(os.environ.get("CRASH_SEEDS", "3")))
START_DATE = "2022-12-01T00:00:00Z"
SIZE = 120
# Streams read by time window on their cursor: a read from a cursor emits exactly what is newer.
TIME_WINDOWED = {"bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions"}
INCREMENTAL_SEEDS = range(int(os.environ.get("CRASH_SEEDS", "2")))


def _config(emulator: Emulator) -> Dict[str, Any]:
    return config_for(emulator, start_date=START_DATE, window_days=60)


def new_emulator(**kwargs: Any) -> Emulator:
    """An emulator with every family (or those named in RELIABILITY_FAMILIES, comma-separated, to debug one)."""
    families = [f for f in os.environ.get("RELIABILITY_FAMILIES", "").split(",") if f] or None
    return Emulator(families=families, **kwargs)


def covered_catalog(emulator: Emulator, config: Mapping[str, Any], mode: str = "incremental") -> Dict[str, Any]:
    """Every discovered stream the emulator has a ground truth for (new families join automatically)."""
    truth = emulator.truth()
    return {"streams": [c for c in catalog_for(config, mode=mode)["streams"] if c["stream"]["name"] in truth]}


def primary_keys(catalog: Mapping[str, Any]) -> Dict[str, List[str]]:
    return {c["stream"]["name"]: [p[0] for p in c["stream"].get("source_defined_primary_key") or []] for c in catalog["streams"]}


def check_states(run: CliRun, catalog: Mapping[str, Any]) -> None:
    """Every state line parsed as JSON (the harness drops only a line cut short by the kill) and names a
    stream of the catalog with an object state."""
    names = {c["stream"]["name"] for c in catalog["streams"]}
    for message in run.of_type("STATE"):
        state = message["state"]
        assert state.get("type") == "STREAM", state
        name = state["stream"]["stream_descriptor"]["name"]
        assert name in names, f"state for a stream not in the catalog: {name}"
        assert isinstance(state["stream"].get("stream_state"), dict), state
        json.loads(json.dumps(state))


def merge_states(older: Optional[List[dict]], newer: List[dict]) -> List[dict]:
    """What the platform keeps: the last state of each stream, a newer run's replacing an older one's."""
    merged = {s["stream"]["stream_descriptor"]["name"]: s for s in (older or [])}
    merged.update({s["stream"]["stream_descriptor"]["name"]: s for s in newer})
    return list(merged.values())


def sync_with_crashes(config: Mapping[str, Any], catalog: Mapping[str, Any], state: Optional[List[dict]],
                      rng: random.Random, max_lines: int, crashes: int) -> tuple:
    """Kill the sync `crashes` times at random points, resuming each time, then let it finish."""
    emitted: Dict[str, List[dict]] = {}
    kills = 0
    for attempt in range(crashes + 1):
        if attempt < crashes:
            run = run_cli_killed_after(config, catalog, state, kill_after_lines=rng.randint(2, max_lines))
        else:
            run = run_cli("read", config, catalog, state=state)
            assert run.returncode == 0, run.error_messages() or run.stderr[-2000:]
        kills += run.returncode != 0
        check_states(run, catalog)
        for stream, records in run.records().items():
            emitted.setdefault(stream, []).extend(records)
        state = merge_states(state, run.last_states())
    return emitted, state, kills


def assert_union_equals_truth(emitted: Mapping[str, List[dict]], truth: Mapping[str, List[dict]], catalog: Mapping[str, Any]) -> None:
    for stream, primary_key in primary_keys(catalog).items():
        if stream not in truth or not primary_key:
            continue
        expected = {key_of(r, primary_key): r for r in truth[stream]}
        got = {key_of(r, primary_key): r for r in emitted.get(stream, [])}
        missing = set(expected) - set(got)
        assert not missing, f"{stream}: {len(missing)} records lost, e.g. {sorted(missing)[:3]}"
        assert set(got) <= set(expected), f"{stream}: records that are not in the truth"
        for record in emitted.get(stream, []):
            assert record == expected[key_of(record, primary_key)], f"{stream}: a record differs from the truth"


@pytest.fixture(scope="module")
def lines_of_a_full_sync():
    """How many lines an uninterrupted full sync prints, so kill points fall inside it."""
    with new_emulator(size=SIZE, seed=21) as emulator:
        config = _config(emulator)
        run = run_cli("read", config, covered_catalog(emulator, config))
        assert run.returncode == 0
        return len(run.stdout.splitlines())


@pytest.mark.parametrize("seed", SEEDS)
def test_full_sync_killed_at_random_points_resumes_to_the_exact_truth(seed, lines_of_a_full_sync):
    rng = random.Random(seed)
    with new_emulator(size=SIZE, seed=21) as emulator:
        config = _config(emulator)
        catalog = covered_catalog(emulator, config)
        emitted, _, kills = sync_with_crashes(config, catalog, None, rng, lines_of_a_full_sync, crashes=rng.choice([1, 2, 3]))
        truth = emulator.truth()
    assert kills >= 1, "the sync finished before every kill"
    assert_union_equals_truth(emitted, truth, catalog)


@pytest.mark.parametrize("seed", INCREMENTAL_SEEDS)
def test_incremental_sync_killed_at_random_points_emits_every_new_record(seed):
    rng = random.Random(1000 + seed)
    with new_emulator(size=SIZE, seed=22) as emulator:
        config = _config(emulator)
        catalog = covered_catalog(emulator, config)
        first = read_in_process(config, catalog)
        assert not first.errors
        before = emulator.truth()
        for family in emulator.families:
            try:
                emulator.mutate(family, "add", count=rng.randint(1, 30))
            except (ValueError, KeyError):
                pass  # a family without an "add" mutation
        time.sleep(1.1)  # windows end a second before the sync starts
        after = emulator.truth()
        incremental_lines = 15 + 4 * len(catalog["streams"])
        emitted, _, kills = sync_with_crashes(config, catalog, latest_states(first), rng, incremental_lines, crashes=1)
    assert kills >= 1, "the incremental sync finished before every kill"
    new_keys_seen = 0
    for stream, primary_key in primary_keys(catalog).items():
        if stream not in after or not primary_key:
            continue
        old = {key_of(r, primary_key) for r in before[stream]}
        new = {key_of(r, primary_key) for r in after[stream]} - old
        got = {key_of(r, primary_key) for r in emitted.get(stream, [])}
        assert new <= got, f"{stream}: {len(new - got)} new records lost across the crashes"
        new_keys_seen += len(new)
    assert new_keys_seen, "the mutation added nothing: the test proves nothing"
    # Nothing emitted that is not in the truth, and every record as the truth has it now.
    for stream, primary_key in primary_keys(catalog).items():
        if stream in after and primary_key:
            expected = {key_of(r, primary_key): r for r in after[stream]}
            for record in emitted.get(stream, []):
                assert record == expected.get(key_of(record, primary_key)), f"{stream}: a record not as in the truth"


# --- state shapes ------------------------------------------------------------------------------

def windowed_cursor_streams(catalog: Mapping[str, Any]) -> Dict[str, str]:
    return {c["stream"]["name"]: c["cursor_field"][0] for c in catalog["streams"] if c["sync_mode"] == "incremental"}


def test_epoch_integer_cursors_of_older_states_still_load():
    """States from before RFC 3339 cursors held epoch seconds: a read from them emits exactly what is newer."""
    with new_emulator(size=60, seed=23) as emulator:
        config = _config(emulator)
        catalog = covered_catalog(emulator, config)
        cursors = windowed_cursor_streams(catalog)
        truth = emulator.truth()
        threshold = 1735689600  # 2025-01-01T00:00:00Z
        state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": {field: threshold}}}
                 for name, field in cursors.items()]
        output = read_in_process(config, catalog, state=state)
    assert not output.errors, [e.trace.error.message for e in output.errors]
    emitted = records_of(output)
    checked = 0
    for name, field in cursors.items():
        if name not in truth:
            continue
        expected = sorted(r[field] for r in truth[name] if (r.get(field) or "") > "2025-01-01T00:00:00Z")
        got = sorted(r.get(field) or "" for r in emitted.get(name, []))
        if name in TIME_WINDOWED:
            assert got == expected, f"{name}: read from an epoch cursor emitted {len(got)} records, expected {len(expected)}"
        else:  # streams that re-read more than the cursor (memberships, lookbacks) must at least lose nothing
            assert not set(expected) - set(got), f"{name}: records newer than an epoch cursor were lost"
        checked += 1
    assert checked
    for state in latest_states(output):
        name = state["stream"]["stream_descriptor"]["name"]
        if name in cursors:
            value = state["stream"]["stream_state"][cursors[name]]
            assert isinstance(value, str) and value.endswith("Z"), "new states are written as RFC 3339 strings"


def test_the_legacy_global_state_dict_loads_through_the_cli():
    """`{"bounces": {"created": ...}}`, the shape before per-stream state messages."""
    with new_emulator(size=60, seed=24) as emulator:
        config = _config(emulator)
        catalog = catalog_for(config, ["bounces"])
        legacy = {"bounces": {"created": 1735689600}}
        run = run_cli("read", config, catalog, state=legacy)  # type: ignore[arg-type]
        truth = emulator.truth()
    assert run.returncode == 0, run.error_messages() or run.stderr[-1500:]
    got = sorted(r["created"] for r in run.records().get("bounces", []))
    assert got == sorted(r["created"] for r in truth["bounces"] if r["created"] > "2025-01-01T00:00:00Z")
