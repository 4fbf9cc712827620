"""What each SendGrid response means, how long to wait before a retry, and how errors read.

This is the only module that decides what a status code means. Everything it returns goes through the
CDK's HttpClient, which does the retrying.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction

MAX_RETRIES = 8
MAX_RETRY_SECONDS = 900
MAX_RATE_LIMIT_WAIT = 120.0
# Larger than any "seconds until reset" and smaller than any epoch SendGrid would send.
_EPOCH_THRESHOLD = 1_000_000_000

_BODY_ATTR = "_sendgrid_body"


@dataclass
class RequestStats:
    """Counts shared by every stream of one sync, reported at the end of a read."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, action: ResponseAction) -> None:
        with self._lock:
            self.requests += 1
            if action == ResponseAction.RATE_LIMITED:
                self.rate_limited += 1
                self.retries += 1
            elif action == ResponseAction.RETRY:
                self.retries += 1


def response_body(response: requests.Response) -> Any:
    """The parsed JSON body; parsed once, when the error handler checked it."""
    if not hasattr(response, _BODY_ATTR):
        setattr(response, _BODY_ATTR, orjson.loads(response.content) if response.content else None)
    return getattr(response, _BODY_ATTR)


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
    """403, or the 401 "authorization required" some endpoints answer for a key without the scope."""
    if response.status_code == 403:
        return True
    return response.status_code == 401 and "authorization required" in api_error_message(response).lower()


def seconds_until_reset(response: requests.Response, now: Callable[[], float] = time.time) -> Optional[float]:
    """X-RateLimit-Reset is an epoch in SendGrid's docs and a delta in its spec: accept both."""
    raw = response.headers.get("X-RateLimit-Reset")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    if value is None:
        return None
    return max(0.0, value - now()) if value > _EPOCH_THRESHOLD else max(0.0, value)


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
                return min(wait, MAX_RATE_LIMIT_WAIT) + random.uniform(0.01, 0.1)
        exponential = min(self._max, self._base * 2 ** max(0, attempt_count - 1))
        return exponential * random.uniform(0.8, 1.2)


class SendgridErrorHandler(ErrorHandler):
    """Maps a response (or a failed connection) to retry, skip, end-of-pages or a clear failure."""

    def __init__(self, stream_name: str, not_found_is_empty: bool, stats: RequestStats, expects_json: bool = True):
        self._stream_name = stream_name
        self._not_found_is_empty = not_found_is_empty
        self._stats = stats
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
            return _fail(FailureType.config_error,
                         "SendGrid rejected the API key (401 Unauthorized). Check that the key is correct, "
                         f"active and for this region. SendGrid said: {api_error_message(response)!r}")
        if status == 404 and self._not_found_is_empty:
            return ErrorResolution(ResponseAction.IGNORE, None, f"Stream {self._stream_name}: 404, no more pages.")
        if status == 408 or status >= 500:
            return _retry(f"SendGrid answered {status} on stream {self._stream_name}; retrying.")
        return _fail(FailureType.system_error,
                     f"SendGrid answered {status} to a request of stream {self._stream_name}: "
                     f"{api_error_message(response)!r}.")

    def _check_body(self, response: requests.Response) -> ErrorResolution:
        if not self._expects_json:
            return ErrorResolution(ResponseAction.SUCCESS)
        try:
            response_body(response)
        except orjson.JSONDecodeError:
            # A truncated body, or an HTML page from a proxy with a 200: never records.
            return _retry(f"SendGrid sent an unreadable (truncated or non-JSON) body on stream {self._stream_name}; retrying.")
        return ErrorResolution(ResponseAction.SUCCESS)


def _retry(message: str) -> ErrorResolution:
    return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)


def _fail(failure_type: FailureType, message: str) -> ErrorResolution:
    return ErrorResolution(ResponseAction.FAIL, failure_type, message)
