"""SourceSendgrid: the Airbyte protocol's check, discover and read for a SendGrid account."""

from __future__ import annotations

import logging
from typing import Any, FrozenSet, Iterator, List, Mapping, Optional, Tuple

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    Status,
    SyncMode,
)
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .base import SendgridStream
from .config import SendgridConfig
from .errors import RequestStats
from .scopes import ScopeGate
from .streams import ALL_STREAMS


class Scopes(SendgridStream):
    """`GET /v3/scopes`: what the key may do. Used by check and to skip streams; not a catalog stream."""

    path_template = "/v3/scopes"
    records_key = ("scopes",)
    primary_key = None


class SourceSendgrid(AbstractSource):
    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        # Overridden (not check_connection) so a failure reads as plain text, without a repr's quotes.
        try:
            parsed = SendgridConfig.from_mapping(config)
            granted = _fetch_scopes(parsed, RequestStats())
        except AirbyteTracedException as error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=error.message)
        if granted is None:
            return AirbyteConnectionStatus(
                status=Status.SUCCEEDED,
                message="Connected. The key may not list its scopes, so streams it cannot read are skipped during the sync.",
            )
        unreadable = self._unreadable_streams(parsed, granted)
        if not unreadable:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED, message="Connected. The key can read every stream.")
        lines = "; ".join(f"{name} (needs {', '.join(scopes)})" for name, scopes in unreadable)
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
        streams, gate, stats = _build_streams(SendgridConfig.from_mapping(config))
        # Ask for the key's scopes before any stream starts: a rejected key fails the sync once, clearly.
        gate.granted
        self._streams_in_read = streams
        try:
            yield from super().read(logger, config, catalog, state)
        finally:
            self._streams_in_read = None
        logger.info(
            f"SendGrid requests: {stats.requests}, retried: {stats.retries}, "
            f"of which rate-limited (429): {stats.rate_limited}."
        )

    @staticmethod
    def _unreadable_streams(config: SendgridConfig, granted: FrozenSet[str]) -> List[Tuple[str, Tuple[str, ...]]]:
        gate = ScopeGate(lambda: granted)
        streams = [stream_class(config, gate, RequestStats()) for stream_class in ALL_STREAMS]
        return [(s.name, gate.missing(s.required_scopes)) for s in streams if gate.missing(s.required_scopes)]


def _build_streams(config: SendgridConfig) -> Tuple[List[SendgridStream], ScopeGate, RequestStats]:
    stats = RequestStats()
    gate = ScopeGate(lambda: _fetch_scopes(config, stats))
    return [stream_class(config, gate, stats) for stream_class in ALL_STREAMS], gate, stats


def _fetch_scopes(config: SendgridConfig, stats: RequestStats) -> Optional[FrozenSet[str]]:
    """The key's scopes, or None when the key may not list them. A rejected key raises a config error."""
    scopes = Scopes(config, ScopeGate(lambda: None), stats)
    granted = frozenset(str(scope) for scope in scopes.read_records(SyncMode.full_refresh))
    if scopes.skipped:
        return None
    return granted
