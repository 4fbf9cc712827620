"""Substreams: an endpoint read once per record of a parent stream (a list's members, a template's versions)."""

from __future__ import annotations

from abc import ABC
from typing import Any, Iterable, List, Mapping, Optional, Type

from airbyte_cdk.models import SyncMode

from .base import SendgridStream


class SendgridSubStream(SendgridStream, ABC):
    """An endpoint read once per record of a `parent` stream (a list's members, a template's versions).

    Each slice carries the parent's key(s) named in `parent_keys` (parent field -> slice and record field),
    the path template can use them, and every record gets them, so a member's key includes its parent.
    A parent deleted between listing it and reading its members answers 404: read as no members. A parent
    listed in several rows (a stats endpoint's one row per A/B variation) is read once.
    """

    parent: Type[SendgridStream]
    parent_keys: Mapping[str, str] = {"id": "parent_id"}
    not_found_is_empty = True

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        for record in self.parent_records():
            yield self.parent_slice(record)

    def parent_records(self) -> Iterable[Mapping[str, Any]]:
        """Every record of the parent stream (read whole), each parent once, or none when this stream or its
        parent cannot be read."""
        parent = self.parent(self._config, self._scope_gate, self._stats)
        parent_reason = parent.unavailable_reason()
        reason = self.unavailable_reason() or (parent_reason and f"its parent stream {parent.name} cannot be read: {parent_reason}")
        if reason:
            self._skip(reason)
            return
        seen = set()
        for parent_slice in parent.stream_slices(sync_mode=SyncMode.full_refresh):
            for record in parent.read_records(SyncMode.full_refresh, stream_slice=parent_slice):
                # A parent listed in several rows (an A/B single send's stats) is read once.
                key = tuple(repr(value) for value in self.parent_slice(record).values())
                if key not in seen:
                    seen.add(key)
                    yield record
        if parent.skipped:
            self._skip(f"its parent stream {parent.name} could not be read")

    def parent_slice(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return {slice_key: record.get(field) for field, slice_key in self.parent_keys.items()}

    def slice_fields(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {key: stream_slice.get(key) for key in self.parent_keys.values()}
