"""Which scopes the API key holds, asked of `GET /v3/scopes` once per sync."""

from __future__ import annotations

import threading
from typing import Callable, FrozenSet, Optional, Sequence, Tuple


class ScopeGate:
    """Answers "which of these scopes does the key lack?" from one lazy call to /v3/scopes.

    If the scopes cannot be listed (the key may not read /v3/scopes itself), every stream is tried and a
    403 on its own endpoint skips it instead.
    """

    def __init__(self, fetch_scopes: Callable[[], Optional[FrozenSet[str]]]):
        self._fetch_scopes = fetch_scopes
        self._granted: Optional[FrozenSet[str]] = None
        self._resolved = False
        self._lock = threading.Lock()

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
