"""List and segment memberships: one record per (list, contact) and per (segment, contact).

The unfiltered contacts export SendGrid writes has no list or segment column (its file holds the reserved
fields, the custom fields and CONTACT_ID), and the only exact reads of membership that scale are the
export and `POST /v3/marketing/contacts/batch`, whose contact objects always carry `list_ids` and
`segment_ids` (at most 100 ids a request). So the contact ids come from the sync's one shared export, and
their lists and segments from the batch read: about contacts/100 requests for every list and segment at
once, where an export per list would be one job (minutes each) per list. An export that does carry the
membership column is read as it is, with no batch request.

Both streams are full refresh: SendGrid keeps no time for joining or leaving a list or segment, and
nothing shows that a contact's `updated_at` moves when it does, so every sync emits the whole membership.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..contacts.parse import FieldTypes, _time
from ..errors import SendgridErrorHandler, api_error_message, response_body
from .contacts_export import ContactsExportStream

BATCH_PATH = "/v3/marketing/contacts/batch"
# The endpoint's limit (`maxItems` of `ids`).
BATCH_SIZE = 100


class _BatchErrorHandler(SendgridErrorHandler):
    """A 404 from the batch read means none of its ids is a contact any more (deleted since the export)."""

    def _resolve(self, response: Any) -> ErrorResolution:
        if isinstance(response, requests.Response) and response.status_code == 404 \
                and response.request.url.split("?", 1)[0].endswith(BATCH_PATH):
            return ErrorResolution(ResponseAction.IGNORE, None, f"Stream {self._stream_name}: none of a batch of "
                                   "contacts exists any more.")
        return super()._resolve(response)


class MembershipStream(ContactsExportStream):
    """One record per (parent, contact) pair: the contacts of the sync's export with their `membership_field`,
    from the export's own column when it has one, else from the batch read."""

    membership_field = ""
    parent_key = ""
    cursor_field: List[str] = []  # full refresh only: see the module docstring
    error_handler_class = _BatchErrorHandler

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        if not self.is_readable():
            return
        fields = self._field_types()
        if self._skipped:
            return
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            yield from self.in_pages(self._members_in_export(spool, fields))
            yield from self.in_pages(self._members_by_batch(spool))

    def records_of_contact(self, contact: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        return [{self.parent_key: parent_id, "contact_id": contact.get("id"), "email": contact.get("email"),
                 "contact_updated_at": contact.get("updated_at")} for parent_id in contact[self.membership_field]]

    def _members_in_export(self, spool: IO[str], fields: FieldTypes) -> Iterator[Mapping[str, Any]]:
        """The records of exported contacts that carry the membership column; the ids of the others go to
        `spool`, one a line. The export is read at download speed, not held open while the batch reads run
        (tens of minutes at SendGrid's rate for a large account, longer than a download link may live)."""
        for contact in self._contacts(fields):
            if self.membership_field in contact:
                yield from self.records_of_contact(contact)
            elif contact.get("id"):
                spool.write(f"{contact['id']}\n")
            else:
                raise _failure(f"the contacts export has neither a {self.membership_field} column nor contact ids, "
                               f"so stream {self.name} cannot tell who is a member")

    def _members_by_batch(self, spool: IO[str]) -> Iterator[Mapping[str, Any]]:
        """The records of the spooled contact ids, read back 100 at a time through the batch endpoint. A
        contact deleted since the export is not returned: it is skipped and counted."""
        asked = found = requests_sent = 0
        for ids in _batches_of(spool):
            members = self._read_batch(ids)
            asked, found, requests_sent = asked + len(ids), found + len(members), requests_sent + 1
            for contact in members:
                yield from self.records_of_contact(contact)
        if not asked:
            return
        if not found:
            raise _failure(f"SendGrid's contacts batch read found none of the {asked} contacts the export listed, "
                           f"so stream {self.name} would be empty; run the sync again")
        self.logger.info(f"Stream {self.name}: read the {self.membership_field} of {found} contacts in "
                         f"{requests_sent} batch requests.")
        if asked > found:
            self.logger.warning(f"Stream {self.name}: {asked - found} of the {asked} exported contacts were deleted "
                                "before their memberships were read; they are left out.")

    def _read_batch(self, ids: List[str]) -> List[Dict[str, Any]]:
        """The contacts of `ids` that still exist, in the order asked, each with id, email, updated_at and
        the membership field."""
        response = self._api("POST", BATCH_PATH, json={"ids": ids})
        if response.status_code == 404:
            return []
        if response.status_code >= 400:
            raise _failure(f"SendGrid answered {response.status_code} to the contacts batch read of stream {self.name} "
                           f"({api_error_message(response)!r}); check that the API key has the marketing.read scope, "
                           "then run the sync again")
        body = response_body(response)
        result = body.get("result") if isinstance(body, Mapping) else None
        if not isinstance(result, list) or not all(isinstance(contact, Mapping) for contact in result):
            raise _failure(f"SendGrid's answer to the contacts batch read of stream {self.name} holds no list of contacts")
        by_id = {contact.get("id"): contact for contact in result}
        members = []
        for contact_id in ids:
            contact = by_id.get(contact_id)
            if contact is None:
                continue
            parents = contact.get(self.membership_field)
            if not isinstance(parents, list):
                raise _failure(f"SendGrid's contacts batch read sent contact {contact_id} without its "
                               f"{self.membership_field}, so stream {self.name} cannot tell its memberships")
            members.append({"id": contact_id, "email": contact.get("email"), "updated_at": _time(contact.get("updated_at")),
                            self.membership_field: parents})
        return members


def _batches_of(spool: IO[str]) -> Iterator[List[str]]:
    """The ids written to `spool`, BATCH_SIZE at a time."""
    spool.seek(0)
    ids: List[str] = []
    for line in spool:
        ids.append(line.rstrip("\n"))
        if len(ids) == BATCH_SIZE:
            yield ids
            ids = []
    if ids:
        yield ids


def _failure(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=f"List and segment members: {message}.", failure_type=FailureType.system_error)


class ListMembers(MembershipStream):
    membership_field = "list_ids"
    parent_key = "list_id"
    primary_key = ["list_id", "contact_id"]


class SegmentMembers(MembershipStream):
    membership_field = "segment_ids"
    parent_key = "segment_id"
    primary_key = ["segment_id", "contact_id"]
