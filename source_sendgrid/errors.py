"""What each SendGrid response means, how long to wait before a retry, and how errors read.

This is the only module that decides what a status code means. Everything it returns goes through the
CDK's HttpClient, which does the retrying.
"""

from __future__ import annotations

import json
import logging
import random
import re
from typing import Any, Callable, Optional, Tuple, Union
from urllib.parse import urlsplit

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .budget import MAX_RATE_LIMIT_WAIT, RequestStats, endpoint_of, log_long_wait, seconds_until_reset

MAX_RETRIES = 8
MAX_RETRY_SECONDS = 900

logger = logging.getLogger("airbyte")
_SURROGATE = re.compile("[\ud800-\udfff]")

_BODY_ATTR = "_sendgrid_body"


def response_body(response: requests.Response) -> Any:
    """The parsed JSON body; parsed once, when the error handler checked it."""
    if not hasattr(response, _BODY_ATTR):
        try:
            body = parse_json(response.content)[0] if response.content else None
        except TooDeepJson:
            raise AirbyteTracedException(
                message=f"SendGrid answered {urlsplit(response.url or '').path or 'a request'} with JSON nested deeper "
                        "than this connector can read; asking again would bring the same answer, so the stream stops here.",
                failure_type=FailureType.system_error,
            ) from None
        setattr(response, _BODY_ATTR, body)
    return getattr(response, _BODY_ATTR)


def parse_json(content: bytes) -> Tuple[Any, int]:
    """A JSON document and how many characters in it had to be replaced with U+FFFD.

    orjson refuses two things that are still well-formed JSON text: a `\\u` escape of a lone UTF-16
    surrogate (RFC 8259's grammar allows it; no UTF-8 output can carry it) and bytes that are not UTF-8
    inside a string. Such a body is parsed again by the standard library and those characters replaced,
    so the page's records are kept. Raises orjson.JSONDecodeError for a body that is not JSON at all
    (truncated, HTML), and TooDeepJson for one nested deeper than any parser here can follow.
    """
    try:
        return orjson.loads(content), 0
    except orjson.JSONDecodeError as first_error:
        try:
            text = content.decode("utf-8", errors="replace")
            body = json.loads(text, parse_constant=_not_json)  # NaN and Infinity are not JSON either
            replaced = [text.count("\ufffd") - content.count("\ufffd".encode())]
            return _without_lone_surrogates(body, replaced), replaced[0]
        except RecursionError:
            raise TooDeepJson(str(first_error)) from None
        except ValueError:
            raise first_error from None


class TooDeepJson(ValueError):
    """Well-formed JSON nested too deeply to parse: the same page comes back the same, so it is not retried."""


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _without_lone_surrogates(value: Any, replaced: list) -> Any:
    # json.loads joins a valid surrogate pair into one character: any surrogate left is a lone one.
    if isinstance(value, str):
        fixed, count = _SURROGATE.subn("\ufffd", value)
        replaced[0] += count
        return fixed
    if isinstance(value, list):
        return [_without_lone_surrogates(item, replaced) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k, replaced): _without_lone_surrogates(v, replaced) for k, v in value.items()}
    return value


def api_error_message(response: requests.Response) -> str:
    """SendGrid's own words from an error body (`{"errors": [{"message": ...}]}` and variants)."""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return (response.text or "")[:200].strip() or response.reason or ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            messages = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
            if messages:
                return "; ".join(messages)
        if body.get("message"):
            return str(body["message"])
    return response.reason or ""


def is_missing_scope(response: requests.Response) -> bool:
    """On a stream's endpoint (never on /v3/scopes, see KeyCheckErrorHandler): 403, or the 401
    "authorization required" some endpoints answer for a key without the scope."""
    if response.status_code == 403:
        return True
    return response.status_code == 401 and "authorization required" in api_error_message(response).lower()


def refused_key_message(response: requests.Response) -> str:
    """What to do about a key SendGrid refused: a 401 (other than a stream endpoint's "authorization required"
    for a missing scope), or a 403 on /v3/scopes."""
    said = api_error_message(response)
    if response.status_code == 401:
        return ("SendGrid rejected the API key (401 Unauthorized). Check that the key is complete and active "
                "(SendGrid → Settings → API Keys; paste the key alone, without quotes or 'Bearer ') and that it "
                f"belongs to an account of this `region`. SendGrid said: {said!r}")
    return ("SendGrid refused the API key (403 Forbidden) even for listing its own scopes, which every accepted "
            "key may do. Check that `subuser` is a subuser of the key's account (or leave it empty) and, if the "
            "account uses IP Access Management, that this machine's IP address is allowed. "
            f"SendGrid said: {said!r}")


class SendgridBackoff(BackoffStrategy):
    """429: wait until the window resets (bounded); anything else: bounded exponential backoff with jitter."""

    def __init__(self, base_seconds: float = 0.5, max_seconds: float = 60.0):
        self._base = base_seconds
        self._max = max_seconds

    def backoff_time(
        self,
        response_or_exception: Optional[Union[requests.Response, requests.RequestException]],
        attempt_count: int,
    ) -> Optional[float]:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 429:
            wait = seconds_until_reset(response_or_exception)
            if wait is not None:
                # The CDK adds one second to every wait, which also absorbs clock skew.
                wait = min(wait, MAX_RATE_LIMIT_WAIT) + random.uniform(0.01, 0.1)
                endpoint = endpoint_of(getattr(response_or_exception.request, "method", None), response_or_exception.url)
                log_long_wait(wait, f"SendGrid's rate-limit window to reset for {endpoint} (answered 429)")
                return wait
        exponential = min(self._max, self._base * 2 ** max(0, attempt_count - 1)) * random.uniform(0.8, 1.2)
        log_long_wait(exponential, f"SendGrid before retry {attempt_count} of a failed request")
        return exponential


class SendgridErrorHandler(ErrorHandler):
    """Maps a response (or a failed connection) to retry, skip, end-of-pages or a clear failure."""

    def __init__(self, stream_name: str, harmless_not_found: Callable[[requests.PreparedRequest], bool],
                 stats: RequestStats, expects_json: bool = True):
        self._stream_name = stream_name
        # Which requests may answer 404 for "no records here" (the stream's is_harmless_not_found).
        self._harmless_not_found = harmless_not_found
        self._stats = stats
        # False for an answer read as it arrives: its body is checked while it is read, not here.
        self._expects_json = expects_json

    @property
    def max_retries(self) -> Optional[int]:
        return MAX_RETRIES

    @property
    def max_time(self) -> Optional[int]:
        return MAX_RETRY_SECONDS

    def interpret_response(self, response: Optional[Union[requests.Response, Exception]]) -> ErrorResolution:
        resolution = self._resolve(response)
        self._stats.count(resolution.response_action)
        return resolution

    def _resolve(self, response: Optional[Union[requests.Response, Exception]]) -> ErrorResolution:
        if not isinstance(response, requests.Response):
            return _retry(f"Connection to SendGrid failed ({type(response).__name__}); retrying.")
        status = response.status_code
        if 200 <= status < 300:
            return self._check_body(response)
        if status == 429:
            return ErrorResolution(ResponseAction.RATE_LIMITED, FailureType.transient_error,
                                   "SendGrid rate limit reached (429); waiting for the window to reset.")
        if is_missing_scope(response):
            # The stream reads the response, warns which scope is missing and ends without records.
            return ErrorResolution(ResponseAction.IGNORE, None, f"Stream {self._stream_name}: access denied ({status}).")
        if status == 401:
            return _fail(FailureType.config_error, refused_key_message(response))
        if status == 404 and self._harmless_not_found(response.request):
            return ErrorResolution(ResponseAction.IGNORE, None, f"Stream {self._stream_name}: 404, no more pages.")
        if status == 408 or status >= 500:
            return _retry(f"SendGrid answered {status} on stream {self._stream_name}; retrying.")
        return _fail(FailureType.system_error,
                     f"SendGrid answered {status} to a request of stream {self._stream_name}: "
                     f"{api_error_message(response)!r}.")

    def _check_body(self, response: requests.Response) -> ErrorResolution:
        if not self._expects_json or response.status_code == 204:
            return ErrorResolution(ResponseAction.SUCCESS)
        try:
            body, replaced = parse_json(response.content) if response.content else (None, 0)
        except TooDeepJson:
            # Not retried: the same page would come back. The stream fails when it reads the body (a FAIL here
            # would have the CDK parse the body again for its log, which raises).
            return ErrorResolution(ResponseAction.SUCCESS)
        except orjson.JSONDecodeError:
            # A truncated body, or an HTML page from a proxy with a 200: never records.
            return _retry(f"SendGrid sent an unreadable (truncated or non-JSON) body on stream {self._stream_name}; retrying.")
        if body is None:
            # Every answer we ask for is a JSON object or list, an empty one included: an empty or `null` body
            # is a broken answer, and reading it as "no records" would end the pages and lose the rest.
            return _retry(f"SendGrid sent an empty (or null) body with status {response.status_code} on stream "
                          f"{self._stream_name}, where a page was expected; retrying.")
        if replaced:
            logger.warning(f"Stream {self._stream_name}: SendGrid sent a page with {replaced} character(s) that are not "
                           "valid Unicode (lone UTF-16 surrogate escapes or bytes that are not UTF-8); each was replaced "
                           "with U+FFFD and the records kept.")
        setattr(response, _BODY_ATTR, body)
        return ErrorResolution(ResponseAction.SUCCESS)


class KeyCheckErrorHandler(SendgridErrorHandler):
    """For `GET /v3/scopes`, which any key SendGrid accepts may call, whatever its scopes: a 401 there (also
    "authorization required") or a 403 means the key is refused, never that a scope is missing. Read as a
    missing scope, it made a refused key look like an account with nothing to read."""

    def _resolve(self, response: Optional[Union[requests.Response, Exception]]) -> ErrorResolution:
        if isinstance(response, requests.Response) and response.status_code in (401, 403):
            return _fail(FailureType.config_error, refused_key_message(response))
        return super()._resolve(response)


class ScoresNotReadyErrorHandler(SendgridErrorHandler):
    """For SendGrid Engagement Quality, which answers 202 when it has not computed the scores asked for yet:
    a successful answer that holds no records, whatever its body (the spec gives it none), never a broken
    page to retry. The stream reads the 202 and keeps those days for the next sync."""

    def _resolve(self, response: Optional[Union[requests.Response, Exception]]) -> ErrorResolution:
        if isinstance(response, requests.Response) and response.status_code == 202:
            setattr(response, _BODY_ATTR, {})
            return ErrorResolution(ResponseAction.SUCCESS)
        return super()._resolve(response)


def _retry(message: str) -> ErrorResolution:
    return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)


def _fail(failure_type: FailureType, message: str) -> ErrorResolution:
    return ErrorResolution(ResponseAction.FAIL, failure_type, message)
