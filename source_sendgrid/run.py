"""The command line: the CDK's entrypoint, with a leaner output path for the records of `read`.

A sync writes one line per record, so the CDK's per-message work (a generic dataclass serializer, a
hashed stream descriptor for the count, one locked buffer write per line) costs about as much as reading
the record from SendGrid. Here a record line is written with one `orjson.dumps` of the fields the protocol
has, the count uses one descriptor per stream, and lines are written in batches. Every other message, and
every other command, goes through the CDK unchanged; `unit_tests/test_entrypoint.py` checks that both
paths write the same messages.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from typing import DefaultDict, Dict, Iterable, Iterator, List, Optional, Tuple

import orjson
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER, is_platform_debug_log_enabled
from airbyte_cdk.models import AirbyteMessage
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from airbyte_cdk.utils.constants import ENV_REQUEST_CACHE_PATH

from .source import SourceSendgrid

# Lines written at once; a message other than a record is written at once, with the lines before it.
LINES_PER_WRITE = 1000
_RECORD_PREFIX = '{"type":"RECORD"'


class SendgridEntrypoint(AirbyteEntrypoint):
    def __init__(self, source: SourceSendgrid):
        super().__init__(source)
        self._uncounted: Dict[Tuple[str, Optional[str]], float] = {}

    def run(self, parsed_args: argparse.Namespace) -> Iterable[str]:
        if parsed_args.command != "read":
            yield from super().run(parsed_args)
            return
        # The read branch of AirbyteEntrypoint.run, with record_line for records.
        debug = getattr(parsed_args, "debug", False) or is_platform_debug_log_enabled()
        self.logger.setLevel(logging.DEBUG if debug else logging.INFO)
        source_spec = self.source.spec(self.logger)
        try:
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as temp_dir:
                os.environ[ENV_REQUEST_CACHE_PATH] = temp_dir
                config = self.source.configure(self.source.read_config(parsed_args.config), temp_dir)
                yield from self._queued_lines()
                catalog = self.source.read_catalog(parsed_args.catalog)
                state = self.source.read_state(parsed_args.state)
                for message in self.read(source_spec, config, catalog, state):
                    yield record_line(message) if message.type == MessageType.RECORD else self.airbyte_message_to_string(message)
        finally:
            yield from self._queued_lines()

    def _queued_lines(self) -> Iterator[str]:
        return (self.airbyte_message_to_string(message) for message in self._emit_queued_messages(self.source))

    def handle_record_counts(self, message: AirbyteMessage, stream_message_count: DefaultDict[HashableStreamDescriptor, float]) -> AirbyteMessage:
        # Records are counted per (stream, namespace) here and added to the CDK's counter when a state message
        # (the only reader of that counter) comes by: a tuple key hashes in C, the descriptor does not.
        if message.type == MessageType.RECORD:
            key = (message.record.stream, message.record.namespace)
            self._uncounted[key] = self._uncounted.get(key, 0.0) + 1.0
            return message
        for (name, namespace), count in self._uncounted.items():
            stream_message_count[HashableStreamDescriptor(name=name, namespace=namespace)] += count
        self._uncounted = {}
        return AirbyteEntrypoint.handle_record_counts(message, stream_message_count)


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


def write_lines(lines: Iterable[str]) -> None:
    """Write message lines to stdout, records in batches, anything else without delay."""
    pending: List[str] = []
    try:
        for line in lines:
            pending.append(line)
            if len(pending) >= LINES_PER_WRITE or not line.startswith(_RECORD_PREFIX):
                sys.stdout.write("\n".join(pending) + "\n")
                pending = []
    finally:
        if pending:
            sys.stdout.write("\n".join(pending) + "\n")


def run(args: Optional[List[str]] = None) -> None:
    entrypoint = SendgridEntrypoint(SourceSendgrid())
    parsed = entrypoint.parse_args(sys.argv[1:] if args is None else args)
    with PRINT_BUFFER:
        write_lines(entrypoint.run(parsed))
