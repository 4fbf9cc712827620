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
"""

from __future__ import annotations

import csv
import ctypes
import gzip
import io
import json
import threading
import time
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from multiprocessing import sharedctypes
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.core import CheckpointMixin, StreamData
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..base import SendgridStream
from ..errors import SendgridErrorHandler, response_body
from ..windows import format_time, normalize_time, parse_time

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


class DeadLink(Exception):
    """A download link that no longer works: the export must be created again."""


class ExportFailed(Exception):
    """SendGrid ended the job in a failure state."""


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

    gzip or plain is told by the magic bytes; CSV, JSON lines or a JSON array by the first character.
    """
    buffered = io.BufferedReader(_RawReader(raw), 1 << 20)
    stream: Any = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == _GZIP_MAGIC else buffered
    first = stream.peek(512).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"{":
        plan = JsonPlan(fields)
        for line in stream:
            if line.strip():
                yield plan.record(orjson.loads(line.lstrip(b"\xef\xbb\xbf") if line[:1] == b"\xef" else line))
    elif first == b"[":
        plan = JsonPlan(fields)
        for item in _json_array_items(io.TextIOWrapper(stream, encoding="utf-8-sig")):
            yield plan.record(item)
    elif first:
        reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
        header = next(reader, None)
        if header:
            row_plan = CsvPlan(header, fields)
            record = row_plan.record
            for row in reader:
                if row:
                    yield record(row)


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
    """Items of a top-level JSON array read chunk by chunk: only one chunk and one item are held at once."""
    decoder = json.JSONDecoder()
    buffer, position, at_end = "", 0, False
    started = False
    while True:
        while position < len(buffer) and buffer[position] in " \t\r\n,[]\ufeff":
            if buffer[position] == "[":
                started = True
            position += 1
        if position < len(buffer):
            try:
                item, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                if at_end:
                    raise
            else:
                if started:
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


class _SyncExport:
    """The ready unfiltered export of one sync. Its lock makes streams read concurrently wait for the one
    that is creating the export instead of starting their own. Shared with worker processes, the lock is
    theirs too and the export is kept in shared memory, so one job serves the whole sync there as well."""

    def __init__(self, owner: Any):
        self.owner = weakref.ref(owner)
        self.lock: Any = threading.Lock()
        self._export: Optional[ReadyExport] = None
        self._shared: Optional[Any] = None  # a ctypes char array: 8 bytes of length, then the export as JSON

    def share_with_processes(self, context: Any) -> None:
        self.lock = context.Lock()
        self._shared = sharedctypes.RawArray(ctypes.c_char, SHARED_EXPORT_BYTES)  # pages are touched only when used

    @property
    def export(self) -> Optional[ReadyExport]:
        if self._shared is None:
            return self._export
        size = int.from_bytes(self._shared[:8], "little")
        if not size:
            return self._export
        found = orjson.loads(self._shared[8:8 + size])
        return ReadyExport(id=found["id"], urls=tuple(found["urls"]))

    @export.setter
    def export(self, export: Optional[ReadyExport]) -> None:
        self._export = export
        if self._shared is None:
            return
        body = orjson.dumps({"id": export.id, "urls": export.urls}) if export is not None else b""
        if len(body) + 8 > len(self._shared):
            body = b""  # too many files to share: this process keeps it, others make their own
        self._shared[:8] = len(body).to_bytes(8, "little")
        self._shared[8:8 + len(body)] = body


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
    _newest: Optional[str] = None  # the newest `updated_at` seen in this read

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
        cursor = parse_time((self.state or {}).get(self.cursor_field))
        threshold = format_time(cursor - self._config.lookback) if cursor and sync_mode == SyncMode.incremental else None
        newest = format_time(cursor) if cursor else None
        self._fields = self._field_types()
        if self._skipped:
            return
        searched = self._changed_after(threshold) if self.filters_by_cursor and threshold is not None else None
        if searched is not None:
            self.logger.info(f"Stream {self.name}: the contact search found every contact updated after {threshold} "
                             f"({len(searched)}); no export needed.")
        self._newest = newest
        yield from self.in_pages(self._records_after(threshold, self._contacts() if searched is None else searched))
        if self._skipped:
            return
        # Only now: every file of the export was read.
        if self._newest is not None:
            self.state = {self.cursor_field: self._newest}

    def _records_after(self, threshold: Optional[str], contacts: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """This stream's records of the contacts updated after `threshold`; notes the newest update in _newest."""
        for contact in contacts:
            updated = contact.get("updated_at")
            if updated is not None and (self._newest is None or updated > self._newest):
                self._newest = updated
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
            try:
                for url in export.urls:
                    yield from self._download(url, self._fields)
                return
            except DeadLink as dead:
                with shared.lock:
                    if shared.export == export:
                        shared.export = None
                if self._export_attempts >= MAX_EXPORT_ATTEMPTS:
                    raise _failure(f"the download links of contacts export {export.id} stopped working ({dead}) "
                                   f"after {self._export_attempts} exports") from None
                self.logger.warning(f"Stream {self.name}: a download link of export {export.id} no longer works "
                                    f"({dead}); creating a new export. Contacts already read may be emitted again.")

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
                return ReadyExport(id=job_id, urls=tuple(job.get("urls") or ()))
            if status in FAILED_STATUSES:
                raise ExportFailed(f"contacts export {job_id} ended with status {status!r}: {job.get('message') or 'no message'}")
            if waited >= POLL_TOTAL_WAIT:
                raise _failure(f"contacts export {job_id} was still {status!r} after {int(waited)} seconds")
            wait = min(POLL_MAX_WAIT, wait * 1.5)

    def _api(self, method: str, path: str, json: Optional[Mapping[str, Any]] = None) -> requests.Response:
        headers = {**self.request_headers(), **({"Content-Type": "application/json"} if json is not None else {})}
        _, response = self._http_client.send_request(method, f"{self.url_base}{path}", headers=headers, json=json,
                                                     request_kwargs=self.request_kwargs())
        return response

    def _download(self, url: str, fields: FieldTypes) -> Iterator[Dict[str, Any]]:
        """The contacts of one file. The link is pre-signed: our API key must not go with it. A download cut
        short is retried, skipping the contacts already emitted (the file does not change)."""
        emitted = 0
        for retry in range(MAX_DOWNLOAD_RETRIES + 1):
            try:
                with _download_session().get(url, stream=True, timeout=DOWNLOAD_TIMEOUT) as response:
                    if response.status_code in _DEAD_LINK:
                        raise DeadLink(f"HTTP {response.status_code}")
                    if response.status_code >= 400:
                        raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
                    response.raw.decode_content = True
                    skip = emitted
                    for contact in parse_export(response.raw, fields):
                        if skip:
                            skip -= 1
                            continue
                        emitted += 1
                        yield contact
                return
            except (requests.RequestException, urllib3.exceptions.HTTPError, EOFError, OSError, csv.Error, ValueError,
                    IndexError) as error:  # IndexError: a CSV row shorter than its header
                if retry == MAX_DOWNLOAD_RETRIES:
                    raise _failure(f"the contacts export file could not be downloaded ({type(error).__name__})") from None
                self.logger.warning(f"Stream {self.name}: the export download broke off ({type(error).__name__}); "
                                    f"retrying from contact {emitted}.")
                time.sleep(min(30.0, 2.0 ** retry))


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

