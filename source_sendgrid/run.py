"""The command line: the CDK's entrypoint, with a leaner output path for the records of `read`.

A sync writes one line per record, so the CDK's per-message work (a generic dataclass serializer, a
hashed stream descriptor for the count, one locked buffer write per line) costs about as much as reading
the record from SendGrid. Here a record line is written with one `orjson.dumps` of the fields the protocol
has, the count uses one descriptor per stream, and lines are written in batches. Every other message, and
every other command, goes through the CDK unchanged; `unit_tests/test_entrypoint.py` checks that both
paths write the same messages. Because this entrypoint writes text as it comes, it lets the source read
streams in worker processes, which hand over their records already serialised (`output.SerializedLines`).

This module is the command line, so start-up is tuned here (startup.py), around its first import of the
CDK; importing the package alone changes nothing in the process.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from typing import Any, DefaultDict, Dict, Iterable, Iterator, List, Mapping, Optional

from .startup import lean_import

with lean_import():  # the command line's first import of airbyte_cdk
    # The source first: the CDK's import through it touches fewer memory pages than through its entrypoint
    # module (measured on Linux: 8,000 fewer page faults, 0.06 s less system time at every start).
    from .source import SourceSendgrid

    from airbyte_cdk.entrypoint import AirbyteEntrypoint
    from airbyte_cdk.logger import is_platform_debug_log_enabled
    from airbyte_cdk.models import AirbyteMessage, ConnectorSpecification
    from airbyte_cdk.models import Type as MessageType
    from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, get_secrets, update_secrets
    from airbyte_cdk.utils.constants import ENV_REQUEST_CACHE_PATH

    from . import cdk_seam
    from .cdk_seam import HashableStreamDescriptor
    from .masking import masked_spellings
    from .output import SerializedLines, StreamKey, record_line

# Record text written at once (about 1,000 records); a message other than a record is written at once,
# with the lines before it. A worker process's batch of records arrives as one text of many lines.
CHARACTERS_PER_WRITE = 256 * 1024
_RECORD_PREFIX = '{"type":"RECORD"'


class SendgridEntrypoint(AirbyteEntrypoint):
    def __init__(self, source: SourceSendgrid):
        super().__init__(source)
        source.yield_serialized_lines = True  # worker processes' records arrive as text, written as is
        self._uncounted: Dict[StreamKey, float] = {}

    def run(self, parsed_args: argparse.Namespace) -> Iterable[str]:
        if parsed_args.command != "read":
            yield from super().run(parsed_args)
            return
        # The read branch of AirbyteEntrypoint.run, with record_line for records.
        if getattr(parsed_args, "debug", False) or is_platform_debug_log_enabled():
            self.logger.setLevel(logging.DEBUG)
            logging.getLogger("airbyte").setLevel(logging.DEBUG)  # the parent of every CDK and stream logger
            self.logger.debug("Debug logs enabled")
        else:
            self.logger.setLevel(logging.INFO)
        source_spec = self.source.spec(self.logger)
        try:
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as temp_dir:
                os.environ[ENV_REQUEST_CACHE_PATH] = temp_dir
                config = self.source.configure(self.source.read_config(parsed_args.config), temp_dir)
                yield from self._queued_lines()
                catalog = self.source.read_catalog(parsed_args.catalog)
                state = self.source.read_state(parsed_args.state)
                for message in self.read(source_spec, config, catalog, state):
                    if isinstance(message, SerializedLines):
                        yield message.text
                    elif message.type == MessageType.RECORD:
                        yield record_line(message)
                    else:
                        yield self.airbyte_message_to_string(message)
        finally:
            yield from self._queued_lines()

    @staticmethod
    def set_up_secret_filter(config: Mapping[str, Any], connection_specification: Mapping[str, Any]) -> None:
        # The CDK's filter, given each secret in every spelling it can be printed in, and no value too short
        # to mask without breaking the messages (masking.py).
        update_secrets(masked_spellings(get_secrets(connection_specification, config)))

    def check(self, source_spec: ConnectorSpecification, config: Mapping[str, Any]) -> Iterable[AirbyteMessage]:
        # The CDK masks logs and traces but writes the source's CONNECTION_STATUS as it is, and that message
        # can quote SendGrid's error body, which may echo the key.
        for message in super().check(source_spec, config):
            if message.type == MessageType.CONNECTION_STATUS and message.connectionStatus.message:
                message.connectionStatus.message = filter_secrets(message.connectionStatus.message)
            yield message

    def _queued_lines(self) -> Iterator[str]:
        return (self.airbyte_message_to_string(message) for message in cdk_seam.queued_messages(self.source))

    def handle_record_counts(self, message: Any, stream_message_count: DefaultDict[HashableStreamDescriptor, float]) -> Any:
        # message: an AirbyteMessage, or SerializedLines from a worker process
        # Records are counted per (stream, namespace) here and added to the CDK's counter when a state message
        # (the only reader of that counter) comes by: a tuple key hashes in C, the descriptor does not.
        if isinstance(message, SerializedLines):
            for key, count in message.records.items():
                self._uncounted[key] = self._uncounted.get(key, 0.0) + count
            return message
        if message.type == MessageType.RECORD:
            key = (message.record.stream, message.record.namespace)
            self._uncounted[key] = self._uncounted.get(key, 0.0) + 1.0
            return message
        for (name, namespace), count in self._uncounted.items():
            stream_message_count[HashableStreamDescriptor(name=name, namespace=namespace)] += count
        self._uncounted = {}
        return AirbyteEntrypoint.handle_record_counts(message, stream_message_count)


def write_lines(lines: Iterable[str]) -> None:
    """Write message lines to stdout, records in batches, anything else without delay."""
    pending: List[str] = []
    size = 0
    try:
        for line in lines:
            pending.append(line)
            size += len(line)
            if size >= CHARACTERS_PER_WRITE or not line.startswith(_RECORD_PREFIX):
                sys.stdout.write("\n".join(pending) + "\n")
                pending, size = [], 0
    finally:
        if pending:
            sys.stdout.write("\n".join(pending) + "\n")


def run(args: Optional[List[str]] = None) -> None:
    # With a CDK whose entrypoint differs from the one SendgridEntrypoint follows, the CDK's writes all.
    entrypoint = (SendgridEntrypoint if cdk_seam.OWN_OUTPUT else AirbyteEntrypoint)(SourceSendgrid())
    parsed = entrypoint.parse_args(sys.argv[1:] if args is None else args)
    with cdk_seam.output_buffer():
        write_lines(entrypoint.run(parsed))
