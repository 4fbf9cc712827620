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
from datetime import timedelta
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Sequence

import jsonschema
import pytest
from airbyte_cdk.models import AirbyteMessageSerializer, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, discover

from integration_tests import cat_rules
from integration_tests.acceptance import CONFIG, EMULATOR_SEED, EMULATOR_SIZE, FUTURE_STATE, load_json
from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, read_in_process, records_of, run_cli
from source_sendgrid import SourceSendgrid


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


# --- sequential reads from checkpoints -----------------------------------------------------------------

def messages_of(output: EntrypointOutput) -> List[Dict[str, Any]]:
    return [AirbyteMessageSerializer.dump(message) for message in output.records_and_state_messages]


def declared_rereads(config: Mapping[str, Any]) -> Dict[str, timedelta]:
    """How far before its state each stream reads again: the config's lookback, plus the minimum a stream
    re-reads whatever the config says (daily statistics that SendGrid still corrects)."""
    lookback = timedelta(days=config.get("lookback_days") or 0)
    return {stream.name: lookback + getattr(stream, "min_lookback", timedelta(0)) for stream in SourceSendgrid().streams(config)}


@pytest.mark.parametrize("stream", incremental_streams())
def test_every_checkpoint_of_a_read_without_state_comes_after_a_record(first_read, stream):
    """A checkpoint before the stream's first record would make a read resumed from it read everything again:
    CAT sampled such a state and failed the sequential-slices check."""
    records, checkpoints = cat_rules.records_and_checkpoints(messages_of(first_read), stream)
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
    records, checkpoints = cat_rules.records_and_checkpoints(messages_of(first_read), stream)
    if not records:
        pytest.skip(f"the emulator's account has no {stream} record")
    cursor_path = stream_named(stream).default_cursor_field
    reread = declared_rereads(account.config)[stream]
    catalog = incremental_catalog(account, [stream])
    problems = []
    for checkpoint in cat_rules.sampled(checkpoints):
        resumed = records_of(read(account, catalog, state=cat_rules.state_input(stream, checkpoint.state))).get(stream, [])
        problems += cat_rules.resumed_read_problems(stream, records, checkpoint, resumed, cursor_path, reread)
    assert not problems


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
    states = [dict(m.state.stream.stream_state.__dict__) for m in future_read.state_messages
              if m.state.stream.stream_descriptor.name == stream]
    emitted = len(records_of(future_read).get(stream, []))
    assert not cat_rules.future_state_problems(stream, given[stream], emitted, states, stream_named(stream).default_cursor_field[-1])


# --- full refresh, secrets, schemas --------------------------------------------------------------------

@pytest.mark.parametrize("stream", all_streams())
def test_two_full_refresh_reads_emit_the_same_records(full_refresh_reads, stream):
    first, second = (records_of(output).get(stream, []) for output in full_refresh_reads)
    assert cat_rules.as_json(first) == cat_rules.as_json(second), f"{stream}: {len(first)} then {len(second)} records, or different ones"


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
