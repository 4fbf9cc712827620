"""Incremental reads: how each kind of stream moves its state so a killed sync resumes losslessly and a
sync costs what changed. By time window (WindowedStream), by filtering a whole read on the client
(ClientFilteredStream), and by reading only the children of changed parents (ChangedParentsSubStream)."""

from __future__ import annotations

from abc import ABC
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Iterable, List, Mapping, MutableMapping, Optional, Tuple

from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import CheckpointMixin, StreamData

from .base import SendgridStream
from .substreams import SendgridSubStream
from .windows import EPOCH, GrowingWindows, format_time, parse_time, record_time, utc_now

# The slice key that marks a windowed read's last window.
CLOSES_READ = "closes_read"
# A window after an empty one doubles, up to this many times `window_days`.
MAX_WINDOW_GROWTH = 32


class ChangedParentsSubStream(SendgridSubStream, CheckpointMixin, ABC):
    """A substream whose parent's list says when each parent last changed (`parent_changed_at`): an incremental
    sync reads the children of only the parents changed after the state minus the lookback, so a sync costs
    what changed. The state is the newest change seen (capped at the sync's start), saved once the last
    changed parent's children were read; a sync killed before that reads the same parents again."""

    def parent_changed_at(self, record: Mapping[str, Any]) -> Optional[str]:
        """When the parent or any child it lists last changed, as record-format text; None if it does not say
        (then its children are read)."""
        return record_time(record.get(self.cursor_field))

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        since = self._changed_since(sync_mode)
        held: Optional[Mapping[str, Any]] = None  # each changed parent's slice waits for the next: the last one saves the state
        for record in self.parent_records():
            if since.is_changed(self.parent_changed_at(record)):
                if held is not None:
                    yield held
                held = self.parent_slice(record)
        self._warn_of_future_records(since)
        if held is not None:
            yield {**held, "state_after": since.newest.value}

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        if stream_slice.get("state_after"):
            self.state = {self.cursor_field: stream_slice["state_after"]}


class CheckpointsAfterRecords(CheckpointMixin):
    """For a stream whose state moves after each slice: a read without a state checkpoints nothing until a
    slice emitted a record or its last slice (marked CLOSES_READ) was read. Every checkpoint then lies after a
    record, so a read resumed from any of them reads less than the whole stream (Airbyte's sequential-slices
    check samples them). A sync killed before its first record starts over: nothing is lost; the empty slices
    are asked again. A stream instance reads once."""

    # Whether this read has emitted a record yet (set by read_records, for may_checkpoint).
    _emitted_records = False
    _state: MutableMapping[str, Any]

    @property
    def state(self) -> Optional[MutableMapping[str, Any]]:
        # None rather than {} while there is no checkpoint: the CDK then emits no state message after a slice.
        return self._state or None

    @state.setter
    def state(self, value: Optional[MutableMapping[str, Any]]) -> None:
        self._state = dict(value or {})

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        for record in super().read_records(sync_mode, cursor_field, stream_slice, stream_state):
            self._emitted_records = True
            yield record

    def may_checkpoint(self, stream_slice: Mapping[str, Any]) -> bool:
        """Whether the state may move past this slice, now that it was read."""
        return bool(self.state or self._emitted_records or stream_slice.get(CLOSES_READ))

    def advance_state_to(self, moment: datetime) -> None:
        """Moves the state's cursor to `moment`, never back."""
        current = parse_time((self.state or {}).get(self.cursor_field))
        if current is None or moment > current:
            self.state = {self.cursor_field: format_time(moment)}


class WindowedStream(CheckpointsAfterRecords, SendgridStream, ABC):
    """Incremental by time window: reads [cursor - lookback, now] in windows of `window_days` and moves
    the state to a window's end only after all its pages were read, so a killed sync resumes losslessly.
    With growing windows, the empty years before an account's first record are a few requests."""

    cursor_field: str = "created"
    # Query parameter names of the window's inclusive bounds, and how the API wants them written.
    window_params: Tuple[str, str] = ("start_time", "end_time")
    # The API's time granularity: whole seconds, or whole days for endpoints filtered by date.
    window_resolution: timedelta = timedelta(seconds=1)
    # Incremental syncs re-read at least this much before the cursor, whatever `lookback_days` says
    # (for data that keeps changing after the fact, like daily counters).
    min_lookback: timedelta = timedelta(0)
    # The API keeps only this much history: a read never asks for anything older.
    retention: Optional[timedelta] = None
    # Windows after an empty window grow (fewer requests over empty years); state semantics are unchanged.
    grow_empty_windows: bool = False

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        now = utc_now()
        start = self._config.start_date
        if self.retention is not None:
            start = max(start, now - self.retention)
        cursor = self._state_cursor() if sync_mode == SyncMode.incremental else None
        if cursor is not None and cursor >= now:
            return  # nothing newer than the state can exist yet; the state stays as it is
        if cursor is not None:
            # The window ending at the cursor was read whole: go on from the next second, minus the lookback.
            start = max(start, cursor + self.window_resolution - max(self._config.lookback, self.min_lookback))
        start = EPOCH + (start - EPOCH) // self.window_resolution * self.window_resolution
        # End a second ago: a record stamped with the current second may still be on its way in.
        end = now - timedelta(seconds=1)
        for window in self._windows.over(start, end):
            bounds = {"window_start": self.format_window_bound(window.start), "window_end": self.format_window_bound(window.end)}
            yield {**bounds, CLOSES_READ: True} if window.end >= end else bounds

    @cached_property
    def _windows(self) -> GrowingWindows:
        """This read's windows, told each window's record count by records_from. Growing ones double after an
        empty window, up to MAX_WINDOW_GROWTH times `window_days`; a window with records sets the size back."""
        longest = self._config.window * MAX_WINDOW_GROWTH if self.grow_empty_windows else None
        return GrowingWindows(self._config.window, self.window_resolution, longest)

    def records_from(self, api_records: List[Any], stream_slice: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        self._windows.told(len(api_records))
        return super().records_from(api_records, stream_slice)

    def format_window_bound(self, moment: datetime) -> Any:
        """A window bound as the API's parameters write it: epoch seconds unless the endpoint says otherwise."""
        return int(moment.timestamp())

    def slice_params(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        low, high = self.window_params
        return {low: stream_slice["window_start"], high: stream_slice["window_end"]}

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        if not self.may_checkpoint(stream_slice):
            return
        self.advance_state_to(parse_time(stream_slice["window_end"]))


class ClientFilteredStream(SendgridStream, CheckpointMixin, ABC):
    """Incremental where the API has no time filter: read everything, emit only records whose cursor is
    newer than the state minus the lookback, and advance the state once the whole read is done."""

    cursor_field: str = "updated_at"

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        since = self._changed_since(sync_mode)

        def is_changed(record: Mapping[str, Any]) -> bool:
            # A value that is no time (None) emits its record but moves no cursor.
            return since.is_changed(record_time(record.get(self.cursor_field)))

        yield from self.read_pages(stream_slice, stream_state, keep=is_changed)
        if self.skipped:
            return
        self._warn_of_future_records(since)
        if since.newest.value is not None:
            self.state = {self.cursor_field: since.newest.value}
