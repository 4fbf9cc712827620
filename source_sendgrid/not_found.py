"""Reading a request for what its 404 means: "nothing here" for the requests a stream's
`is_harmless_not_found` accepts (errors.SendgridErrorHandler asks it), an error for every other.

A single send's detail answers 404 when the send was deleted after the list named it, and a legacy
recipient page past the last one answers 404: both are harmless. The same 404 on the list itself (its
first page) means something is wrong, and reading it as an empty stream would end the sync with
exit 0 and no records. So a stream states which of its requests may answer 404 harmlessly
(SendgridStream.is_harmless_not_found), and every other 404 fails the stream with SendGrid's message, as
errors.py reads any unexpected status.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests


def request_path(request: requests.PreparedRequest) -> str:
    return urlsplit(request.url or "").path.rstrip("/")


def request_page(request: requests.PreparedRequest) -> int:
    """The 1-based `page` a page-numbered request asked for (1 when it names none or an unreadable one)."""
    values = parse_qs(urlsplit(request.url or "").query).get("page") or ["1"]
    try:
        return int(values[-1])
    except ValueError:
        return 1
