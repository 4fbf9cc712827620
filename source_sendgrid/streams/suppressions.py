"""Suppressions: the five global suppression lists, unsubscribe groups and their members.

SendGrid keeps a suppression until someone deletes it, and deletions leave no trace in the API: an
incremental sync adds new suppressions; only a full refresh shows which were removed.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..base import SendgridStream
from ..incremental import ClientFilteredStream, WindowedStream
from ..pagination import NewestFirstTimePager
from ..windows import normalize_time


class SuppressionList(WindowedStream):
    """A `/v3/suppression/*` list: offset pages of 500, filtered by `start_time`/`end_time` on `created`."""

    primary_key = "email"
    cursor_field = "created"
    # Anchored on `created` between pages, so deleting records already read never skips an unread one.
    pager = NewestFirstTimePager(limit=500)
    grow_empty_windows = True  # years without suppressions cost a few requests

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**record, "created": normalize_time(record.get("created"))}


class Bounces(SuppressionList):
    path_template = "/v3/suppression/bounces"
    required_scopes = ("suppression.bounces.read",)


class Blocks(SuppressionList):
    path_template = "/v3/suppression/blocks"
    required_scopes = ("suppression.blocks.read",)


class SpamReports(SuppressionList):
    path_template = "/v3/suppression/spam_reports"
    required_scopes = ("suppression.spam_reports.read",)


class InvalidEmails(SuppressionList):
    path_template = "/v3/suppression/invalid_emails"
    required_scopes = ("suppression.invalid_emails.read",)


class GlobalSuppressions(SuppressionList):
    """Addresses unsubscribed from everything (`/v3/suppression/unsubscribes`)."""

    path_template = "/v3/suppression/unsubscribes"
    required_scopes = ("suppression.unsubscribes.read",)


class SuppressionGroups(SendgridStream):
    """Unsubscribe groups; `unsubscribes` is the group's member count."""

    path_template = "/v3/asm/groups"
    required_scopes = ("asm.groups.read",)


class SuppressionGroupMembers(ClientFilteredStream):
    """Every (group, address) pair, from `/v3/asm/suppressions`: one call returns all groups' members with
    the time each joined, so incremental syncs see every new member whatever the groups' counts do.
    A member who left is dropped only by a full refresh. The answer is not paged, so it is read as it arrives
    (memory stays flat however many members there are)."""

    path_template = "/v3/asm/suppressions"
    streams_its_answer = True
    primary_key = ["group_id", "email"]
    cursor_field = "created_at"
    required_scopes = ("asm.groups.suppressions.read",)

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**record, "created_at": normalize_time(record.get("created_at"))}
