"""Airbyte's acceptance checks that the CDK's standard tests (test_standard_suite.py) do not make, in-process
against the emulator, with the rules of Airbyte's connector acceptance test suite (CAT):

- reads resumed from a sample of the checkpoints a first read emitted (CAT's `test_read_sequential_slices`);
- a read from the future state file (CAT's `test_state_with_abnormally_large_values`);
- a full refresh read twice gives the same records;
- the config's secrets appear in no output;
- every primary key and cursor field is in the stream's schema;
- every record fits its stream's schema, with no undeclared column.

Streams come from discover, so a new stream is checked without editing this file. The account and config
are the acceptance files' (config_emulator.json, emulator size and seed of `integration_tests.acceptance`),
on a port of their own. `.ci/image.sh` makes the future-state and sequential-slices reads against the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import jsonschema
import pytest
from airbyte_cdk.models import AirbyteMessage, AirbyteMessageSerializer, SyncMode, Type
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, discover

from integration_tests.acceptance import CONFIG, EMULATOR_SEED, EMULATOR_SIZE, FUTURE_STATE, load_json
from integration_tests.emulator import Emulator
from integration_tests.harness import catalog_for, read_in_process, records_of, run_cli
from source_sendgrid import SourceSendgrid

# CAT reads from 4 or 5 checkpoints of a stream; 3 cover the start, the middle and the end of a read.
MAX_CHECKPOINTS_PER_STREAM = 3


@lru_cache(maxsize=1)
def discovered() -> Tuple[Any, ...]:
    """The streams discover lists (discover sends no request, so the acceptance config does as it is)."""
    return tuple(discover(SourceSendgrid(), load_json(CONFIG)).catalog.catalog.streams)


def all_streams() -> List[str]:
    return [stream.name for stream in discovered()]


def incremental_streams() -> List[str]:
    return [stream.name for stream in discovered() if SyncMode.incremental in stream.supported_sync_modes]


def stream_named(name: str) -> Any:
    return next(stream for stream in discovered() if stream.name == name)


@dataclass
class Account:
    emulator: Emulator
    config: Dict[str, Any]
    runs: List[EntrypointOutput]  # every read this module made, for the secrets check


@pytest.fixture(scope="module")
def account():
    with Emulator(size=EMULATOR_SIZE, seed=EMULATOR_SEED) as emulator:
        yield Account(emulator, {**load_json(CONFIG), "api_base_url": emulator.url}, [])


def read(account: Account, catalog: Mapping[str, Any], state: Optional[List[Dict[str, Any]]] = None) -> EntrypointOutput:
    output = read_in_process(account.config, catalog, state=state)
    account.runs.append(output)
    assert not output.errors, [error.trace.error.message for error in output.errors]
    return output


def incremental_catalog(account: Account, streams: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Every named stream that supports incremental, configured incremental: what CAT's incremental tests read."""
    return catalog_for(account.config, streams if streams is not None else incremental_streams())


@pytest.fixture(scope="module")
def first_read(account):
    """One incremental read of every incremental stream without a state: the checkpoints CAT resumes from."""
    return read(account, incremental_catalog(account))


@pytest.fixture(scope="module")
def full_refresh_reads(account):
    catalog = catalog_for(account.config, mode="full_refresh")
    return read(account, catalog), read(account, catalog)


@pytest.fixture(scope="module")
def future_read(account):
    """CAT's abnormal-state read: every stream that advertises incremental, incremental, from the future state file."""
    return read(account, incremental_catalog(account), state=load_json(FUTURE_STATE))


# --- checkpoints ---------------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    state: Dict[str, Any]
    records_after: int  # records the read emitted after this checkpoint


def stream_state(message: AirbyteMessage) -> Dict[str, Any]:
    return dict(message.state.stream.stream_state.__dict__)


def records_and_checkpoints(output: EntrypointOutput, stream: str) -> Tuple[List[Dict[str, Any]], List[Checkpoint]]:
    """The stream's records and its distinct checkpoints, in order (a state repeated is one checkpoint)."""
    records: List[Dict[str, Any]] = []
    seen: List[Tuple[Dict[str, Any], int]] = []
    for message in output.records_and_state_messages:
        if message.type == Type.RECORD and message.record.stream == stream:
            records.append(message.record.data)
        elif message.type == Type.STATE and message.state.stream.stream_descriptor.name == stream:
            state = stream_state(message)
            if not seen or seen[-1][0] != state:
                seen.append((state, len(records)))
    return records, [Checkpoint(state, len(records) - before) for state, before in seen]


def sampled(checkpoints: List[Checkpoint]) -> List[Checkpoint]:
    """CAT's sample: neither the first checkpoint (a source may checkpoint its empty start) nor the last (the
    read's end, from which nothing need come), spread over the read; the last alone when there is no other."""
    middle = checkpoints[1:-1]
    if not middle:
        return checkpoints[-1:]
    count = min(MAX_CHECKPOINTS_PER_STREAM, len(middle))
    if count == 1:
        return middle[:1]
    return [middle[round(i * (len(middle) - 1) / (count - 1))] for i in range(count)]


def as_json(records: List[Dict[str, Any]]) -> List[str]:
    return sorted(json.dumps(record, sort_keys=True) for record in records)


def moment(value: Any) -> Optional[datetime]:
    """A cursor value (RFC 3339 date-time, plain date or epoch seconds) as a UTC moment."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = str(value)
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def value_at(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def declared_rereads(config: Mapping[str, Any]) -> Dict[str, timedelta]:
    """How far before its state each stream reads again: the config's lookback, plus the minimum a stream
    re-reads whatever the config says (daily statistics that SendGrid still corrects)."""
    lookback = timedelta(days=config.get("lookback_days") or 0)
    return {stream.name: lookback + getattr(stream, "min_lookback", timedelta(0)) for stream in SourceSendgrid().streams(config)}


# --- sequential reads from checkpoints -----------------------------------------------------------------

@pytest.mark.parametrize("stream", incremental_streams())
def test_every_checkpoint_of_a_read_without_state_comes_after_a_record(first_read, stream):
    """A checkpoint before the stream's first record would make a read resumed from it read everything again:
    CAT sampled such a state and failed the sequential-slices check."""
    records, checkpoints = records_and_checkpoints(first_read, stream)
    if not records:
        pytest.skip(f"the emulator's account has no {stream} record")
    assert checkpoints, f"{stream}: a read that emitted records emitted no state"
    early = [checkpoint.state for checkpoint in checkpoints if checkpoint.records_after == len(records)]
    assert not early, f"{stream}: checkpoint(s) before the first record: {early}"


@pytest.mark.parametrize("stream", incremental_streams())
def test_reads_resumed_from_sampled_checkpoints_emit_what_followed_them_and_nothing_older(account, first_read, stream):
    """CAT's `test_read_sequential_slices`, per stream: from each sampled checkpoint, a read differs from the
    first one, emits at least as many records as followed that checkpoint in it, and no record older than the
    checkpoint (less the stream's declared re-read: the config's lookback, 3 days of statistics)."""
    records, checkpoints = records_and_checkpoints(first_read, stream)
    if not records:
        pytest.skip(f"the emulator's account has no {stream} record")
    cursor_path = stream_named(stream).default_cursor_field
    reread = declared_rereads(account.config)[stream]
    catalog = incremental_catalog(account, [stream])
    for checkpoint in sampled(checkpoints):
        state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": checkpoint.state}}]
        resumed = records_of(read(account, catalog, state=state)).get(stream, [])
        assert as_json(resumed) != as_json(records), f"{stream}: a read from {checkpoint.state} emitted the same records as a read without state"
        assert len(resumed) >= checkpoint.records_after, (
            f"{stream}: a read from {checkpoint.state} emitted {len(resumed)} records, {checkpoint.records_after} followed it in the first read")
        floor = moment(checkpoint.state[cursor_path[-1]]) - reread
        older = [value_at(r, cursor_path) for r in resumed if moment(value_at(r, cursor_path)) < floor]
        assert not older, f"{stream}: a read from {checkpoint.state} emitted records older than it: {older[:3]}"


# --- the future state ----------------------------------------------------------------------------------

def test_the_future_state_file_has_an_entry_for_every_stream_that_advertises_incremental():
    stated = {state["stream"]["stream_descriptor"]["name"] for state in load_json(FUTURE_STATE)}
    missing = sorted(set(incremental_streams()) - stated)
    assert not missing, f"{FUTURE_STATE.name} has no state for {missing}; run `.venv/bin/python -m integration_tests.acceptance --write`"


@pytest.mark.parametrize("stream", incremental_streams())
def test_a_read_from_the_future_state_emits_no_record_and_keeps_the_state(future_read, stream):
    """CAT's `test_state_with_abnormally_large_values`: no record, and a state in the format of the one given
    (CAT compares the cursor values' types and character classes)."""
    given = {state["stream"]["stream_descriptor"]["name"]: state["stream"]["stream_state"] for state in load_json(FUTURE_STATE)}
    assert stream in given, f"{FUTURE_STATE.name} has no state for {stream}"
    assert not records_of(future_read).get(stream), f"{stream} emitted records from a state in the future"
    states = [stream_state(m) for m in future_read.state_messages if m.state.stream.stream_descriptor.name == stream]
    assert states, f"{stream}: no state message"
    cursor = stream_named(stream).default_cursor_field[-1]
    emitted, future = states[-1].get(cursor), given[stream].get(cursor)
    assert type(emitted) is type(future) and character_classes(emitted) == character_classes(future), (
        f"{stream}: the state {states[-1]} does not have the format of the future state {given[stream]}")
    assert moment(emitted) >= moment(future), f"{stream}: the state went back from {future} to {emitted}"


def character_classes(value: Any) -> str:
    text = str(value)
    return "".join("9" if c.isdigit() else "a" if c.isalpha() else c for c in text)


# --- full refresh, secrets, schemas --------------------------------------------------------------------

@pytest.mark.parametrize("stream", all_streams())
def test_two_full_refresh_reads_emit_the_same_records(full_refresh_reads, stream):
    first, second = (records_of(output).get(stream, []) for output in full_refresh_reads)
    assert as_json(first) == as_json(second), f"{stream}: {len(first)} then {len(second)} records, or different ones"


def test_no_secret_of_the_config_appears_in_any_output(account, first_read, full_refresh_reads, future_read):
    spec = SourceSendgrid().spec(None).connectionSpecification
    secret_fields = [name for name, field in spec["properties"].items() if field.get("airbyte_secret")]
    secrets = [account.config[name] for name in secret_fields if isinstance(account.config.get(name), str)]
    assert secrets, "the config holds no field the spec marks airbyte_secret"
    texts = [("discover", json.dumps([AirbyteMessageSerializer.dump(m) for m in [discover(SourceSendgrid(), account.config).catalog]]))]
    check = run_cli("check", account.config)
    texts += [("check stdout", check.stdout), ("check stderr", check.stderr)]
    for index, output in enumerate(account.runs):
        messages = json.dumps([AirbyteMessageSerializer.dump(m) for m in output.get_message_iterator()])
        texts += [(f"read {index + 1}", messages), (f"read {index + 1} stderr", output.stderr or "")]
    leaks = [where for where, text in texts for secret in secrets if secret in text]
    assert not leaks, f"a secret of the config appears in: {leaks}"


@pytest.mark.parametrize("stream", all_streams())
def test_the_primary_key_and_cursor_field_are_in_the_schema(stream):
    declared = stream_named(stream)
    paths = list(declared.source_defined_primary_key or []) + ([declared.default_cursor_field] if declared.default_cursor_field else [])
    assert declared.default_cursor_field or SyncMode.incremental not in declared.supported_sync_modes, f"{stream}: incremental without a cursor"
    for path in paths:
        schema: Mapping[str, Any] = declared.json_schema
        for part in path:
            schema = (schema.get("properties") or {}).get(part)
            assert schema is not None, f"{stream}: {'.'.join(path)} is not in the schema"


@pytest.mark.parametrize("stream", all_streams())
def test_every_record_fits_the_schema_with_no_undeclared_column(first_read, full_refresh_reads, stream):
    schema = stream_named(stream).json_schema
    validator = jsonschema.Draft7Validator(schema)
    declared = set(schema.get("properties") or {})
    emitted = records_of(full_refresh_reads[0]).get(stream, []) + records_of(first_read).get(stream, [])
    for record in emitted:
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(record)]
        assert not errors, f"{stream}: a record does not fit the schema: {errors[:3]}"
        undeclared = sorted(set(record) - declared)
        assert not undeclared, f"{stream}: columns not in the schema: {undeclared}"
