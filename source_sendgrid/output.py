"""Messages as the lines a sync writes: one home for the record line, shared by the command line, the
worker processes that serialise their own records, and streams that hand over whole pages of records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import orjson
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage
from airbyte_cdk.models import Type as MessageType

StreamKey = Tuple[str, Optional[str]]  # (stream, namespace)


@dataclass
class SerializedLines:
    """Message lines already written as text (a page of a stream, or a worker process's batch), with the
    records they hold per stream, for the entrypoint's record counts."""

    text: str
    records: Dict[StreamKey, int] = field(default_factory=dict)


class RecordLineBatch:
    """Record lines of one stream, collected until there are enough to hand over at once."""

    def __init__(self) -> None:
        self._lines: List[str] = []
        self._records: Dict[StreamKey, int] = {}

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, message: AirbyteMessage) -> None:
        self._lines.append(record_line(message))
        key = (message.record.stream, message.record.namespace)
        self._records[key] = self._records.get(key, 0) + 1

    def take(self) -> SerializedLines:
        taken = SerializedLines("\n".join(self._lines), self._records)
        self._lines, self._records = [], {}
        return taken


def record_line(message: AirbyteMessage) -> str:
    """A RECORD message as the CDK's serializer writes it: fields that are None are left out, and so are
    the record's own top-level fields that are None (nested ones are kept)."""
    record = message.record
    if record.meta is not None or record.file_reference is not None:
        return AirbyteEntrypoint.airbyte_message_to_string(message)
    return _line(record.stream, record.data, record.emitted_at, record.namespace)


def page_lines(stream: str, records: List[Mapping[str, Any]]) -> SerializedLines:
    """The RECORD lines of one page of a stream's records, as `record_line` writes each: joined as bytes
    and decoded once a page."""
    emitted_at = time.time_ns() // 1_000_000
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    try:
        text = b"".join([
            dumps({"type": "RECORD", "record": {"stream": stream, "data": _without_nulls(data), "emitted_at": emitted_at}},
                  option=newline)
            for data in records
        ]).decode()[:-1]
    except TypeError:  # a value orjson cannot write: line by line, with _line's fallback
        text = "\n".join([_line(stream, data, emitted_at) for data in records])
    return SerializedLines(text, {(stream, None): len(records)})


def _without_nulls(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The CDK's serializer leaves out a record's top-level fields that are None (nested ones are kept)."""
    if None in data.values():
        return {key: value for key, value in data.items() if value is not None}
    return data


def _line(stream: str, data: Mapping[str, Any], emitted_at: int, namespace: Optional[str] = None) -> str:
    data = _without_nulls(data)
    body: dict = {"stream": stream, "data": data, "emitted_at": emitted_at}
    if namespace is not None:
        body["namespace"] = namespace
    try:
        return orjson.dumps({"type": "RECORD", "record": body}).decode()
    except TypeError:  # a value orjson cannot write: the CDK's path, with its fallback
        message = AirbyteMessage(type=MessageType.RECORD, record=AirbyteRecordMessage(
            stream=stream, data=dict(data), emitted_at=emitted_at, namespace=namespace))
        return AirbyteEntrypoint.airbyte_message_to_string(message)
