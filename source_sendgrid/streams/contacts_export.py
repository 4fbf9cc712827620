"""Contacts, list members and segment members, all read from one contacts export job.

`GET /v3/marketing/contacts` is a 50-contact sample, so the only complete source is the export job:
`POST /v3/marketing/contacts/exports`, poll `GET .../exports/{id}` until `ready`, then download every
URL. The files sit on another host behind pre-signed links (sent without our `Authorization` header), and
SendGrid has served them gzip-compressed and plain, as CSV and as JSON: both are detected from the bytes
and parsed while they stream in, so memory stays flat however many contacts the account has.

An incremental contacts sync first asks the contact search for the contacts changed since its state: when the
search returns them all (it returns at most 50) and its counts add up, they are the records, and no export runs.

An unfiltered export has no list or segment column: a contact's `list_ids` and `segment_ids` are filled only
where its source carries them (the contact search, or an export file with those columns), else null. Within
one sync the ready export is shared by the contacts, list_members and segment_members streams (its files
are downloaded again by each, not kept); the membership streams are in `memberships.py`.

What an export answers is checked before it is believed: its links are fetched over https from public hosts
only (every redirect checked too), a file's lines and items are bounded in size, a row that is not a contact
(no contact id, or nothing that identifies it) is rejected, and an export whose files hold fewer contacts than
it counts, or that is ready without a link, is made again and finally fails the stream rather than pass for
an account with fewer contacts.
"""

from __future__ import annotations

import csv
import ctypes
import gzip
import io
import ipaddress
import json
import re
import socket
import threading
import time
import weakref
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from multiprocessing import sharedctypes
from typing import Any, BinaryIO, Callable, Dict, Generator, Iterable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urljoin, urlsplit

import orjson
import requests
import urllib3
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.core import CheckpointMixin, StreamData
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .. import cdk_seam
from ..base import SendgridStream
from ..errors import SendgridErrorHandler, response_body
from ..shared_lock import Claim
from ..windows import CappedCursor, format_time, normalize_time, parse_time, utc_now

EXPORT_PATH = "/v3/marketing/contacts/exports"
SEARCH_PATH = "/v3/marketing/contacts/search"
COUNT_PATH = "/v3/marketing/contacts/count"
PROBE_PATHS = (SEARCH_PATH, COUNT_PATH)
FIELD_DEFINITIONS_PATH = "/v3/marketing/field_definitions"
FAILED_STATUSES = frozenset({"failure", "failed"})
# A job is created again after a failure or an expired link, at most this many times in all.
MAX_EXPORT_ATTEMPTS = 3
# Polling waits grow from the first to the largest wait; a job still pending after the total gives up.
POLL_FIRST_WAIT = 1.0
POLL_MAX_WAIT = 30.0
POLL_TOTAL_WAIT = 3 * 3600.0
# A download cut short is started again (skipping the rows already read) at most this many times per file.
MAX_DOWNLOAD_RETRIES = 5
DOWNLOAD_TIMEOUT = (10, 300)
# A file host may redirect (S3 does, https to https); each hop is checked like the link itself.
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# A line of an export file, or an item of a JSON array, longer than this once decompressed is refused: no
# contact comes near it, and reading on would hold a decompression bomb in memory. (A CSV field is also
# bounded by the csv module, at csv.field_size_limit(): 131072 characters.)
MAX_LINE_SIZE = 16 * 1024 * 1024
# Statuses of a pre-signed link that no longer works: expired (403), refused (400) or gone (404, 410).
_DEAD_LINK = frozenset({400, 401, 403, 404, 410})
_GZIP_MAGIC = b"\x1f\x8b"
# Room for the ready export's id and download links when worker processes share it (thousands of links).
SHARED_EXPORT_BYTES = 4 * 1024 * 1024

# Reserved fields whose values are not plain text, by the name the connector emits.
LIST_FIELDS = frozenset({"list_ids", "segment_ids", "alternate_emails"})
TIME_FIELDS = frozenset({"created_at", "updated_at"})
# How export files name the contact's id.
ID_COLUMNS = frozenset({"contact_id", "id"})
# What identifies a contact besides its id: SendGrid needs at least one of them to store a contact.
IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")


class DeadLink(Exception):
    """A download link that no longer works: the export must be created again."""


class ExportFailed(Exception):
    """SendGrid ended the job in a failure state."""


class MalformedExport(Exception):
    """An export file that does not read as contacts: downloading it again would give the same bytes."""


class RefusedLink(Exception):
    """A download link (or a redirect) to somewhere export files are not fetched from."""


# --- values --------------------------------------------------------------------------------------

def _text(value: Any) -> Any:
    return value if value != "" else None


def _time(value: Any) -> Optional[str]:
    # Fast path for the form SendGrid and our records share; anything else goes through the full parser.
    if value.__class__ is str and len(value) == 20 and value[10] == "T" and value[19] == "Z":
        return value
    return normalize_time(value)


def _number(value: Any) -> Any:
    if value is None or value == "":
        return None
    if value.__class__ is not str:
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def _string_list(value: Any) -> List[Any]:
    if value is None or value == "":
        return []
    if value.__class__ is str:
        return value.split(",")
    return list(value)


_CONVERTERS: Dict[str, Callable[[Any], Any]] = {"Number": _number, "Date": _time, "Text": _text}


@dataclass(frozen=True)
class FieldTypes:
    """Custom field definitions: a column or key (its name, any case, or its id) -> (name, converter)."""

    by_key: Mapping[str, Tuple[str, Callable[[Any], Any]]]

    @classmethod
    def of(cls, custom_fields: Iterable[Mapping[str, Any]]) -> "FieldTypes":
        by_key = {}
        for field in custom_fields:
            name = field.get("name")
            if not name:
                continue
            entry = (str(name), _CONVERTERS.get(str(field.get("field_type")), _text))
            by_key[str(name).lower()] = entry
            if field.get("id"):
                by_key[str(field["id"]).lower()] = entry
        return cls(by_key)

    def lookup(self, key: str) -> Optional[Tuple[str, Callable[[Any], Any]]]:
        return self.by_key.get(key.lower())


# --- parsing ---------------------------------------------------------------------------------------

class CsvPlan:
    """What to do with each column of one file, decided once from its header row."""

    def __init__(self, header: List[str], fields: FieldTypes):
        self.text, self.lists, self.times, self.custom = [], [], [], []
        self.id_index: Optional[int] = None
        for index, column in enumerate(header):
            key = column.strip().lower()
            if key in ID_COLUMNS:
                self.id_index = index
            elif key in LIST_FIELDS:
                self.lists.append((index, key))
            elif key in TIME_FIELDS:
                self.times.append((index, key))
            elif fields.lookup(key):
                name, convert = fields.lookup(key)
                self.custom.append((index, name, convert))
            else:
                self.text.append((index, key))
        self.columns = {key for _, key in self.text + self.lists + self.times}
        if self.id_index is None and "email" not in self.columns:
            # An error page served with a 200 (a proxy's HTML) must not become records.
            raise ValueError(f"not a contacts export: its first line has no EMAIL or CONTACT_ID column ({len(header)} columns)")

    def record(self, row: List[str]) -> Dict[str, Any]:
        record = {key: (row[i] or None) for i, key in self.text}
        record["id"] = row[self.id_index] if self.id_index is not None else None
        for i, key in self.lists:
            value = row[i]
            record[key] = value.split(",") if value else []
        for i, key in self.times:
            record[key] = _time(row[i])
        record["custom_fields"] = {name: convert(row[i]) for i, name, convert in self.custom}
        return record


class JsonPlan:
    """The same for JSON objects, whose keys may vary: each key's handling is decided once and cached."""

    def __init__(self, fields: FieldTypes):
        self._fields = fields
        self._handlers: Dict[str, Tuple[str, Any]] = {}

    def _handler(self, key: str) -> Tuple[str, Any]:
        found = self._handlers.get(key)
        if found is None:
            lowered = key.lower()
            if lowered in ID_COLUMNS:
                found = ("id", None)
            elif lowered in LIST_FIELDS:
                found = ("list", lowered)
            elif lowered in TIME_FIELDS:
                found = ("time", lowered)
            elif lowered == "custom_fields":
                found = ("custom_object", None)
            elif self._fields.lookup(lowered):
                found = ("custom", self._fields.lookup(lowered))
            else:
                found = ("text", lowered)
            self._handlers[key] = found
        return found

    def record(self, item: Mapping[str, Any]) -> Dict[str, Any]:
        record: Dict[str, Any] = {}
        custom: Dict[str, Any] = {}
        for key, value in item.items():
            kind, how = self._handler(key)
            if kind == "text":
                record[how] = _text(value)
            elif kind == "id":
                record["id"] = value
            elif kind == "list":
                record[how] = _string_list(value)
            elif kind == "time":
                record[how] = _time(value)
            elif kind == "custom":
                custom[how[0]] = how[1](value)
            elif isinstance(value, Mapping):
                for custom_key, custom_value in value.items():
                    typed = self._fields.lookup(custom_key)
                    if typed:
                        custom[typed[0]] = typed[1](custom_value)
                    else:
                        custom[custom_key] = custom_value
        record["custom_fields"] = custom
        return record


def parse_export(raw: BinaryIO, fields: FieldTypes) -> Iterator[Dict[str, Any]]:
    """Contacts of one export file, decompressed and parsed as the bytes arrive.

    gzip or plain is told by the magic bytes; CSV, JSON lines or a JSON array by the first character. A file
    that cannot be contacts raises MalformedExport (saying where); one that ends mid-row raises EOFError.
    """
    buffered = io.BufferedReader(_RawReader(raw), 1 << 20)
    stream: Any = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == _GZIP_MAGIC else buffered
    first = stream.peek(512).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"{":
        yield from _json_lines(stream, JsonPlan(fields))
    elif first == b"[":
        plan = JsonPlan(fields)
        items = _json_array_items(io.TextIOWrapper(stream, encoding="utf-8-sig"))
        for number, item in enumerate(items, 1):
            yield _json_record(plan, item, f"item {number}")
    elif first:
        yield from _csv_rows(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""), fields)


def _bounded_lines(readline: Callable[[int], Any]) -> Iterator[Any]:
    """Lines (bytes or text) as `readline` gives them, none longer than MAX_LINE_SIZE: a longer line is refused
    as soon as that much of it was read."""
    number = 0
    while True:
        line = readline(MAX_LINE_SIZE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_SIZE:
            raise MalformedExport(f"line {number} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB once decompressed")
        yield line


def _json_lines(stream: Any, plan: JsonPlan) -> Iterator[Dict[str, Any]]:
    readline, number = stream.readline, 0
    while True:  # _bounded_lines, inlined: this loop runs once per contact
        line = readline(MAX_LINE_SIZE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_SIZE:
            raise MalformedExport(f"line {number} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB once decompressed")
        if not line.strip():
            continue
        try:
            item = orjson.loads(line.lstrip(b"\xef\xbb\xbf") if line[:1] == b"\xef" else line)
        except orjson.JSONDecodeError as error:
            if not line.endswith(b"\n"):  # the last line, cut short
                raise EOFError(f"the file ended in the middle of line {number}") from None
            raise MalformedExport(f"line {number} is not JSON ({error.msg})") from None
        yield _json_record(plan, item, f"line {number}")


def _json_record(plan: JsonPlan, item: Any, where: str) -> Dict[str, Any]:
    if not isinstance(item, dict):
        raise MalformedExport(f"{where} is a JSON {type(item).__name__}, not an object")
    try:
        return plan.record(item)
    except (TypeError, ValueError, AttributeError) as error:  # e.g. "list_ids": 5
        raise MalformedExport(f"{where} has a value of the wrong type ({error})") from None


def _csv_rows(text: io.TextIOBase, fields: FieldTypes) -> Iterator[Dict[str, Any]]:
    reader = csv.reader(_bounded_lines(text.readline))
    number = 0
    try:
        header = next(reader, None)
        if not header:
            return
        record = CsvPlan(header, fields).record
        width = len(header)
        for number, row in enumerate(reader, 1):
            if len(row) != width:
                if not row:
                    continue
                if next(reader, None) is None:  # the last row, cut short
                    raise EOFError(f"the file ended in the middle of row {number}")
                raise MalformedExport(f"row {number} has {len(row)} columns, the header has {width}")
            yield record(row)
    except csv.Error as error:
        raise MalformedExport(f"row {number + 1} is not CSV ({error})") from None


class _RawReader(io.RawIOBase):
    """A byte stream over anything with `read(n)` that keeps answering b"" at the end: urllib3 closes its
    response once drained, and gzip reads once more after that."""

    def __init__(self, source: Any):
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if getattr(self._source, "closed", False):
            return 0
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _json_array_items(text: io.TextIOBase, chunk_size: int = 1 << 20) -> Iterator[Any]:
    """Items of a top-level JSON array read chunk by chunk: only one chunk and one item are held at once, and an
    item is refused once more than MAX_LINE_SIZE of it was read."""
    decoder = json.JSONDecoder()
    buffer, position, at_end = "", 0, False
    started = False
    number = 0
    while True:
        while position < len(buffer) and buffer[position] in " \t\r\n,[]\ufeff":
            if buffer[position] == "[":
                started = True
            position += 1
        if position < len(buffer):
            try:
                item, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError as error:
                if at_end:
                    if buffer.rstrip().endswith("]"):
                        raise MalformedExport(f"item {number + 1} is not JSON ({error.msg})") from None
                    raise EOFError(f"the file ended in the middle of item {number + 1}") from None
                if len(buffer) - position > MAX_LINE_SIZE:
                    raise MalformedExport(f"item {number + 1} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB "
                                          f"once decompressed, or is not JSON") from None
            else:
                if started:
                    number += 1
                    if end - position > MAX_LINE_SIZE:
                        raise MalformedExport(f"item {number} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB")
                    yield item
                position = end
                continue
        if at_end:
            return
        chunk = text.read(chunk_size)
        at_end = not chunk
        buffer, position = buffer[position:] + chunk, 0


# --- the export job ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadyExport:
    id: str
    urls: Tuple[str, ...]
    contact_count: Optional[int] = None  # as the job states it; None when it does not


class _SyncExport:
    """The ready unfiltered export of one sync. Its `lock` is a claim on creating the export: streams read
    concurrently wait for the one creating it instead of starting their own, and take the job over if that
    one's process dies. Shared with worker processes, the claim is theirs too and the export is kept in shared
    memory, so one job serves the whole sync there as well."""

    def __init__(self, owner: Any):
        self.owner = weakref.ref(owner)
        self.lock = Claim("contacts export")
        self._export: Optional[ReadyExport] = None
        self._shared: Optional[Any] = None  # a ctypes char array: 8 bytes of length, then the export as JSON

    def share_with_processes(self, context: Any) -> None:
        self.lock.share_with_processes()
        self._shared = sharedctypes.RawArray(ctypes.c_char, SHARED_EXPORT_BYTES)  # pages are touched only when used

    @property
    def export(self) -> Optional[ReadyExport]:
        if self._shared is None:
            return self._export
        size = int.from_bytes(self._shared[:8], "little")
        if not size:
            return self._export
        found = orjson.loads(self._shared[8:8 + size])
        return ReadyExport(id=found["id"], urls=tuple(found["urls"]), contact_count=found.get("contact_count"))

    @export.setter
    def export(self, export: Optional[ReadyExport]) -> None:
        self._export = export
        if self._shared is None:
            return
        body = orjson.dumps({"id": export.id, "urls": export.urls, "contact_count": export.contact_count}) \
            if export is not None else b""
        if len(body) + 8 > len(self._shared):
            body = b""  # too many files to share: this process keeps it, others make their own
        # The length last: a process killed while writing leaves no export, never half of one.
        self._shared[:8] = bytes(8)
        self._shared[8:8 + len(body)] = body
        self._shared[:8] = len(body).to_bytes(8, "little")


# Keyed by the id of the sync's RequestStats (one per read, shared by all its streams); the weak reference
# tells a live sync from a finished one whose id was reused.
_sync_exports: Dict[int, _SyncExport] = {}
_sync_exports_lock = threading.Lock()


def _sync_export_of(stats: Any) -> _SyncExport:
    with _sync_exports_lock:
        for key, holder in list(_sync_exports.items()):
            if holder.owner() is None:
                del _sync_exports[key]
        holder = _sync_exports.get(id(stats))
        if holder is None or holder.owner() is not stats:
            holder = _sync_exports[id(stats)] = _SyncExport(stats)
        return holder


def share_sync_export_with_processes(stats: Any, context: Any) -> None:
    """Before worker processes fork: the streams of the sync (of `stats`) in every process share one export."""
    _sync_export_of(stats).share_with_processes(context)


class _ProbeTolerantErrorHandler(SendgridErrorHandler):
    """The contact search and count only tell whether the export can be skipped: an answer that would fail the
    stream (a query SendGrid does not accept, an endpoint it does not serve) or a search that ran out of time
    (408, after 20 s: asking again would not be faster) just means "export"."""

    def _resolve(self, response: Any) -> ErrorResolution:
        resolution = super()._resolve(response)
        if isinstance(response, requests.Response) and urlsplit(response.request.url).path.endswith(PROBE_PATHS) \
                and (resolution.failure_type == FailureType.system_error or response.status_code == 408):
            return ErrorResolution(ResponseAction.IGNORE, None, f"Stream {self._stream_name}: SendGrid answered "
                                   f"{response.status_code} to {urlsplit(response.request.url).path}; exporting instead.")
        return resolution


class ContactsExportStream(SendgridStream, CheckpointMixin, ABC):
    """A stream made from the contacts of one export job; subclasses say which records a contact gives."""

    us_only = True
    accepts_subuser = False
    required_scopes = ("marketing.read",)
    slow_start = True  # the export job's wait overlaps the other streams in a concurrent read
    path_template = EXPORT_PATH
    cursor_field = "updated_at"
    # Contacts emit only what changed since the state; membership streams emit the whole membership.
    filters_by_cursor = True
    error_handler_class = _ProbeTolerantErrorHandler

    # --- what a subclass says ---

    @abstractmethod
    def records_of_contact(self, contact: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        """The records one exported contact gives this stream."""

    # --- read ---

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        if not self.is_readable():
            return
        cursor = self._state_cursor() if sync_mode == SyncMode.incremental else None
        now = utc_now()
        if cursor is not None and cursor >= now:
            return  # nothing newer than the state can exist yet; the state stays as it is
        threshold = format_time(cursor - self._config.lookback) if cursor else None
        newest = CappedCursor(format_time(cursor) if cursor else None, now)
        self._fields = self._field_types()
        if self._skipped:
            return
        searched = self._changed_after(threshold) if self.filters_by_cursor and threshold is not None else None
        if searched is not None:
            self.logger.info(f"Stream {self.name}: the contact search found every contact updated after {threshold} "
                             f"({len(searched)}); no export needed.")
        yield from self.in_pages(self._records_after(threshold, self._contacts() if searched is None else searched, newest))
        if self._skipped:
            return
        future_warning = newest.future_warning(self.name)
        if future_warning:
            self.logger.warning(future_warning)
        # Only now: every file of the export was read.
        if newest.value is not None:
            self.state = {self.cursor_field: newest.value}

    def _records_after(self, threshold: Optional[str], contacts: Iterable[Mapping[str, Any]],
                       newest: CappedCursor) -> Iterator[Mapping[str, Any]]:
        """This stream's records of the contacts updated after `threshold`; each update is shown to `newest`."""
        for contact in contacts:
            updated = contact.get("updated_at")
            newest.see(updated)
            if self.filters_by_cursor and threshold is not None and updated is not None and updated <= threshold:
                continue
            yield from self.records_of_contact(contact)

    def _contacts(self, filters: Optional[Mapping[str, List[str]]] = None) -> Iterator[Dict[str, Any]]:
        """The contacts of a ready export: the sync's shared unfiltered one, or a private one for `filters`."""
        self._export_attempts = 0
        shared = _SyncExport(self._stats) if filters else _sync_export_of(self._stats)
        while True:
            with shared.lock:
                if shared.export is None:
                    shared.export = self._create_ready_export(filters)
                export = shared.export
            if export is None:
                return
            problem = yield from self._contacts_of(export)
            if problem is None:
                return
            with shared.lock:
                if shared.export == export:
                    shared.export = None
            if self._export_attempts >= MAX_EXPORT_ATTEMPTS:
                raise _failure(f"contacts export {export.id} could not be read whole after {self._export_attempts} "
                               f"exports: {problem}. Run the sync again later; if it keeps failing, tell SendGrid "
                               f"support about export {export.id}")
            self.logger.warning(f"Stream {self.name}: {problem} (export {export.id}); creating a new export. "
                                f"Contacts already read may be emitted again.")

    def _contacts_of(self, export: ReadyExport) -> Generator[Dict[str, Any], None, Optional[str]]:
        """The contacts of every file of `export`; returns what makes the export unusable (a dead link, fewer
        contacts than the job counted), or None once all of them were read."""
        rows = 0
        try:
            for number, url in enumerate(export.urls, 1):
                rows += yield from self._download(url, self._fields, export, number)
        except DeadLink as dead:
            return f"a download link no longer works ({dead})"
        if export.contact_count is not None and rows < export.contact_count:
            return f"its files hold {rows} of the {export.contact_count} contacts it counts"
        return None

    def _changed_after(self, threshold: str) -> Optional[List[Dict[str, Any]]]:
        """Every contact updated after `threshold`, when SendGrid's contact search can give them all (it returns
        the first 50 matches), so that an incremental sync with little or nothing new skips the export (minutes
        for a large account). The search is trusted only when the contacts it counts after and at or before the
        threshold add up to the contacts the account counts: a query SendGrid reads differently, or an index
        that has not caught up, means None, and an export as before."""
        after = self._search(f"updated_at > TIMESTAMP '{threshold}'")
        if after is None or after[0] != len(after[1]):  # more than it returned (or a count that does not fit)
            return None
        before = self._search(f"updated_at <= TIMESTAMP '{threshold}'")
        total = self._body_of(self._api("GET", COUNT_PATH)).get("contact_count")
        if before is None or before[0] + after[0] != total:
            return None
        plan = JsonPlan(self._fields)
        # The search's contacts are the API's contact objects: read like a JSON export, without their `_metadata`.
        return [plan.record({k: v for k, v in contact.items() if not k.startswith("_")}) for contact in after[1]]

    def _search(self, query: str) -> Optional[Tuple[int, List[Mapping[str, Any]]]]:
        """(how many contacts match, the first of them), or None if SendGrid did not answer that."""
        body = self._body_of(self._api("POST", SEARCH_PATH, json={"query": query}))
        count, contacts = body.get("contact_count"), body.get("result")
        if not isinstance(count, int) or not isinstance(contacts, list) or not all(isinstance(c, Mapping) for c in contacts):
            return None
        return count, contacts

    @staticmethod
    def _body_of(response: requests.Response) -> Mapping[str, Any]:
        body = response_body(response) if response.status_code == 200 else None
        return body if isinstance(body, Mapping) else {}

    def _field_types(self) -> FieldTypes:
        response = self._api("GET", FIELD_DEFINITIONS_PATH)
        if response.status_code >= 400:
            self._note_unreadable(response)
            return FieldTypes({})
        return FieldTypes.of((response_body(response) or {}).get("custom_fields") or [])

    def _create_ready_export(self, filters: Optional[Mapping[str, List[str]]]) -> Optional[ReadyExport]:
        """Start an export and wait for it; a job that fails is started again, a bounded number of times."""
        while True:
            self._export_attempts += 1
            try:
                return self._start_and_wait(filters)
            except ExportFailed as failed:
                if self._export_attempts >= MAX_EXPORT_ATTEMPTS:
                    raise _failure(f"SendGrid failed the contacts export {self._export_attempts} times; last: {failed}") from None
                self.logger.warning(f"Stream {self.name}: {failed}; starting a new export.")

    def _start_and_wait(self, filters: Optional[Mapping[str, List[str]]]) -> Optional[ReadyExport]:
        response = self._api("POST", EXPORT_PATH, json={"file_type": "csv", **(filters or {})})
        if response.status_code >= 400:
            self._note_unreadable(response)
            return None
        job_id = (response_body(response) or {}).get("id")
        if not job_id:
            raise _failure("SendGrid accepted the contacts export but sent no job id")
        waited, wait = 0.0, POLL_FIRST_WAIT
        while True:
            time.sleep(wait)
            waited += wait
            job = response_body(self._api("GET", f"{EXPORT_PATH}/{job_id}")) or {}
            status = str(job.get("status") or "").lower()
            if status == "ready":
                urls, count = job.get("urls"), job.get("contact_count")
                # The spec: `urls` holds "one or more download URLs" once ready. None is not an empty account.
                if not isinstance(urls, list) or not urls or not all(isinstance(url, str) for url in urls):
                    raise ExportFailed(f"contacts export {job_id} is ready but gave no download link")
                return ReadyExport(id=job_id, urls=tuple(urls),
                                   contact_count=count if isinstance(count, int) and not isinstance(count, bool) else None)
            if status in FAILED_STATUSES:
                raise ExportFailed(f"contacts export {job_id} ended with status {status!r}: {job.get('message') or 'no message'}")
            if waited >= POLL_TOTAL_WAIT:
                raise _failure(f"contacts export {job_id} was still {status!r} after {int(waited)} seconds")
            wait = min(POLL_MAX_WAIT, wait * 1.5)

    def _api(self, method: str, path: str, json: Optional[Mapping[str, Any]] = None) -> requests.Response:
        headers = {**self.request_headers(), **({"Content-Type": "application/json"} if json is not None else {})}
        _, response = cdk_seam.http_client(self).send_request(method, f"{self.url_base}{path}", headers=headers, json=json,
                                                              request_kwargs=self.request_kwargs())
        return response

    def _download(self, url: str, fields: FieldTypes, export: ReadyExport, number: int) -> Generator[Dict[str, Any], None, int]:
        """The contacts of file `number` of `export`; returns how many rows it held. The link is pre-signed: our
        API key must not go with it. A download cut short is retried, skipping the rows already read (the file
        does not change); a file that cannot be read as contacts fails the stream at once, saying why."""
        rows = rejected = 0
        which = f"file {number} of {len(export.urls)} of contacts export {export.id}"
        for retry in range(MAX_DOWNLOAD_RETRIES + 1):
            try:
                with self._open_download(url) as response:
                    if response.status_code in _DEAD_LINK:
                        raise DeadLink(f"HTTP {response.status_code}")
                    if response.status_code >= 400:
                        raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
                    response.raw.decode_content = True
                    skip = rows
                    for contact in parse_export(response.raw, fields):
                        if skip:
                            skip -= 1
                            continue
                        rows += 1
                        if _is_contact(contact):
                            yield contact
                        else:
                            rejected += 1
                break
            except RefusedLink as refused:
                raise _failure(f"{which} has a download link the connector does not follow: {refused}. Export files "
                               f"are fetched over https from public hosts only") from None
            except (MalformedExport, UnicodeDecodeError, gzip.BadGzipFile, zlib.error) as error:
                raise _failure(f"{which} cannot be read: {_described(error)}. Downloading it again would give the "
                               f"same file; if a new sync fails the same way, tell SendGrid support about export "
                               f"{export.id}") from None
            except (requests.RequestException, urllib3.exceptions.HTTPError, EOFError, OSError, ValueError) as error:
                if retry == MAX_DOWNLOAD_RETRIES:
                    raise _failure(f"{which} could not be downloaded ({_described(error)})") from None
                self.logger.warning(f"Stream {self.name}: the export download broke off ({_described(error)}); "
                                    f"retrying from contact {rows}.")
                time.sleep(min(30.0, 2.0 ** retry))
        if rejected:
            self.logger.warning(f"Stream {self.name}: rejected {rejected} of the {rows} rows of {which}: a row without "
                                f"a contact id, or without an email ({', '.join(IDENTIFIERS[1:])} either), is not a "
                                f"contact.")
        return rows

    def _open_download(self, url: str) -> requests.Response:
        """The response to GET `url`, redirects followed here rather than by requests, so that each hop is held
        to the same rule as the link itself (see refused_link)."""
        local_api = _is_loopback_host(urlsplit(self._config.base_url).hostname or "")
        session = _download_session()
        for _ in range(MAX_REDIRECTS + 1):
            reason = refused_link(url, local_api)
            if reason:
                raise RefusedLink(reason)
            response = session.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT, allow_redirects=False)
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECT_STATUSES or not location:
                return response
            response.close()
            url = urljoin(url, location)
        raise RefusedLink(f"the file host redirected more than {MAX_REDIRECTS} times")


def _is_contact(record: Mapping[str, Any]) -> bool:
    contact_id = record.get("id")
    return (contact_id.__class__ is str and contact_id.strip() != ""
            and (bool(record.get("email")) or any(record.get(key) for key in IDENTIFIERS[1:])))


def _described(error: BaseException) -> str:
    """What went wrong, without the link: a connection error's text names the pre-signed URL, which lets anyone
    download the contacts until it expires."""
    if isinstance(error, MalformedExport):
        return str(error)
    if isinstance(error, requests.RequestException) and not isinstance(error, requests.HTTPError):
        return type(error).__name__
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return f"{type(error).__name__}: {error}"


def refused_link(url: str, local_api: bool) -> Optional[str]:
    """Why an export file is not fetched from `url`, or None. Files come over https; plain http and private,
    loopback or link-local addresses are for an `api_base_url` on this machine (the emulator, a local proxy)
    only, so a tampered job cannot make the connector read a service inside the network and emit its answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    where = f"{parts.scheme}://{host}" if parts.scheme else "a link without a scheme"
    if parts.scheme not in ("http", "https") or not host:
        return f"{where} is not an http(s) URL"
    address = _ip_literal(host)
    loopback = _is_loopback_host(host)
    if parts.scheme == "http" and not (local_api and loopback):
        return f"{where} is plain http"
    if not local_api and (loopback or (address is not None and not address.is_global)):
        return f"{where} is a private, loopback or link-local address"
    return None


def _ip_literal(host: str) -> Optional[Any]:
    """The address `host` spells, in any form a resolver accepts (127.1, 0x7f000001, ::ffff:127.0.0.1), or None."""
    address: Any = None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if re.fullmatch(r"[0-9a-fx.]+", host.lower()):
            try:
                address = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _ip_literal(host)
    return address is not None and address.is_loopback


def _download_session() -> requests.Session:
    """A plain session: no authenticator, so no `Authorization` header reaches the file host."""
    session = requests.Session()
    session.headers["Accept"] = "*/*"
    return session


def _failure(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=f"Contacts export: {message}.", failure_type=FailureType.system_error)


class Contacts(ContactsExportStream):
    """Every contact, with reserved fields as typed columns and `custom_fields` keyed by the field's name
    (numbers as numbers, dates as date-times). Incremental syncs emit contacts updated since the state."""

    def records_of_contact(self, contact: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        return (contact,)

