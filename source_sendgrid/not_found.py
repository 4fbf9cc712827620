"""What a 404 means: "nothing here" for the requests a stream's `is_harmless_not_found` accepts, an error
for every other.

A single send's detail answers 404 when the send was deleted after the list named it, and a legacy
recipient page past the last one answers 404: both are harmless. The same 404 on the list itself (its
first page) means something is wrong, and reading it as an empty stream would end the sync with
exit 0 and no records. So a stream states which of its requests may answer 404 harmlessly
(SendgridStream.is_harmless_not_found), and every other 404 fails the stream with SendGrid's message, as
errors.py reads any unexpected status.
"""

from __future__ import annotations

from typing import Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

import requests
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution


class NotFoundOnlyFor(ErrorHandler):
    """Reads a 404 with `lenient` (404: no records) when `harmless(request)` says so, and everything else
    with `strict` (404: the stream fails). Both are the stream's own error handler, so retries, waits and
    the request counts stay the same."""

    def __init__(self, harmless: Callable[[requests.PreparedRequest], bool], lenient: ErrorHandler, strict: ErrorHandler):
        self._harmless = harmless
        self._lenient = lenient
        self._strict = strict

    @property
    def max_retries(self) -> Optional[int]:
        return self._strict.max_retries

    @property
    def max_time(self) -> Optional[int]:
        return self._strict.max_time

    def interpret_response(self, response: Optional[Union[requests.Response, Exception]]) -> ErrorResolution:
        if isinstance(response, requests.Response) and response.status_code == 404 and self._harmless(response.request):
            return self._lenient.interpret_response(response)
        return self._strict.interpret_response(response)


def request_path(request: requests.PreparedRequest) -> str:
    return urlsplit(request.url or "").path.rstrip("/")


def request_page(request: requests.PreparedRequest) -> int:
    """The 1-based `page` a page-numbered request asked for (1 when it names none or an unreadable one)."""
    values = parse_qs(urlsplit(request.url or "").query).get("page") or ["1"]
    try:
        return int(values[-1])
    except ValueError:
        return 1
