"""Hostile API bodies through a real read: wrong types, nulls, huge and unicode strings, missing and extra
keys, deep nesting. A read must never crash with a generic traceback, and every record it emits must match
its stream's schema (validated with jsonschema); otherwise it fails with a clear error."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List

import pytest
import requests_mock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from source_sendgrid.config import SendgridConfig
from source_sendgrid.errors import RequestStats
from source_sendgrid.scopes import ScopeGate
from source_sendgrid.streams import ALL_STREAMS
from unit_tests.builders import ALL_SCOPES, config, records, run_read

GENERIC_CRASH = "Something went wrong in the connector"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# One stream per shape of body and base class; others join when named here.
REPRESENTATIVES = ["bounces", "suppression_groups", "suppression_group_members", "lists", "templates", "legacy_lists",
                   "verified_senders", "global_stats",
                   "engagement_quality_scores", "subuser_engagement_quality_scores", "bounce_classifications"]


def _streams() -> Dict[str, Any]:
    parsed = SendgridConfig.from_mapping(config())
    built = {}
    for stream_class in ALL_STREAMS:
        stream = stream_class(parsed, ScopeGate(lambda: None), RequestStats())
        built[stream.name] = stream
    return built


STREAMS = _streams()
CHOSEN = [name for name in REPRESENTATIVES if name in STREAMS]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)), max_size=20),
    st.sampled_from(["", "null", "2024-02-30T00:00:00Z", "1709251201", "99999999999999999999", "²", "NaN",
                     "0", "-1", "true", "x" * 100_000, "\u0000\u202e", "2024-01-31 12:00:00"]),
    st.sampled_from([10**18, -(10**18), 2**62, 1.5e300, -0.0]),
)


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"nested": [value]}
    return value


values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=8), scalars, max_size=4),
    st.integers(min_value=20, max_value=200).map(deep),
)


@st.composite
def hostile_record(draw, properties: List[str]) -> Any:
    if draw(st.integers(0, 19)) == 0:  # now and then, not an object at all
        return draw(values)
    keys = draw(st.lists(st.sampled_from(properties), unique=True)) if properties else []
    record = {key: draw(values) for key in keys}
    record.update(draw(st.dictionaries(st.text(max_size=12), values, max_size=3)))
    return record


@st.composite
def hostile_body(draw, stream_name: str) -> Any:
    stream = STREAMS[stream_name]
    properties = list(stream.get_json_schema().get("properties", {}))
    items = draw(st.lists(hostile_record(properties), max_size=6))
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(values)  # any JSON at all
    if stream.records_key:
        return {stream.records_key[0]: items, **draw(st.dictionaries(st.text(max_size=8), scalars, max_size=2))}
    return items


def read_with_body(stream_name: str, body: Any):
    answered = set()

    def respond(request, context):
        context.status_code = 200
        if request.path == "/v3/scopes":
            return json.dumps({"scopes": ALL_SCOPES + [s for st_ in STREAMS.values() for s in st_.required_scopes]})
        if request.path in answered:
            return json.dumps({STREAMS[stream_name].records_key[0]: []} if STREAMS[stream_name].records_key else [])
        answered.add(request.path)
        return json.dumps(body)

    with requests_mock.Mocker() as mocker:
        mocker.register_uri(requests_mock.ANY, requests_mock.ANY, text=respond)
        return run_read(config(), stream_name, expecting_exception=True)


def check(stream_name: str, output) -> None:
    skipped = [m.log.message for m in output.logs if "Skipping stream" in m.log.message]
    assert not skipped, f"the stream was skipped, so the body was never parsed: {skipped}"
    for error in output.errors:
        message = error.trace.error.message or ""
        assert GENERIC_CRASH not in message, f"{stream_name}: crashed: {error.trace.error.internal_message}"
    schema = STREAMS[stream_name].get_json_schema()
    validator = Draft7Validator(schema)
    date_fields = [name for name, spec in schema.get("properties", {}).items() if spec.get("format") == "date-time"]
    for record in records(output):
        problems = [f"{'/'.join(map(str, e.path))}: {e.message[:120]}" for e in validator.iter_errors(record)]
        assert not problems, f"{stream_name}: emitted a record that violates its schema: {problems}"
        for name in date_fields:
            value = record.get(name)
            assert value is None or RFC3339.match(value), f"{stream_name}.{name} is not an RFC 3339 time: {value!r:.80}"


@pytest.mark.parametrize("stream_name", CHOSEN)
def test_hostile_bodies_never_crash_a_read_nor_break_the_schema(stream_name):
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(body=hostile_body(stream_name))
    def run(body):
        check(stream_name, read_with_body(stream_name, body))

    run()


@pytest.mark.parametrize("body", [
    [{"email": 12345, "created": "yesterday", "reason": {"a": 1}, "status": ["x"]}],
    [{"email": "a@example.com", "created": 10**20}],
    [{"email": "a@example.com", "created": "²"}],
    [None, 7, "text", ["list"]],
    [{"email": "ok@example.com", "created": 1709000000, "extra": deep(300)}],
])
def test_known_hostile_suppression_bodies(body):
    output = read_with_body("bounces", body)
    check("bounces", output)
    if isinstance(body[0], dict) and body[0].get("email") == "ok@example.com":
        assert records(output)[0]["email"] == "ok@example.com"
