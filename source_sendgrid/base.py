"""The base stream: everything a SendGrid endpoint has in common lives here (requests, answers, records,
skipping, the page-loop guard, answers read as they arrive), so a stream class only states facts about its
endpoint (path, records key, key, scope, pager, cursor). How incremental streams move their state is in
incremental.py, reading a stream once per parent record in substreams.py."""

from __future__ import annotations

import logging
import time
from abc import ABC
from datetime import datetime
from functools import partial
from typing import Any, Callable, Iterable, List, Mapping, MutableMapping, Optional, Tuple

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import cdk_seam
from .config import SendgridConfig
from .errors import (MAX_RETRIES, RequestStats, SendgridBackoff, SendgridErrorHandler, TooDeepJson, is_missing_scope,
                     response_body)
from .output import page_lines
from .pagination import PageLoopGuard, Pager, SinglePage
from .schema_conform import compile_record_fitter
from .scopes import ScopeGate
from .streamed import CHUNK_BYTES, ArrayBlocks, BrokenAnswer, NotAnArray
from .windows import ChangedSince, format_time, state_cursor, utc_now

logger = logging.getLogger("airbyte")

def _key_paths(primary_key: Any) -> List[List[str]]:
    """A stream's primary key as field paths: "id" -> [["id"]], ["list_id", "id"] -> [["list_id"], ["id"]]."""
    if not primary_key:
        return []
    if isinstance(primary_key, str):
        return [[primary_key]]
    return [[part] if isinstance(part, str) else list(part) for part in primary_key]


def _key_check(primary_key: Any) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a record has every part of the key, none of them null. Runs once per record: a key of
    top-level fields (every stream's today) is a few dict lookups."""
    paths = _key_paths(primary_key)
    if all(len(path) == 1 for path in paths):
        names = tuple(path[0] for path in paths)
        if len(names) == 1:
            name = names[0]
            return lambda record: record.get(name) is not None
        return lambda record: all(record.get(name) is not None for name in names)

    def has_every_part(record: Mapping[str, Any]) -> bool:
        for path in paths:
            value: Any = record
            for name in path:
                value = value.get(name) if isinstance(value, Mapping) else None
            if value is None:
                return False
        return True

    return has_every_part


def _json_kind(body: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(type(body), "something else")


# Whether a read emits a record (see read_pages).
KeepRecord = Callable[[Mapping[str, Any]], bool]
# Records handed over at once by a stream whose records do not come in pages (see in_pages).
RECORDS_PER_BLOCK = 1000


class SendgridStream(HttpStream, ABC):
    """One SendGrid endpoint read with Bearer auth, the region's base URL, `on-behalf-of`, a timeout,
    our error policy and one pager."""

    # --- the endpoint ---
    # Its path; `{name}` parts are filled from the slice (a parent's id).
    path_template: str = ""
    # Query parameters sent on every page of this endpoint (e.g. a filter the API defaults too narrowly).
    static_params: Mapping[str, Any] = {}
    # How its pages follow each other (pagination.py); one page by default.
    pager: Pager = SinglePage()

    # --- who may read it ---
    # Every scope the key needs for this stream (names as /v3/scopes returns them).
    required_scopes: Tuple[str, ...] = ()
    # The spec declares `on-behalf-of` for this endpoint.
    accepts_subuser: bool = True
    # The spec lists only https://api.sendgrid.com for this endpoint (docs/endpoints.md#hosts).
    us_only: bool = False

    # --- what an answer holds ---
    # Key(s) of the records in the response body, first present wins; None: the body is the list.
    records_key: Optional[Tuple[str, ...]] = None
    # The field(s) that identify a record; a record without them is dropped, with a warning.
    primary_key: Optional[Any] = "id"
    # Records are JSON objects checked against the stream's schema (False: e.g. /v3/scopes, a list of strings).
    records_are_objects: bool = True
    # A 404 means "nothing here" (e.g. a parent deleted mid-sync) rather than an error (see is_harmless_not_found).
    not_found_is_empty: bool = False

    # --- how it is read ---
    # What each status code means for this endpoint (errors.py).
    error_handler_class: type = SendgridErrorHandler
    # (connect, read) seconds; a contacts export file is fetched elsewhere with its own timeout. Tests of read
    # timeouts shorten it on this class (worker processes are forked, so they inherit it).
    request_timeout: Tuple[float, float] = (10, 120)
    # The endpoint answers in one piece that can be long (every suppression group member at once): the answer,
    # a JSON array of the records (no records_key, one page), is read and its records handed over as it
    # arrives, a block at a time (see streamed.py).
    streams_its_answer: bool = False
    # The stream waits for the server before its first record (an export job): a concurrent read starts
    # it before the others, so the wait overlaps them.
    slow_start: bool = False
    def __init__(self, config: SendgridConfig, scope_gate: ScopeGate, stats: RequestStats,
                 emit_pages_as_lines: bool = False):
        """`emit_pages_as_lines`: the source reads this stream for the command line, which takes each page's
        records as one block of record lines (output.page_lines) instead of one by one, sparing the CDK's
        per-record loop. Parents built to slice their children are not told so: they always give records."""
        self.emit_pages_as_lines = emit_pages_as_lines
        self._config = config
        self._scope_gate = scope_gate
        self._stats = stats
        # The pages of the slice being read (read_pages starts one per slice): kept on the stream because the CDK
        # asks next_page_token for the next page with nothing but the response.
        self._page_guard = PageLoopGuard(self.name)
        self._skipped = False
        self._state: MutableMapping[str, Any] = {}
        # Every stream of a sync shares one rate-limit budget (stats.budget), read from SendGrid's headers.
        super().__init__(authenticator=TokenAuthenticator(token=config.api_key), api_budget=stats.budget)

    # --- request -----------------------------------------------------------------------------

    @property
    def url_base(self) -> str:
        return self._config.base_url

    def path(self, stream_slice: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> str:
        return self.path_template.format(**(stream_slice or {}))

    def request_params(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> MutableMapping[str, Any]:
        params = dict(self.static_params)
        params.update(self.slice_params(stream_slice or {}))
        # The page token last: a pager may narrow the slice (e.g. re-anchor a window's end on time).
        params.update(next_page_token or self.pager.first_page())
        return params

    def slice_params(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        """Query parameters that come from the slice (time window, parent ids); none by default."""
        return {}

    def request_headers(self, **kwargs: Any) -> Mapping[str, Any]:
        headers = {"Accept": "application/json"}
        if self._config.subuser and self.accepts_subuser:
            headers["on-behalf-of"] = self._config.subuser
        return headers

    def request_kwargs(self, **kwargs: Any) -> Mapping[str, Any]:
        return {"timeout": self.request_timeout, "stream": True} if self.streams_its_answer else {"timeout": self.request_timeout}

    def is_harmless_not_found(self, request: requests.PreparedRequest) -> bool:
        """Whether a 404 to this request means "no records here" rather than an error: when the endpoint says
        so (not_found_is_empty) or its pager ends on one. A stream whose 404s are harmless on some requests
        only (a detail call, a page past the first) narrows it; every other 404 fails the stream."""
        return self.not_found_is_empty or self.pager.ends_on_not_found

    def get_error_handler(self) -> SendgridErrorHandler:
        return self.error_handler_class(
            stream_name=self.name,
            harmless_not_found=self.is_harmless_not_found,
            stats=self._stats,
            # A streamed answer's body is checked as it is read (_streamed_records), not read whole first.
            expects_json=not self.streams_its_answer,
        )

    def get_backoff_strategy(self) -> SendgridBackoff:
        return SendgridBackoff()

    # --- response ----------------------------------------------------------------------------

    def parse_response(
        self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]] = None,
        keep: Optional[KeepRecord] = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any]]:
        if response.status_code >= 400:
            self._note_unreadable(response)
            return []
        return self._to_emit(self._records_of(response), stream_slice or {}, keep)

    def _to_emit(self, api_records: List[Any], stream_slice: Mapping[str, Any],
                 keep: Optional[KeepRecord]) -> List[Mapping[str, Any]]:
        records = self.records_from(api_records, stream_slice)
        return records if keep is None else [record for record in records if keep(record)]

    def records_from(self, api_records: List[Any], stream_slice: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        """The records to emit from a page's (or a streamed answer's block's) records as SendGrid sent them."""
        return self._conformed(api_records, stream_slice)

    def _conformed(self, records: List[Any], stream_slice: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        """Each record transformed, made to fit the stream's schema and given the slice's fields; an entry that
        is not a JSON object, that its transform cannot read, or that lacks a part of the primary key, is dropped
        with a counted warning instead of crashing the sync or reaching the destination without a key."""
        if not self.records_are_objects:
            return [self.transform(record, stream_slice) for record in records]
        fit = getattr(self, "_record_fitter", None)
        if fit is None:
            try:
                schema = self.get_json_schema()
            except (OSError, ValueError):  # an internal stream (e.g. scopes) has no schema file
                schema = {}
            fit = self._record_fitter = compile_record_fitter(schema or {})
        has_key = _key_check(self.primary_key)
        from_slice = self.slice_fields(stream_slice)
        out, dropped = [], []
        keyless = 0
        transform = self.transform
        for record in records:
            if type(record) is not dict:  # JSON objects arrive as dicts
                dropped.append(type(record).__name__)
                continue
            try:
                shaped = fit(transform(record, stream_slice))
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as error:
                dropped.append(type(error).__name__)
                continue
            if from_slice:
                shaped = {**shaped, **from_slice}
            if not has_key(shaped):
                keyless += 1
                continue
            out.append(shaped)
        if dropped:
            self.logger.warning(f"Stream {self.name}: dropped {len(dropped)} malformed record(s) SendGrid sent "
                                f"({', '.join(sorted(set(dropped)))}).")
        if keyless:
            # A record without its key cannot be deduplicated or updated downstream, and no later record can
            # replace it: it is left out, and counted.
            self.logger.warning(f"Stream {self.name}: dropped {keyless} record(s) SendGrid sent without their primary "
                                f"key ({', '.join('.'.join(path) for path in _key_paths(self.primary_key))} missing or null).")
        return out

    def slice_fields(self, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        """Fields every record of the slice gets from the slice itself (a parent's id); none by default."""
        return {}

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        """Shape one API record into the emitted record; identity unless an endpoint needs more."""
        return record

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        if response.status_code >= 400 and response.status_code != 404 or self._skipped or self.streams_its_answer:
            return None  # a streamed answer is the whole of its endpoint's records
        records = self._records_of(response) if response.status_code < 400 else []
        token = self.pager.next_page(response, response_body(response) if response.status_code < 400 else None, records)
        if token is None:
            return None
        self._page_guard.check(token, records)
        return token

    def _records_of(self, response: requests.Response) -> List[Any]:
        body = response_body(response)
        if self.records_key is None:
            found = body
        elif isinstance(body, Mapping):
            # A body without the records key (or with it null) is how some endpoints say "none".
            found = next((body[key] for key in self.records_key if key in body), None)
        else:
            raise AirbyteTracedException(
                message=f"SendGrid sent an unexpected body for stream {self.name}: expected a JSON object holding "
                        f"the records (under {' or '.join(repr(key) for key in self.records_key)}), got "
                        f"{_json_kind(body)}. The stream stops here rather than read it as no records.",
                internal_message=f"{self.name}: body is {type(body).__name__}",
                failure_type=FailureType.system_error,
            )
        if found is None:
            return []
        if not isinstance(found, list):
            raise AirbyteTracedException(
                message=f"SendGrid sent an unexpected body for stream {self.name}: expected a list of records.",
                internal_message=f"{self.name}: records at {self.records_key} are {type(found).__name__}",
                failure_type=FailureType.system_error,
            )
        return found

    def _note_unreadable(self, response: requests.Response) -> None:
        if is_missing_scope(response):
            self._skip(f"SendGrid answered {response.status_code}: the API key lacks the scope "
                       f"{', '.join(self.required_scopes) or 'this endpoint needs'}, or the account does not have this product")

    @property
    def skipped(self) -> bool:
        return self._skipped

    def _skip(self, reason: str) -> None:
        if not self._skipped:
            self._skipped = True
            self._scope_gate.note_skipped(type(self))
            self.logger.warning(f"Skipping stream {self.name}: {reason}. The other streams go on.")

    # --- read --------------------------------------------------------------------------------

    @property
    def is_resumable(self) -> bool:
        # Only incremental streams checkpoint; full-refresh streams restart from the first page.
        return self.supports_incremental

    @property
    def state(self) -> MutableMapping[str, Any]:
        return self._state

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None:
        self._state = dict(value or {})

    def is_readable(self) -> bool:
        """False, after warning once, when the key, region or an earlier 403 rules this stream out."""
        reason = self.unavailable_reason()
        if reason:
            self._skip(reason)
        return not self._skipped

    def unavailable_reason(self) -> Optional[str]:
        """Why this stream cannot be read with this key and config, or None if it can."""
        if self.us_only and self._config.region == "eu" and not self._config.base_url_overridden:
            return "SendGrid serves this endpoint only from the global (US) region, and `region` is eu"
        missing = self._scope_gate.missing(self.required_scopes)
        if missing:
            return f"the API key lacks the scope {', '.join(missing)}"
        return None

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        yield from self.read_pages(stream_slice, stream_state)
        if not self._skipped:
            self.on_slice_read(stream_slice or {})

    def read_pages(self, stream_slice: Optional[Mapping[str, Any]], stream_state: Optional[Mapping[str, Any]],
                   keep: Optional[KeepRecord] = None) -> Iterable[StreamData]:
        """The records of every page of the slice, nothing if the stream is skipped; `keep`, when given, picks
        the records to emit (a read that filters on the client), before any record becomes a line."""
        if not self.is_readable():
            return
        self._page_guard = PageLoopGuard(self.name)
        yield from cdk_seam.read_pages(self, partial(self._page_records, keep=keep), stream_slice, stream_state)

    def _page_records(self, request: requests.PreparedRequest, response: requests.Response,
                      stream_state: Mapping[str, Any], stream_slice: Optional[Mapping[str, Any]],
                      keep: Optional[KeepRecord]) -> Iterable[Any]:
        """One page's records for cdk_seam.read_pages; one block of record lines when the source reads pages."""
        if self.streams_its_answer and response.status_code < 400:
            return self._streamed_records(request, response, stream_slice or {}, keep)
        records = self.parse_response(response, stream_slice=stream_slice, stream_state=stream_state, keep=keep)
        if self.emit_pages_as_lines and records:
            return [page_lines(self.name, records)]
        return records

    def _streamed_records(self, request: requests.PreparedRequest, response: requests.Response,
                          stream_slice: Mapping[str, Any], keep: Optional[KeepRecord]) -> Iterable[StreamData]:
        """The records of an answer read as it arrives, a block at a time, handed over like pages.

        An answer that is empty, `null`, cut short or not JSON is asked for again, as a whole answer would be,
        as long as none of its records was handed over. Once some were, asking again cannot be silent (the
        answer may have changed meanwhile): the stream fails, saying so, and its state stays where it was."""
        handed_over = 0
        for attempt in range(1, MAX_RETRIES + 2):
            blocks = ArrayBlocks(response.iter_content(CHUNK_BYTES))
            try:
                for api_records in blocks:
                    records = self._to_emit(api_records, stream_slice, keep)
                    if records:
                        handed_over += len(records)
                        yield from self._as_page(records)
                if blocks.replaced:
                    self.logger.warning(f"Stream {self.name}: SendGrid sent {blocks.replaced} character(s) that are not "
                                        "valid Unicode (lone UTF-16 surrogate escapes or bytes that are not UTF-8); each "
                                        "was replaced with U+FFFD and the records kept.")
                return
            except TooDeepJson:
                raise AirbyteTracedException(
                    message=f"SendGrid answered stream {self.name} with JSON nested deeper than this connector can "
                            "read; asking again would bring the same answer, so the stream stops here.",
                    failure_type=FailureType.system_error,
                ) from None
            except NotAnArray as answer:
                raise AirbyteTracedException(
                    message=f"SendGrid sent an unexpected body for stream {self.name}: expected a list of records, got "
                            f"{_json_kind(answer.body)}. The stream stops here rather than read it as no records.",
                    internal_message=f"{self.name}: streamed body is {type(answer.body).__name__}",
                    failure_type=FailureType.system_error,
                ) from None
            except (BrokenAnswer, requests.RequestException) as broken:
                what = str(broken) if isinstance(broken, BrokenAnswer) else f"the connection broke ({type(broken).__name__})"
                if handed_over:
                    raise AirbyteTracedException(
                        message=f"SendGrid's answer for stream {self.name} broke off after {handed_over} records were "
                                f"read ({what}). It comes in one piece and cannot be resumed, so the stream fails "
                                "rather than end short; its state is unchanged and the next sync reads it again.",
                        internal_message=f"{self.name}: streamed answer broken after {handed_over} records: {what}",
                        failure_type=FailureType.transient_error,
                    ) from None
                if attempt > MAX_RETRIES:
                    raise AirbyteTracedException(
                        message=f"SendGrid sent an unreadable answer for stream {self.name} ({what}) {attempt} times "
                                "in a row; the stream stops here rather than read it as no records.",
                        failure_type=FailureType.transient_error,
                    ) from None
                self.logger.warning(f"Stream {self.name}: SendGrid's answer was {what}; asking again.")
                self._stats.count_retry()
            finally:
                response.close()
            time.sleep(SendgridBackoff().backoff_time(None, attempt) or 0)
            _, response = self._http_client.send_request("GET", request.url or "", headers=self.request_headers(),
                                                         request_kwargs=self.request_kwargs())
            if response.status_code >= 400:
                self._note_unreadable(response)
                return

    def _as_page(self, records: List[Mapping[str, Any]]) -> Iterable[StreamData]:
        if self.emit_pages_as_lines:
            yield page_lines(self.name, records)
        else:
            yield from records

    def in_pages(self, records: Iterable[Mapping[str, Any]]) -> Iterable[StreamData]:
        """Records that do not come in pages (rows of an export file), handed over like pages: in blocks of
        RECORDS_PER_BLOCK lines when the source reads pages, else one by one."""
        if not self.emit_pages_as_lines:
            yield from records
            return
        block: List[Mapping[str, Any]] = []
        for record in records:
            block.append(record)
            if len(block) >= RECORDS_PER_BLOCK:
                yield page_lines(self.name, block)
                block = []
        if block:
            yield page_lines(self.name, block)

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        """Called once every page of a slice was read: where incremental streams advance their state."""

    def _state_cursor(self) -> Optional[datetime]:
        """The state's cursor for an incremental read; one that is no time or is before 1970 is read as no
        state (the read starts from `start_date`: nothing is lost), with a warning."""
        value = (self.state or {}).get(self.cursor_field)
        cursor = state_cursor(value)
        if cursor is None and value not in (None, ""):
            self.logger.warning(f"Stream {self.name}: the state's cursor {str(value)[:40]!r} is not a usable time "
                                "(unreadable or before 1970); reading from start_date as if there were no state.")
        elif cursor is not None and cursor > utc_now():
            self.logger.warning(f"Stream {self.name}: the state's cursor {format_time(cursor)} is in the future; "
                                "nothing newer can be read until then and the state stays as it is. If a record "
                                "dated in the future put it there, reset this stream.")
        return cursor

    def _changed_since(self, sync_mode: SyncMode) -> ChangedSince:
        """For a read that filters on the client: what changed since the state's cursor (a full refresh: all)."""
        cursor = self._state_cursor() if sync_mode == SyncMode.incremental else None
        return ChangedSince(cursor, self._config.lookback, utc_now())

    def _warn_of_future_records(self, since: ChangedSince) -> None:
        warning = since.newest.future_warning(self.name)
        if warning:
            self.logger.warning(warning)
