"""SourceSendgrid: the Airbyte protocol's check, discover and read for a SendGrid account."""

from __future__ import annotations

import logging
import time
from typing import Any, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    AirbyteStateType,
    AirbyteStreamStatus,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    FailureType,
    Status,
    SyncMode,
)
from airbyte_cdk.models import AirbyteRecordMessage
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.utils.schema_helpers import InternalConfig, split_config
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as status_message
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import cdk_seam
from .base import SendgridStream
from .config import SendgridConfig, config_error
from .errors import KeyCheckErrorHandler, RequestStats
from .output import SerializedLines
from .parallel import can_read_in_processes, fork_context, read_concurrently
from .scopes import ScopeGate
from .streams import ALL_STREAMS
from .contacts.export_job import share_sync_export_with_processes


class Scopes(SendgridStream):
    """`GET /v3/scopes`: what the key may do. Used by check and to skip streams; not a catalog stream.
    Any key SendGrid accepts may call it, so a 401 or 403 here fails: the key is refused."""

    path_template = "/v3/scopes"
    records_key = ("scopes",)
    primary_key = None
    records_are_objects = False
    error_handler_class = KeyCheckErrorHandler


class SourceSendgrid(AbstractSource):
    # Set by the command line, which writes SerializedLines as they are: then a concurrent read may use
    # worker processes. Any other caller (the CDK's entrypoint, tests) gets AirbyteMessages only.
    yield_serialized_lines = False

    @classmethod
    def read_state(cls, state_path: str) -> List[AirbyteStateMessage]:
        """Per-stream state messages; also the legacy `{"<stream>": {...}}` dict of older syncs, and a
        clear config error (not a crash) for a state file that is neither, or that holds a GLOBAL state
        (this source never writes one: its streams checkpoint one by one)."""
        try:
            loaded = cdk_seam.read_json_file(state_path) if state_path else None
            if isinstance(loaded, dict) and loaded and "type" not in loaded and all(isinstance(v, dict) for v in loaded.values()):
                return [
                    AirbyteStateMessageSerializer.load({"type": "STREAM", "stream": {
                        "stream_descriptor": {"name": str(name)}, "stream_state": value}})
                    for name, value in loaded.items()
                ]
            messages = super().read_state(state_path)
        except Exception as error:  # the CDK raises ValueError or a serializer error for a malformed state
            raise AirbyteTracedException(
                message="The state given to this sync is not valid: it must be a list of Airbyte state messages "
                        "(or the legacy object of per-stream states). Reset the connection's state, or fix it.",
                internal_message=f"invalid state: {type(error).__name__}: {str(error)[:300]}",
                failure_type=FailureType.config_error,
            ) from None
        if any(message.type == AirbyteStateType.GLOBAL for message in messages):
            raise AirbyteTracedException(
                message="The state given to this sync is a GLOBAL state, but this source keeps "
                        "per-stream states. Reset the connection's state, or give per-stream STREAM state messages.",
                internal_message=f"state types: {sorted({str(m.type) for m in messages})}",
                failure_type=FailureType.config_error,
            )
        return messages

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        # Overridden (not check_connection) so a failure reads as plain text, without a repr's quotes.
        try:
            parsed = SendgridConfig.from_mapping(config)
            granted = _fetch_scopes(parsed, RequestStats())
        except AirbyteTracedException as error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=error.message)
        unreadable = self._unreadable_streams(parsed, granted)
        if not unreadable:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED, message="Connected. The key can read every stream.")
        lines = "; ".join(f"{name} (needs {', '.join(scopes)})" for name, scopes in unreadable)
        if len(unreadable) == self._streams_with_scopes(parsed):
            # (A stream that declares no scope, like verified_senders, does not make such a key useful.)
            needed = ", ".join(sorted({scope for _, scopes in unreadable for scope in scopes}))
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message="SendGrid accepts the API key, but it can read none of the streams: it has none of their "
                        "read scopes. In SendGrid (Settings → API Keys), give the key Read Access (or Full Access), "
                        f"or a restricted key with the scopes of the streams to sync: {needed}.",
            )
        return AirbyteConnectionStatus(
            status=Status.SUCCEEDED,
            message=f"Connected. These streams will be skipped because the key lacks their scopes: {lines}.",
        )

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        status = self.check(logger, config)
        return status.status == Status.SUCCEEDED, status.message

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        if getattr(self, "_streams_in_read", None) is not None:
            return self._streams_in_read
        streams, _, _ = _build_streams(SendgridConfig.from_mapping(config))
        return streams

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        parsed = SendgridConfig.from_mapping(config)
        # Pages as record lines only for the command line, and not for a test read limited to some records.
        limits = split_config(config)[1]
        pages_as_lines = (cdk_seam.PAGE_READS and self.yield_serialized_lines
                          and not limits.limit and not limits.page_size)
        streams, gate, stats = _build_streams(parsed, pages_as_lines)
        # Ask for the key's scopes before any stream starts: a refused key fails the sync once, clearly.
        gate.granted
        self._streams_in_read = streams
        try:
            if parsed.concurrency > 1 and len(catalog.streams) > 1 and cdk_seam.CONCURRENT_READS:
                in_processes = self.yield_serialized_lines and can_read_in_processes()
                if in_processes:
                    context = fork_context()
                    stats.share_with_processes(context)
                    gate.share_with_processes(context)
                    share_sync_export_with_processes(stats, context)
                yield from read_concurrently(self, logger, config, catalog, state, parsed.concurrency, in_processes)
            else:
                yield from super().read(logger, config, catalog, state)
            # The CDK only marks a stream it does not know INCOMPLETE; say so clearly, after the others synced.
            unknown = sorted({c.stream.name for c in catalog.streams} - {s.name for s in streams})
            if unknown:
                raise AirbyteTracedException(
                    message=f"The catalog names streams this source does not have: {', '.join(unknown)}. "
                            "Refresh the source schema in the connection and remove them.",
                    failure_type=FailureType.config_error,
                )
            selected = {c.stream.name for c in catalog.streams}
            if gate.all_skipped(type(s) for s in streams if s.name in selected):
                # Every warning said "the other streams go on"; with none read, exit 0 would pass for an empty account.
                raise config_error(
                    "None of the selected streams could be read, so nothing was synced: each was skipped (the warnings "
                    "above say why: the key lacks the stream's scope, SendGrid refused access with 401 or 403, or the "
                    "region does not serve it). Give the key the scopes named there, or select streams it can read."
                )
        finally:
            self._streams_in_read = None
            # Also when a stream failed: the retries spent are what explains the failure.
            logger.info(
                f"SendGrid requests: {stats.requests}, retried: {stats.retries}, "
                f"of which rate-limited (429): {stats.rate_limited}."
            )

    def _read_stream(
        self,
        logger: logging.Logger,
        stream_instance: Stream,
        configured_stream: ConfiguredAirbyteStream,
        state_manager: ConnectorStateManager,
        internal_config: InternalConfig,
    ) -> Iterator[Union[AirbyteMessage, SerializedLines]]:
        """AbstractSource._read_stream, for our streams read for the command line, one page at a time: the
        stream hands over each page as record lines (SendgridStream.emit_pages_as_lines), so the CDK's
        per-record loop runs once a page. The messages are the same: state and status messages in the same
        places (RUNNING before the first record), the same logs, the same record counts. A test read with
        a record limit, and any other caller, goes through the CDK's loop unchanged."""
        if not (isinstance(stream_instance, SendgridStream) and stream_instance.emit_pages_as_lines):
            yield from super()._read_stream(logger, stream_instance, configured_stream, state_manager, internal_config)
            return
        name = configured_stream.stream.name
        logger.debug(f"Syncing configured stream: {name}", extra={"sync_mode": configured_stream.sync_mode,
                     "primary_key": configured_stream.primary_key, "cursor_field": configured_stream.cursor_field})
        stream_instance.log_stream_sync_configuration()
        stream_state = state_manager.get_stream_state(name, stream_instance.namespace)
        if stream_state == {"__ab_no_cursor_state_message": True}:  # a terminal full-refresh state: start over
            stream_state = {}
        stream_instance.state = stream_state
        logger.info(f"Setting state of {self.name} stream to {stream_state}")
        logger.info(f"Syncing stream: {name} ")
        records = 0
        for item in stream_instance.read(configured_stream, logger, cdk_seam.slice_logger(self), stream_state, state_manager,
                                         internal_config):
            if isinstance(item, SerializedLines):
                message, count = item, sum(item.records.values())
            else:
                message = self._get_message(item, stream_instance)
                count = 1 if message.type == MessageType.RECORD else 0
            if count and not records:
                logger.info(f"Marking stream {name} as RUNNING")
                yield status_message(configured_stream.stream, AirbyteStreamStatus.RUNNING)
            records += count
            yield from self._emit_queued_messages()
            yield message
        logger.info(f"Read {records} records from {name} stream")

    def _get_message(self, record_data_or_message: Any, stream: Stream) -> AirbyteMessage:
        # Once per record. Our streams emit fresh dicts and declare no schema transformer, so the record
        # message is built directly (the CDK's general path copies each record and runs the no-op transform
        # that Stream.transformer, the default, is).
        if cdk_seam.DIRECT_RECORDS and type(record_data_or_message) is dict and stream.transformer is Stream.transformer:
            return AirbyteMessage(
                type=MessageType.RECORD,
                record=AirbyteRecordMessage(stream=stream.name, data=record_data_or_message, emitted_at=time.time_ns() // 1_000_000),
            )
        return super()._get_message(record_data_or_message, stream)

    def _emit_queued_messages(self) -> Iterable[AirbyteMessage]:
        # Under a lock: streams read in several threads share the queue.
        return cdk_seam.queued_messages(self)

    @staticmethod
    def _streams_with_scopes(config: SendgridConfig) -> int:
        gate = ScopeGate(lambda: None)
        return sum(1 for stream_class in ALL_STREAMS if stream_class(config, gate, RequestStats()).required_scopes)

    @staticmethod
    def _unreadable_streams(config: SendgridConfig, granted: FrozenSet[str]) -> List[Tuple[str, Tuple[str, ...]]]:
        gate = ScopeGate(lambda: granted)
        streams = [stream_class(config, gate, RequestStats()) for stream_class in ALL_STREAMS]
        return [(s.name, gate.missing(s.required_scopes)) for s in streams if gate.missing(s.required_scopes)]


def _build_streams(config: SendgridConfig, pages_as_lines: bool = False) -> Tuple[List[SendgridStream], ScopeGate, RequestStats]:
    stats = RequestStats()
    gate = ScopeGate(lambda: _fetch_scopes(config, stats), ALL_STREAMS)
    return [stream_class(config, gate, stats, pages_as_lines) for stream_class in ALL_STREAMS], gate, stats


def _fetch_scopes(config: SendgridConfig, stats: RequestStats) -> FrozenSet[str]:
    """The key's scopes. A refused key (401 or 403 on /v3/scopes) raises a config error."""
    scopes = Scopes(config, ScopeGate(lambda: None), stats)
    return frozenset(str(scope) for scope in scopes.read_records(SyncMode.full_refresh))
