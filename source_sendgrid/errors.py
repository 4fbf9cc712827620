"""What each SendGrid response means, how long to wait before a retry, and how errors read.

This is the only module that decides what a status code means. Everything it returns goes through the
CDK's HttpClient, which does the retrying.
"""

from __future__ import annotations

import ctypes
import random
import threading
import time
from multiprocessing import sharedctypes
from typing import Any, Callable, Optional, Union

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.call_rate import AbstractAPIBudget
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction

from .shared_lock import ProcessLock

MAX_RETRIES = 8
MAX_RETRY_SECONDS = 900
MAX_RATE_LIMIT_WAIT = 120.0
# Larger than any "seconds until reset" and smaller than any epoch SendGrid would send.
_EPOCH_THRESHOLD = 1_000_000_000

_BODY_ATTR = "_sendgrid_body"


class _BudgetNumbers(ctypes.Structure):
    """The budget's numbers as one block of memory, so that worker processes can share it."""

    _fields_ = [
        ("remaining", ctypes.c_int64),  # _UNKNOWN: nothing to wait for
        ("reset_at", ctypes.c_double),  # epoch seconds
        ("in_flight", ctypes.c_int64),
        ("waits", ctypes.c_int64),
        ("waited_seconds", ctypes.c_double),
    ]


_UNKNOWN = -1


class _SharedNumbers:
    """A block of numbers (a ctypes struct) and the lock that guards it, which worker processes can share.

    Nothing waits while holding the lock. Between threads it is a threading.Lock (a thread cannot die
    holding it: `with` gives it back on any exception); between processes, a ProcessLock, which a worker
    killed while holding it does not keep, and which is taken with a bound."""

    _lock_name = "numbers"

    def __init__(self, numbers: ctypes.Structure):
        self._numbers = numbers
        self._lock: Any = threading.Lock()

    def share_with_processes(self, context: Any) -> None:
        """From now on, processes forked from this one (of `context`, a multiprocessing context) read and
        change these same numbers, under a lock they share."""
        shared = sharedctypes.RawValue(type(self._numbers))
        ctypes.memmove(ctypes.addressof(shared), ctypes.addressof(self._numbers), ctypes.sizeof(self._numbers))
        self._numbers = shared
        self._lock = ProcessLock(self._lock_name)


class RateBudget(_SharedNumbers, AbstractAPIBudget):
    """The requests SendGrid still allows in its current rate-limit window, shared by every stream of a sync.

    Every response's `X-RateLimit-Remaining` and `X-RateLimit-Reset` update it. When the remaining
    requests are spent (counting those still in flight), a request waits until the window resets
    instead of collecting a 429. Without those headers it never waits. The CDK calls `acquire_call`
    before and `update_from_response` after every request it sends (retries included).
    """

    # Two reset times closer than this belong to the same window (a "seconds until" header drifts).
    _SAME_WINDOW_SECONDS = 0.5
    _lock_name = "rate-limit budget"

    def __init__(self, clock: Callable[[], float] = time.time, sleep: Optional[Callable[[float], None]] = None):
        self._clock = clock
        # Looked up at each wait (not bound here), so a test that stubs time.sleep stubs this wait too.
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        super().__init__(_BudgetNumbers(remaining=_UNKNOWN))
        self._thread = threading.local()

    @property
    def waits(self) -> int:
        return int(self._numbers.waits)

    @property
    def waited_seconds(self) -> float:
        return float(self._numbers.waited_seconds)

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        waited_for: Optional[float] = None
        numbers = self._numbers
        while True:
            with self._lock:
                if getattr(self._thread, "in_flight", False):
                    # This thread's previous request raised before its response came back.
                    numbers.in_flight = max(0, numbers.in_flight - 1)
                now = self._clock()
                if numbers.remaining != _UNKNOWN and (now >= numbers.reset_at or waited_for == numbers.reset_at):
                    # The window is over (or we already waited for this reset once): start afresh.
                    numbers.remaining = _UNKNOWN
                if numbers.remaining == _UNKNOWN or numbers.remaining > 0:
                    if numbers.remaining != _UNKNOWN:
                        numbers.remaining -= 1
                    numbers.in_flight += 1
                    self._thread.in_flight = True
                    return
                waited_for = numbers.reset_at
                wait = min(MAX_RATE_LIMIT_WAIT, max(0.0, numbers.reset_at - now)) + random.uniform(0.01, 0.05)
                numbers.waits += 1
                numbers.waited_seconds += wait
            self._sleep(wait)

    def get_matching_policy(self, request: Any) -> None:
        return None

    def update_from_response(self, request: Any, response: Any) -> None:
        numbers = self._numbers
        with self._lock:
            if getattr(self._thread, "in_flight", False):
                self._thread.in_flight = False
                numbers.in_flight = max(0, numbers.in_flight - 1)
            if not isinstance(response, requests.Response):
                return
            reset_in = seconds_until_reset(response, self._clock)
            remaining = _int_header(response, "X-RateLimit-Remaining")
            if response.status_code == 429:
                remaining = 0
                reset_in = 1.0 if reset_in is None else reset_in
            if remaining is None or reset_in is None:
                return
            reset_at = self._clock() + reset_in
            # What the server counted, less what we sent that it may not have counted yet.
            estimate = max(0, remaining - numbers.in_flight)
            if numbers.remaining == _UNKNOWN or reset_at > numbers.reset_at + self._SAME_WINDOW_SECONDS:
                numbers.remaining, numbers.reset_at = estimate, reset_at  # a new window
            elif reset_at > numbers.reset_at - self._SAME_WINDOW_SECONDS:
                numbers.remaining = min(numbers.remaining, estimate)  # the same window: the lowest count wins
            # else: a late response from an earlier window, nothing new


def _int_header(response: requests.Response, name: str) -> Optional[int]:
    raw = response.headers.get(name)
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


class _RequestCounts(ctypes.Structure):
    _fields_ = [("requests", ctypes.c_int64), ("retries", ctypes.c_int64), ("rate_limited", ctypes.c_int64)]


class RequestStats(_SharedNumbers):
    """Counts shared by every stream of one sync, reported at the end of a read, and the sync's rate budget."""

    _lock_name = "request counts"

    def __init__(self) -> None:
        super().__init__(_RequestCounts())
        self.budget = RateBudget()

    def share_with_processes(self, context: Any) -> None:
        super().share_with_processes(context)
        self.budget.share_with_processes(context)

    @property
    def requests(self) -> int:
        return int(self._numbers.requests)

    @property
    def retries(self) -> int:
        return int(self._numbers.retries)

    @property
    def rate_limited(self) -> int:
        return int(self._numbers.rate_limited)

    def count(self, action: ResponseAction) -> None:
        counts = self._numbers
        with self._lock:
            counts.requests += 1
            if action == ResponseAction.RATE_LIMITED:
                counts.rate_limited += 1
                counts.retries += 1
            elif action == ResponseAction.RETRY:
                counts.retries += 1


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
