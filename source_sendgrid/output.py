"""Messages as the lines a sync writes: one home for the record line, shared by the command line and the
worker processes that serialise their own records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import orjson
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import AirbyteMessage

StreamKey = Tuple[str, Optional[str]]  # (stream, namespace)


@dataclass
class SerializedLines:
    """Message lines already written as text (by a worker process), with the records they hold per stream,
    for the entrypoint's record counts."""

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
    data = record.data
    if None in data.values():
        data = {key: value for key, value in data.items() if value is not None}
    body: dict = {"stream": record.stream, "data": data, "emitted_at": record.emitted_at}
    if record.namespace is not None:
        body["namespace"] = record.namespace
    try:
        return orjson.dumps({"type": "RECORD", "record": body}).decode()
    except TypeError:  # a value orjson cannot write: the CDK's path, with its fallback
        return AirbyteEntrypoint.airbyte_message_to_string(message)
