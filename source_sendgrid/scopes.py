"""Which scopes the API key holds, asked of `GET /v3/scopes` once per sync, and which streams of the sync
the key could not read."""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Callable, FrozenSet, Iterable, Optional, Sequence, Tuple, Type


class ScopeGate:
    """Answers "which of these scopes does the key lack?" from one lazy call to /v3/scopes, and records
    which streams were skipped (for a missing scope, a 401/403 on their endpoint, the region), so that a
    sync that could read none of its streams fails instead of ending with no records.

    `fetch_scopes` returning None means "not known": every stream is tried, and a 403 on its own endpoint
    skips it. `stream_classes` are the streams whose skips are recorded.
    """

    def __init__(self, fetch_scopes: Callable[[], Optional[FrozenSet[str]]], stream_classes: Sequence[Type[Any]] = ()):
        self._fetch_scopes = fetch_scopes
        self._granted: Optional[FrozenSet[str]] = None
        self._resolved = False
        self._lock = threading.Lock()
        self._index = {stream_class: position for position, stream_class in enumerate(stream_classes)}
        self._skipped: Any = (ctypes.c_bool * len(self._index))()

    def share_with_processes(self, context: Any) -> None:
        """From now on, processes forked from this one (of `context`) record their skips here too."""
        shared = context.RawArray(ctypes.c_bool, len(self._index))
        shared[:] = self._skipped[:]
        self._skipped = shared

    @property
    def granted(self) -> Optional[FrozenSet[str]]:
        with self._lock:
            if not self._resolved:
                self._granted = self._fetch_scopes()
                self._resolved = True
        return self._granted

    def missing(self, required: Sequence[str]) -> Tuple[str, ...]:
        if not required:
            return ()
        granted = self.granted
        if granted is None:
            return ()
        return tuple(scope for scope in required if scope not in granted)

    def note_skipped(self, stream_class: Type[Any]) -> None:
        position = self._index.get(stream_class)
        if position is not None:
            self._skipped[position] = True  # one byte: no lock needed, also across processes

    def all_skipped(self, stream_classes: Iterable[Type[Any]]) -> bool:
        """True when every one of these streams (at least one) was skipped."""
        positions = [self._index.get(stream_class) for stream_class in stream_classes]
        return bool(positions) and all(position is not None and self._skipped[position] for position in positions)
