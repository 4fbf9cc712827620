"""The command line's own record path (source_sendgrid/run.py) writes what the CDK's entrypoint writes."""

import json
import logging

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteRecordMessage,
    ConfiguredAirbyteCatalogSerializer,
    SyncMode,
    Type,
)
from airbyte_cdk.test.mock_http import HttpMocker
from airbyte_protocol_dataclasses.models import AirbyteRecordMessageMeta

from source_sendgrid import SourceSendgrid
from source_sendgrid.output import page_lines, record_line
from source_sendgrid.run import SendgridEntrypoint, write_lines
from unit_tests.builders import api_request, catalog, config, json_response, scopes_request, scopes_response

JAN_1_2024 = 1704067200


def _bounces(count, first=0):
    return [{"created": JAN_1_2024 + 60, "email": f"b{first + n}@exämple.com", "reason": "550 “quoted”", "status": None}
            for n in range(count)]


def _lines(entrypoint_class, tmp_path, sync_mode, *options):
    (tmp_path / "config.json").write_text(json.dumps(config(window_days=30, start_date="2024-01-01T00:00:00Z")))
    (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog("bounces", sync_mode))))
    entrypoint = entrypoint_class(SourceSendgrid())
    args = entrypoint.parse_args(["read", "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json"),
                                  *options])
    return [line for text in entrypoint.run(args) for line in text.split("\n")]  # a page of records is one text


def _comparable(line):
    """A message with its clock readings removed."""
    message = json.loads(line)
    for part in ("record", "trace"):
        if part in message:
            message[part].pop("emitted_at", None)
    return message


def test_given_the_same_responses_when_read_by_both_entrypoints_then_they_write_the_same_messages(tmp_path):
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/suppression/bounces"), [json_response(_bounces(500)), json_response(_bounces(3, 500)),
                                                          json_response([])])
        ours = _lines(SendgridEntrypoint, tmp_path, SyncMode.incremental)
    with HttpMocker() as http:
        http.get(scopes_request(), scopes_response())
        http.get(api_request("/v3/suppression/bounces"), [json_response(_bounces(500)), json_response(_bounces(3, 500)),
                                                          json_response([])])
        cdk = _lines(AirbyteEntrypoint, tmp_path, SyncMode.incremental)
    assert [_comparable(line) for line in ours] == [_comparable(line) for line in cdk]
    written = [_comparable(line) for line in ours]
    assert sum(m["type"] == "RECORD" for m in written) == 503
    # Each state carries the count of records since the previous one, as the CDK sets it.
    counts = [m["state"]["sourceStats"]["recordCount"] for m in written if m["type"] == "STATE"]
    assert sum(counts) == 503.0


def test_given_debug_when_read_by_both_entrypoints_then_the_cdks_and_the_streams_loggers_log_debug_alike(tmp_path):
    airbyte = logging.getLogger("airbyte")
    stream_logs_debug = []
    try:
        for entrypoint_class in (SendgridEntrypoint, AirbyteEntrypoint):
            airbyte.setLevel(logging.INFO)
            with HttpMocker() as http:
                http.get(scopes_request(), scopes_response())
                http.get(api_request("/v3/suppression/bounces"), json_response([]))
                _lines(entrypoint_class, tmp_path, SyncMode.full_refresh, "--debug")
            stream_logs_debug.append(logging.getLogger("airbyte.streams.bounces").isEnabledFor(logging.DEBUG))
    finally:
        airbyte.setLevel(logging.INFO)
    assert stream_logs_debug == [True, True]


def test_given_a_namespace_meta_or_a_value_orjson_cannot_write_when_serialised_then_the_line_equals_the_cdks():
    plain = AirbyteRecordMessage(stream="bounces", data={"email": "ä@b.c", "n": [1, {"x": None}]}, emitted_at=1)
    # The CDK leaves out a record's top-level fields that are None, and keeps nested ones.
    with_nulls = AirbyteRecordMessage(stream="bounces", data={"a": None, "b": {"c": None}, "d": [None]}, emitted_at=1)
    namespaced = AirbyteRecordMessage(stream="bounces", data={"a": 1}, emitted_at=2, namespace="sendgrid")
    with_meta = AirbyteRecordMessage(stream="bounces", data={"a": 1}, emitted_at=3, meta=AirbyteRecordMessageMeta(changes=[]))
    huge_number = AirbyteRecordMessage(stream="bounces", data={"a": 2**70}, emitted_at=4)  # beyond orjson's 64 bits
    for record in (plain, with_nulls, namespaced, with_meta, huge_number):
        message = AirbyteMessage(type=Type.RECORD, record=record)
        assert json.loads(record_line(message)) == json.loads(AirbyteEntrypoint.airbyte_message_to_string(message))
    assert json.loads(record_line(AirbyteMessage(type=Type.RECORD, record=with_nulls)))["record"]["data"] == {"b": {"c": None}, "d": [None]}


def test_given_a_page_with_nulls_and_a_value_orjson_cannot_write_when_serialised_then_each_line_equals_the_cdks():
    for page in ([{"email": "ä@b.c"}, {"a": None, "b": {"c": None}}], [{"a": 1}, {"a": 2**70}]):
        block = page_lines("bounces", page)
        lines = block.text.split("\n")
        emitted_at = json.loads(lines[0])["record"]["emitted_at"]
        assert block.records == {("bounces", None): len(page)}
        assert [json.loads(line) for line in lines] == [
            json.loads(AirbyteEntrypoint.airbyte_message_to_string(AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(
                stream="bounces", data=data, emitted_at=emitted_at)))) for data in page]


def test_given_records_then_a_state_when_written_then_the_state_is_written_at_once_after_its_records(capsys):
    written_before_next = []

    def lines():
        for n in range(3):
            yield json.dumps({"type": "RECORD", "record": {"stream": "s", "data": {"n": n}, "emitted_at": 1}}, separators=(",", ":"))
        yield '{"type":"STATE","state":{}}'
        written_before_next.append(capsys.readouterr().out)
        yield json.dumps({"type": "RECORD", "record": {"stream": "s", "data": {"n": 3}, "emitted_at": 1}}, separators=(",", ":"))

    write_lines(lines())
    assert written_before_next[0].splitlines()[-1] == '{"type":"STATE","state":{}}'
    assert len(written_before_next[0].splitlines()) == 4
    assert capsys.readouterr().out.count("RECORD") == 1  # the last record, flushed at the end
