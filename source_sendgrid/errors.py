"""What each SendGrid response means, how long to wait before a retry, and how errors read.

This is the only module that decides what a status code means. Everything it returns goes through the
CDK's HttpClient, which does the retrying.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import random
import re
import threading
import time
from datetime import datetime, timezone
from multiprocessing import sharedctypes
from typing import Any, Callable, Optional, Tuple, Union
from urllib.parse import urlsplit

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.call_rate import AbstractAPIBudget
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .shared_lock import ProcessLock

MAX_RETRIES = 8
MAX_RETRY_SECONDS = 900
MAX_RATE_LIMIT_WAIT = 120.0
# Larger than any "seconds until reset" and smaller than any epoch SendGrid would send.
_EPOCH_THRESHOLD = 1_000_000_000
# SendGrid's rate-limit windows last seconds to a minute: a reset further away than this, or a remaining
# count above this, is not a rate limit but a broken header, and is read as no header at all.
MAX_PLAUSIBLE_RESET_SECONDS = 3600.0
MAX_PLAUSIBLE_REMAINING = 1_000_000_000
# A wait longer than this is logged: what is waited for and until when.
LOGGED_WAIT_SECONDS = 10.0

logger = logging.getLogger("airbyte")
_SURROGATE = re.compile("[\ud800-\udfff]")

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
        self._sleeper = sleep or (lambda seconds: time.sleep(seconds))
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

    def _sleep(self, seconds: float) -> None:
        log_long_wait(seconds, "SendGrid's rate-limit window to reset (no requests left in it)", self._clock)
        self._sleeper(seconds)

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


def _header_number(response: requests.Response, name: str) -> Optional[float]:
    """A numeric header as a finite, non-negative number; None when absent or not such a number
    ("inf", "nan", "-5", "soon")."""
    raw = response.headers.get(name)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _int_header(response: requests.Response, name: str) -> Optional[int]:
    value = _header_number(response, name)
    return int(value) if value is not None and value <= MAX_PLAUSIBLE_REMAINING else None


def log_long_wait(seconds: float, waiting_for: str, clock: Callable[[], float] = time.time) -> None:
    """One log line for a wait longer than LOGGED_WAIT_SECONDS, so a long pause is never silent."""
    if seconds > LOGGED_WAIT_SECONDS:
        until = datetime.fromtimestamp(clock() + seconds, tz=timezone.utc).strftime("%H:%M:%S UTC")
        logger.info(f"Waiting {seconds:.0f} s for {waiting_for}, until {until}.")


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


def seconds_until_reset(response: requests.Response, now: Callable[[], float] = time.time) -> Optional[float]:
    """X-RateLimit-Reset is an epoch in SendGrid's docs and a delta in its spec: accept both. A reset more
    than MAX_PLAUSIBLE_RESET_SECONDS away (an epoch of 10**12, "inf") is a broken header: None, as if absent."""
    value = _header_number(response, "X-RateLimit-Reset")
    if value is None:
        return None
    wait = max(0.0, value - now()) if value > _EPOCH_THRESHOLD else value
    return wait if wait <= MAX_PLAUSIBLE_RESET_SECONDS else None


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
                log_long_wait(wait, "SendGrid's rate-limit window to reset (answered 429)")
                return wait
        exponential = min(self._max, self._base * 2 ** max(0, attempt_count - 1)) * random.uniform(0.8, 1.2)
        log_long_wait(exponential, f"SendGrid before retry {attempt_count} of a failed request")
        return exponential


class SendgridErrorHandler(ErrorHandler):
    """Maps a response (or a failed connection) to retry, skip, end-of-pages or a clear failure."""

    def __init__(self, stream_name: str, not_found_is_empty: bool, stats: RequestStats, expects_json: bool = True):
        self._stream_name = stream_name
        self._not_found_is_empty = not_found_is_empty
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
        if status == 404 and self._not_found_is_empty:
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
