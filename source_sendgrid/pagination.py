"""One small pager per pagination style of the SendGrid v3 spec (docs/endpoints.md#pagination-styles).

A pager is stateless: it names the query parameters of the first page and, given the response of a page,
the parameters of the next one (None at the end). The base stream puts every next page past a
PageLoopGuard, so every style gets the same protection against a repeated token or an endless run of
empty pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

Params = Mapping[str, Any]

# A run of empty pages this long means the server is not moving forward.
MAX_EMPTY_PAGES_IN_A_ROW = 100


def sent_params(response: requests.Response) -> dict:
    """The query parameters the request of this response carried (last value wins)."""
    query = parse_qs(urlsplit(response.request.url).query, keep_blank_values=True)
    return {key: values[-1] for key, values in query.items()}


class Pager:
    ends_on_not_found = False

    def first_page(self) -> Params:
        return {}

    def next_page(self, response: requests.Response, body: Any, records: List[Any]) -> Optional[Params]:
        return None


class SinglePage(Pager):
    """Style G: one response holds everything."""


@dataclass(frozen=True)
class OffsetPager(Pager):
    """Styles A and B: `limit` + `offset`, no total; a short page is the last one. Where SendGrid documents
    no largest page, `ends_on_short_page=False`: only an empty page ends, so a server that sends fewer than
    asked loses nothing (one request more per read)."""

    limit: int = 500
    ends_on_short_page: bool = True

    def first_page(self) -> Params:
        return {"limit": self.limit, "offset": 0}

    def next_page(self, response: requests.Response, body: Any, records: List[Any]) -> Optional[Params]:
        if not records or (self.ends_on_short_page and len(records) < self.limit):
            return None
        return {"limit": self.limit, "offset": int(sent_params(response).get("offset", 0)) + len(records)}


@dataclass(frozen=True)
class NewestFirstTimePager(Pager):
    """Style A lists served newest first inside an inclusive time window (the suppression lists).

    A bare offset shifts when records already read are deleted between pages, and then an unread record is
    skipped. So each next page is anchored on time: `end_param` becomes the oldest `time_field` read so far and
    the offset skips only the records of that very second already read. A page that is not newest first falls
    back to plain offsets (the old behaviour), so a server that orders differently loses nothing either.
    """

    limit: int = 500
    time_field: str = "created"
    end_param: str = "end_time"

    def first_page(self) -> Params:
        return {"limit": self.limit, "offset": 0}

    def next_page(self, response: requests.Response, body: Any, records: List[Any]) -> Optional[Params]:
        if len(records) < self.limit:
            return None
        sent = sent_params(response)
        offset = int(sent.get("offset", 0))
        times = [_epoch(r.get(self.time_field)) if type(r) is dict else None for r in records]
        newest_first = all(t is not None for t in times) and all(a >= b for a, b in zip(times, times[1:]))
        sent_end = _epoch(sent.get(self.end_param))
        if not newest_first or sent_end is None or times[0] > sent_end:
            anchored = {self.end_param: sent[self.end_param]} if self.end_param in sent else {}
            return {"limit": self.limit, "offset": offset + len(records), **anchored}
        oldest = times[-1]
        if oldest == sent_end:  # the whole page was one second: keep counting within it
            return {"limit": self.limit, "offset": offset + len(records), self.end_param: oldest}
        return {"limit": self.limit, "offset": sum(1 for t in times if t == oldest), self.end_param: oldest}


def _epoch(value: Any) -> Optional[int]:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


@dataclass(frozen=True)
class PageTokenPager(Pager):
    """Style C: `page_size` + `page_token`, the next page's URL in `_metadata.next`.

    Only the token is taken from that URL: the request goes to our configured base URL, so a proxy or
    the region's host is never bypassed by an absolute link.
    """

    page_size: int = 100

    def first_page(self) -> Params:
        return {"page_size": self.page_size}

    def next_page(self, response: requests.Response, body: Any, records: List[Any]) -> Optional[Params]:
        metadata = body.get("_metadata") if isinstance(body, Mapping) else None
        next_url = metadata.get("next") if isinstance(metadata, Mapping) else None
        if not next_url:
            return None
        query = parse_qs(urlsplit(str(next_url)).query)
        token = (query.get("page_token") or [None])[-1]
        if not token:
            return None
        return {"page_size": self.page_size, "page_token": token}


@dataclass(frozen=True)
class PageNumberPager(Pager):
    """Style D (legacy contactdb): 1-based `page`; pages may be empty before the end, a 404 ends it."""

    page_size: int = 1000
    ends_on_not_found = True

    def first_page(self) -> Params:
        return {"page": 1, "page_size": self.page_size}

    def next_page(self, response: requests.Response, body: Any, records: List[Any]) -> Optional[Params]:
        if response.status_code == 404:
            return None
        return {"page": int(sent_params(response).get("page", 1)) + 1, "page_size": self.page_size}


@dataclass(frozen=True)
class KeysetPager(Pager):
    """Styles E and F: the next page starts after a key the response names.

    `next_key` reads that key from the response: E names it in `_metadata.next_params.after_key`,
    F (verified senders) is keyed by the last record's id.
    """

    limit: int = 100
    key_param: str = "after_key"
    key_from_last_record: Optional[str] = None

    def first_page(self) -> Params:
        return {"limit": self.limit}

    def next_page(self, response: requests.Response, body: Any, records: List[Any]) -> Optional[Params]:
        if self.key_from_last_record:
            if len(records) < self.limit:
                return None
            key = records[-1].get(self.key_from_last_record)
        else:
            metadata = body.get("_metadata") if isinstance(body, Mapping) else None
            next_params = metadata.get("next_params") if isinstance(metadata, Mapping) else None
            key = next_params.get("after_key") if isinstance(next_params, Mapping) else None
        if key in (None, ""):
            return None
        return {"limit": self.limit, self.key_param: key}


class PageLoopGuard:
    """The pages of one slice as they are read, to stop a server that would send the reader round in circles:
    back to a page already read, the same page again under a new token, or empty pages without end."""

    def __init__(self, stream_name: str):
        self._stream_name = stream_name
        self._seen_tokens: Set[Tuple[Tuple[str, str], ...]] = set()
        self._last_fingerprint: Optional[tuple] = None
        self._empty_in_a_row = 0

    def check(self, token: Params, records: List[Any]) -> None:
        """Raises unless `token`, the next page after the page of `records`, moves the read forward."""
        name = self._stream_name
        key = tuple(sorted((k, str(v)) for k, v in token.items()))
        if key in self._seen_tokens:
            raise AirbyteTracedException(
                message=f"SendGrid sent stream {name} back to a page it had already read; stopping instead of looping.",
                internal_message=f"{name}: repeated page token {dict(token)}",
                failure_type=FailureType.system_error,
            )
        self._seen_tokens.add(key)
        # A server that ignores the page parameter sends the same page again under a new token.
        fingerprint = (len(records), repr(records[0]), repr(records[-1])) if records else None
        if fingerprint is not None and fingerprint == self._last_fingerprint:
            raise AirbyteTracedException(
                message=f"SendGrid sent stream {name} the same page twice in a row; stopping instead of looping.",
                internal_message=f"{name}: page repeated before token {dict(token)}",
                failure_type=FailureType.system_error,
            )
        self._last_fingerprint = fingerprint
        self._empty_in_a_row = 0 if records else self._empty_in_a_row + 1
        if self._empty_in_a_row > MAX_EMPTY_PAGES_IN_A_ROW:
            raise AirbyteTracedException(
                message=f"SendGrid sent {MAX_EMPTY_PAGES_IN_A_ROW} empty pages in a row for stream {name}; stopping.",
                failure_type=FailureType.system_error,
            )
