"""The PyAirbyte side of the demo: run the checked-out connector, read into DuckDB, show progress per stream."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

# Read by PyAirbyte at import: never reach for the connector registry, and send no telemetry.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# PyAirbyte imports Google's cloud clients, which warn about Python versions at import: not news for this demo.
warnings.filterwarnings("ignore", category=FutureWarning, message="You are using a Python version")

import airbyte as ab  # noqa: E402
import airbyte.sources.base as _pyairbyte_sources  # noqa: E402
from airbyte.progress import ProgressStyle, ProgressTracker  # noqa: E402
from airbyte_protocol.models import AirbyteStreamStatus, SyncMode  # noqa: E402

SCHEMA = "main"
# Seconds between two "still reading" lines of one long stream.
PROGRESS_EVERY = 5.0


def connector_executable() -> str:
    """The `source-sendgrid` script of the running venv (this checkout, installed editable), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "source-sendgrid"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("source-sendgrid")
    if not found:
        raise SystemExit("source-sendgrid is not installed: run bin/demo, or `pip install -e .[demo]` first.")
    return found


def sendgrid_source(config: Mapping[str, Any]) -> "ab.Source":
    source = ab.get_source("source-sendgrid", config=dict(config), local_executable=connector_executable())
    source.select_all_streams()
    return source


def duckdb_cache(path: Path) -> "ab.DuckDBCache":
    return ab.DuckDBCache(db_path=str(path), schema_name=SCHEMA)


def incremental_streams(source: "ab.Source") -> List[str]:
    return [s.name for s in source.discovered_catalog.streams if SyncMode.incremental in s.supported_sync_modes]


def all_streams(source: "ab.Source") -> List[str]:
    return [s.name for s in source.discovered_catalog.streams]


def table_counts(cache: "ab.DuckDBCache", streams: List[str]) -> Dict[str, int]:
    """Rows in each stream's table of the cache (0 for a stream that has no table yet)."""
    tables = {row["table_name"] for row in cache.run_sql_query(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{SCHEMA}'")}
    return {stream: cache.run_sql_query(f'SELECT count(*) AS n FROM {SCHEMA}."{stream}"')[0]["n"] if stream in tables else 0
            for stream in streams}


class StreamProgress(ProgressTracker):
    """PyAirbyte's progress tracker, printing a line per stream (records, rate, state) instead of a live panel."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["style"] = ProgressStyle.NONE
        super().__init__(*args, **kwargs)
        self.records: Dict[str, int] = {}
        self.seconds: Dict[str, float] = {}
        self.states: Dict[str, Any] = {}
        self.failed: List[str] = []
        self._started: Dict[str, float] = {}
        self._last_line = time.monotonic()

    def tally_records_read(self, messages, **kwargs):  # type: ignore[override]
        return super().tally_records_read(self._watch(messages), **kwargs)

    def _watch(self, messages) -> Iterator[Any]:
        for message in messages:
            yield message
            if message.record:
                stream = message.record.stream
                self._started.setdefault(stream, time.monotonic())
                self.records[stream] = self.records.get(stream, 0) + 1
                if time.monotonic() - self._last_line >= PROGRESS_EVERY:
                    self._print_line(stream, "reading")
            elif message.state and message.state.stream:
                self.states[message.state.stream.stream_descriptor.name] = _plain(message.state.stream.stream_state)
            elif message.trace and message.trace.stream_status:
                stream = message.trace.stream_status.stream_descriptor.name
                status = message.trace.stream_status.status
                if status is AirbyteStreamStatus.STARTED:
                    self._started[stream] = self._last_line = time.monotonic()
                    self.records.setdefault(stream, 0)
                elif status in (AirbyteStreamStatus.COMPLETE, AirbyteStreamStatus.INCOMPLETE):
                    self.seconds[stream] = time.monotonic() - self._started.get(stream, time.monotonic())
                    if status is AirbyteStreamStatus.INCOMPLETE:
                        self.failed.append(stream)
                    self._print_line(stream, "done" if status is AirbyteStreamStatus.COMPLETE else "FAILED")

    def _print_line(self, stream: str, what: str) -> None:
        self._last_line = time.monotonic()
        count = self.records.get(stream, 0)
        seconds = self.seconds.get(stream) if what != "reading" else time.monotonic() - self._started[stream]
        rate = count / seconds if seconds else 0.0
        state = short_state(self.states.get(stream))
        print(f"  {what:7} {stream:28} {count:>9,} records {seconds:7.1f} s {rate:>9,.0f}/s  state {state}", flush=True)


def short_state(state: Any, width: int = 60) -> str:
    if state is None:
        return "-"
    if isinstance(state, dict) and state.get("__ab_no_cursor_state_message"):
        return "none (no cursor: each sync reads it all)"
    text = ", ".join(f"{k}={v}" for k, v in state.items()) if isinstance(state, dict) else str(state)
    return text if len(text) <= width else text[: width - 1] + "…"


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if dump else value


@contextlib.contextmanager
def _printing_progress() -> Iterator[List[StreamProgress]]:
    """Have `Source.read` (public API) report through StreamProgress; yields the trackers it made."""
    made: List[StreamProgress] = []
    original = _pyairbyte_sources.ProgressTracker

    def make(*args: Any, **kwargs: Any) -> StreamProgress:
        made.append(StreamProgress(*args, **kwargs))
        return made[-1]

    _pyairbyte_sources.ProgressTracker = make  # the one place Source.read builds its tracker
    try:
        yield made
    finally:
        _pyairbyte_sources.ProgressTracker = original


class SyncFailed(Exception):
    pass


def read(source: "ab.Source", cache: "ab.DuckDBCache", streams: List[str], full_refresh: bool) -> Optional[StreamProgress]:
    """One sync of `streams`: a full refresh replaces their tables; otherwise an incremental read from the
    state PyAirbyte kept in the cache, merged on primary keys."""
    if not streams:
        return None
    with _printing_progress() as trackers:
        try:
            if full_refresh:
                source.read(cache=cache, streams=streams, force_full_refresh=True, write_strategy="replace")
            else:
                source.read(cache=cache, streams=streams)
        except ab.exceptions.AirbyteConnectorError as error:
            failed = ", ".join(trackers[-1].failed) if trackers and trackers[-1].failed else "see the log"
            raise SyncFailed(f"The sync failed (streams: {failed}). The connector's log: {error.log_file}") from None
    return trackers[-1] if trackers else None
