"""Contacts, read from one contacts export job: the stream classes, with the job, the download and the file
parsing in `source_sendgrid/contacts/`.

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

from abc import ABC, abstractmethod
from typing import Any, Dict, Generator, Iterable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.core import CheckpointMixin, StreamData
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction

from .. import cdk_seam
from ..base import SendgridStream
from ..contacts.download import DeadLink, download
from ..contacts.export_job import (EXPORT_PATH, MAX_EXPORT_ATTEMPTS, ExportFailed, ReadyExport, _sync_export_of,
                                   failure, start_and_wait)
from ..contacts.parse import FieldTypes, JsonPlan
from ..errors import SendgridErrorHandler, response_body
from ..windows import ChangedSince, utc_now

SEARCH_PATH = "/v3/marketing/contacts/search"
COUNT_PATH = "/v3/marketing/contacts/count"
PROBE_PATHS = (SEARCH_PATH, COUNT_PATH)
FIELD_DEFINITIONS_PATH = "/v3/marketing/field_definitions"


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
        since = ChangedSince(cursor, self._config.lookback, now)
        threshold = since.threshold
        fields = self._field_types()
        if self._skipped:
            return
        searched = self._changed_after(threshold, fields) if self.filters_by_cursor and threshold is not None else None
        if searched is not None:
            self.logger.info(f"Stream {self.name}: the contact search found every contact updated after {threshold} "
                             f"({len(searched)}); no export needed.")
        yield from self.in_pages(self._records_after(since, self._contacts(fields) if searched is None else searched))
        if self._skipped:
            return
        self._warn_of_future_records(since)
        # Only now: every file of the export was read.
        if since.newest.value is not None:
            self.state = {self.cursor_field: since.newest.value}

    def _records_after(self, since: ChangedSince, contacts: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """This stream's records of the contacts updated after `since.threshold`; each update is shown to `since`."""
        for contact in contacts:
            changed = since.is_changed(contact.get("updated_at"))
            if self.filters_by_cursor and not changed:
                continue
            yield from self.records_of_contact(contact)

    def _contacts(self, fields: FieldTypes) -> Iterator[Dict[str, Any]]:
        """The contacts of the sync's shared export, made ready first if no stream has done it yet; `fields`
        types their custom fields."""
        attempts = 0  # exports this stream started
        shared = _sync_export_of(self._stats)
        while True:
            with shared.lock:
                if shared.export is None:
                    shared.export, attempts = self._create_ready_export(attempts)
                export = shared.export
            if export is None:
                return
            problem = yield from self._contacts_of(export, fields)
            if problem is None:
                return
            with shared.lock:
                if shared.export == export:
                    shared.export = None
            if attempts >= MAX_EXPORT_ATTEMPTS:
                raise failure(f"contacts export {export.id} could not be read whole after {attempts} "
                              f"exports: {problem}. Run the sync again later; if it keeps failing, tell SendGrid "
                              f"support about export {export.id}")
            self.logger.warning(f"Stream {self.name}: {problem} (export {export.id}); creating a new export. "
                                f"Contacts already read may be emitted again.")

    def _contacts_of(self, export: ReadyExport, fields: FieldTypes) -> Generator[Dict[str, Any], None, Optional[str]]:
        """The contacts of every file of `export`; returns what makes the export unusable (a dead link, fewer
        contacts than the job counted), or None once all of them were read."""
        rows = 0
        try:
            for number, url in enumerate(export.urls, 1):
                rows += yield from download(url, fields, export, number, self._config.base_url, self.logger, self.name)
        except DeadLink as dead:
            return f"a download link no longer works ({dead})"
        if export.contact_count is not None and rows < export.contact_count:
            return f"its files hold {rows} of the {export.contact_count} contacts it counts"
        return None

    def _changed_after(self, threshold: str, fields: FieldTypes) -> Optional[List[Dict[str, Any]]]:
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
        plan = JsonPlan(fields)
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

    def _create_ready_export(self, attempts: int) -> Tuple[Optional[ReadyExport], int]:
        """Start an export and wait for it; a job that fails is started again, until this stream has started
        MAX_EXPORT_ATTEMPTS (`attempts` of them before this call). Returns the export and the attempts so far."""
        while True:
            attempts += 1
            try:
                return start_and_wait(self._api, self._note_unreadable), attempts
            except ExportFailed as failed:
                if attempts >= MAX_EXPORT_ATTEMPTS:
                    raise failure(f"SendGrid failed the contacts export {attempts} times; last: {failed}") from None
                self.logger.warning(f"Stream {self.name}: {failed}; starting a new export.")

    def _api(self, method: str, path: str, json: Optional[Mapping[str, Any]] = None) -> requests.Response:
        headers = {**self.request_headers(), **({"Content-Type": "application/json"} if json is not None else {})}
        _, response = cdk_seam.http_client(self).send_request(method, f"{self.url_base}{path}", headers=headers, json=json,
                                                              request_kwargs=self.request_kwargs())
        return response


class Contacts(ContactsExportStream):
    """Every contact, with reserved fields as typed columns and `custom_fields` keyed by the field's name
    (numbers as numbers, dates as date-times). Incremental syncs emit contacts updated since the state."""

    def records_of_contact(self, contact: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        return (contact,)

