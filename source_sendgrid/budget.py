"""SendGrid's rate limits as the sync sees them: one budget per endpoint, read from each response's headers
and shared by every stream and worker process, and the counts of requests a read reports at its end.

SendGrid limits each endpoint on its own: every endpoint has its own number of requests per window and its
own `X-RateLimit-*` headers, and a 429 closes only that endpoint until its window resets (about 600 a minute
for most endpoints, 6 a minute for `/v3/messages`). So a spent `/v3/messages` window makes only the next
`/v3/messages` request wait; every other endpoint goes on.

An endpoint is the request's method and path, with each path segment that is an id (anything but a lowercase
word or an API version) written `{id}`: `GET /v3/contactdb/lists/{id}/recipients`. It is read from the request
the CDK hands the budget, rather than told by the stream, because that request is all the budget is given
(`acquire_call(request)`), one stream may call several endpoints (the contacts export creates, polls, counts
and searches), and the method and path are what SendGrid itself keys its limits on.
"""

from __future__ import annotations

import ctypes
import logging
import math
import random
import re
import threading
import time
import zlib
from datetime import datetime, timezone
from multiprocessing import sharedctypes
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlsplit

import requests
from airbyte_cdk.sources.streams.call_rate import AbstractAPIBudget
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction

from .shared_lock import ProcessLock

MAX_RATE_LIMIT_WAIT = 120.0
# Larger than any "seconds until reset" and smaller than any epoch SendGrid would send.
_EPOCH_THRESHOLD = 1_000_000_000
# SendGrid's rate-limit windows last seconds to a minute: a reset further away than this, or a remaining
# count above this, is not a rate limit but a broken header, and is read as no header at all.
MAX_PLAUSIBLE_RESET_SECONDS = 3600.0
MAX_PLAUSIBLE_REMAINING = 1_000_000_000
# A wait longer than this is logged: what is waited for and until when.
LOGGED_WAIT_SECONDS = 10.0
# Endpoints the budget keeps apart. A sync calls about 45; should more ever be seen, an endpoint that finds no
# free slot shares one with another (waiting when either is spent: slower, never a 429 more).
ENDPOINT_SLOTS = 128
_KEY_BYTES = 96

logger = logging.getLogger("airbyte")
# A path segment kept as it is: a lowercase word (`spam_reports`, `pre-builts`) or an API version (`v3`, `2.0`).
_ROUTE_WORD = re.compile(r"[a-z][a-z_-]*|v[0-9]+|[0-9]+\.[0-9]+")


def endpoint_of(method: Optional[str], url: Optional[str]) -> str:
    """ "GET /v3/contactdb/lists/{id}/recipients" for GET https://…/v3/contactdb/lists/17/recipients?page=2.
    Ids are numbers, UUIDs, `d-…` template ids, base64 recipient ids, email addresses: none is a lowercase word."""
    if not url:
        return (method or "").upper()
    path = urlsplit(url).path
    segments = ["{id}" if segment and not _ROUTE_WORD.fullmatch(segment) else segment for segment in path.split("/")]
    return f"{(method or '').upper()} {'/'.join(segments)}"


def _endpoint_of_request(request: Any) -> str:
    return endpoint_of(getattr(request, "method", None), getattr(request, "url", None))


class _Endpoint(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_char * _KEY_BYTES),  # b"": a free slot
        ("remaining", ctypes.c_int64),  # _UNKNOWN: nothing to wait for
        ("reset_at", ctypes.c_double),  # epoch seconds
        ("in_flight", ctypes.c_int64),
        ("limit", ctypes.c_int64),  # X-RateLimit-Limit as last seen; 0: not seen
    ]


class _BudgetTable(ctypes.Structure):
    """Every endpoint's numbers as one block of memory, so that worker processes can share it."""

    _fields_ = [("endpoints", _Endpoint * ENDPOINT_SLOTS)]


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
    """The requests SendGrid still allows each endpoint in its current rate-limit window, shared by every
    stream of a sync.

    Every response's `X-RateLimit-Remaining` and `X-RateLimit-Reset` update its endpoint's budget. When an
    endpoint's remaining requests are spent (counting those still in flight), its next request waits until
    that endpoint's window resets instead of collecting a 429; requests to other endpoints do not wait.
    Without those headers nothing waits. The CDK calls `acquire_call` before and `update_from_response`
    after every request it sends (retries included).
    """

    # Two reset times closer than this belong to the same window (a "seconds until" header drifts).
    _SAME_WINDOW_SECONDS = 0.5
    _lock_name = "rate-limit budget"

    def __init__(self, clock: Callable[[], float] = time.time, sleep: Optional[Callable[[float], None]] = None):
        self._clock = clock
        # Looked up at each wait (not bound here), so a test that stubs time.sleep stubs this wait too.
        self._sleeper = sleep or (lambda seconds: time.sleep(seconds))
        super().__init__(_BudgetTable())
        self._thread = threading.local()
        # Where each endpoint's slot is, once found: a slot never moves, so this stays true in forked workers.
        self._slots: Dict[str, int] = {}

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        endpoint = _endpoint_of_request(request)
        waited_for: Optional[float] = None
        while True:
            with self._lock:
                self._settle_unanswered()
                slot = self._numbers.endpoints[self._slot_of(endpoint)]
                now = self._clock()
                if slot.remaining != _UNKNOWN and (now >= slot.reset_at or waited_for == slot.reset_at):
                    # The window is over (or we already waited for this reset once): start afresh.
                    slot.remaining = _UNKNOWN
                if slot.remaining == _UNKNOWN or slot.remaining > 0:
                    if slot.remaining != _UNKNOWN:
                        slot.remaining -= 1
                    slot.in_flight += 1
                    self._thread.in_flight = self._slot_of(endpoint)
                    return
                waited_for = slot.reset_at
                wait = min(MAX_RATE_LIMIT_WAIT, max(0.0, slot.reset_at - now)) + random.uniform(0.01, 0.05)
                limit = int(slot.limit)
            per_window = f"; it allows {limit} per window" if limit > 0 else ""
            log_long_wait(wait, f"SendGrid's rate-limit window of {endpoint} to reset (no requests left in it{per_window})",
                          self._clock)
            self._sleeper(wait)

    def seconds_until_allowed(self, method: str, path: str) -> float:
        """How long a request to this endpoint sent now would wait (0: none), for progress logs."""
        endpoint = endpoint_of(method, path)
        with self._lock:
            slot = self._numbers.endpoints[self._slot_of(endpoint)]
            now = self._clock()
            if slot.remaining == _UNKNOWN or slot.remaining > 0 or now >= slot.reset_at:
                return 0.0
            return min(MAX_RATE_LIMIT_WAIT, slot.reset_at - now)

    def get_matching_policy(self, request: Any) -> None:
        return None

    def update_from_response(self, request: Any, response: Any) -> None:
        endpoint = _endpoint_of_request(request if request is not None else getattr(response, "request", None))
        with self._lock:
            self._settle_unanswered()
            if not isinstance(response, requests.Response):
                return
            slot = self._numbers.endpoints[self._slot_of(endpoint)]
            reset_in = seconds_until_reset(response, self._clock)
            remaining = _int_header(response, "X-RateLimit-Remaining")
            limit = _int_header(response, "X-RateLimit-Limit")
            if limit is not None:
                slot.limit = limit
            if response.status_code == 429:
                remaining = 0
                reset_in = 1.0 if reset_in is None else reset_in
            if remaining is None or reset_in is None:
                return
            reset_at = self._clock() + reset_in
            # What the server counted, less what we sent that it may not have counted yet.
            estimate = max(0, remaining - slot.in_flight)
            if slot.remaining == _UNKNOWN or reset_at > slot.reset_at + self._SAME_WINDOW_SECONDS:
                slot.remaining, slot.reset_at = estimate, reset_at  # a new window
            elif reset_at > slot.reset_at - self._SAME_WINDOW_SECONDS:
                slot.remaining = min(slot.remaining, estimate)  # the same window: the lowest count wins
            # else: a late response from an earlier window, nothing new

    def _settle_unanswered(self) -> None:
        """This thread's previous request is answered (or raised before its answer came back): it is no
        longer in flight. Called under the lock."""
        index = getattr(self._thread, "in_flight", None)
        if index is not None:
            self._thread.in_flight = None
            slot = self._numbers.endpoints[index]
            slot.in_flight = max(0, slot.in_flight - 1)

    def _slot_of(self, endpoint: str) -> int:
        """The endpoint's slot, taken if it has none yet. Called under the lock."""
        index = self._slots.get(endpoint)
        if index is not None:
            return index
        key = endpoint.encode("utf-8", "replace")[: _KEY_BYTES - 1]
        endpoints = self._numbers.endpoints
        start = zlib.crc32(key) % ENDPOINT_SLOTS
        for probe in range(ENDPOINT_SLOTS):
            index = (start + probe) % ENDPOINT_SLOTS
            slot = endpoints[index]
            if slot.key == key:
                break
            if not slot.key:
                slot.key, slot.remaining = key, _UNKNOWN
                break
        else:
            index = start  # every slot taken: share one
        self._slots[endpoint] = index
        return index


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


def seconds_until_reset(response: requests.Response, now: Callable[[], float] = time.time) -> Optional[float]:
    """X-RateLimit-Reset is an epoch in SendGrid's docs and a delta in its spec: accept both. A reset more
    than MAX_PLAUSIBLE_RESET_SECONDS away (an epoch of 10**12, "inf") is a broken header: None, as if absent."""
    value = _header_number(response, "X-RateLimit-Reset")
    if value is None:
        return None
    wait = max(0.0, value - now()) if value > _EPOCH_THRESHOLD else value
    return wait if wait <= MAX_PLAUSIBLE_RESET_SECONDS else None


def log_long_wait(seconds: float, waiting_for: str, clock: Callable[[], float] = time.time) -> None:
    """One log line for a wait longer than LOGGED_WAIT_SECONDS, so a long pause is never silent."""
    if seconds > LOGGED_WAIT_SECONDS:
        logger.info(f"Waiting {seconds:.0f} s for {waiting_for}, until {clock_time(clock() + seconds)}.")


def clock_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S UTC")


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

    def count_retry(self) -> None:
        """A request asked again for a reason its answer's status did not show (a streamed body that broke)."""
        with self._lock:
            self._numbers.retries += 1

    def count(self, action: ResponseAction) -> None:
        counts = self._numbers
        with self._lock:
            counts.requests += 1
            if action == ResponseAction.RATE_LIMITED:
                counts.rate_limited += 1
                counts.retries += 1
            elif action == ResponseAction.RETRY:
                counts.retries += 1
