"""Fault injection and rate limiting: what makes the emulator behave like a busy, flaky API."""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

FAULT_KINDS = ("429", "500", "502", "503", "drop", "slow", "truncate", "html", "nonjson")


@dataclass
class FaultPlan:
    """Probability of each fault per request (0..1), drawn from a seeded generator.

    `max_in_a_row` caps how many times in a row the same request (method and full URL) is faulted. Draws are
    independent, so at 30 % a sync of a few hundred requests meets a run of nine faults (our retries) about
    once in a hundred syncs; the fault matrix caps the run so that each cell proves recovery, and the
    endless-fault tests prove what happens when retries run out.
    """

    rates: Dict[str, float] = field(default_factory=dict)
    seed: int = 0
    slow_seconds: float = 2.0
    path_regex: str = r"^/v3/"
    max_in_a_row: Optional[int] = None
    _random: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    injected: Dict[str, int] = field(default_factory=dict)
    _in_a_row: Dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        self._random = random.Random(self.seed)
        self._pattern = re.compile(self.path_regex)

    def draw(self, path: str, request: str = "") -> Optional[str]:
        """The fault for this request, if any; `request` identifies it across retries (e.g. "GET /v3/...?page=2")."""
        if not self.rates or not self._pattern.search(path):
            return None
        with self._lock:
            kind = self._roll()
            if self.max_in_a_row is not None:
                run = self._in_a_row.get(request, 0)
                if kind is None or run >= self.max_in_a_row:
                    self._in_a_row.pop(request, None)
                    return None
                self._in_a_row[request] = run + 1
            if kind is not None:
                self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind

    def _roll(self) -> Optional[str]:
        roll = self._random.random()
        for kind in FAULT_KINDS:
            rate = self.rates.get(kind, 0.0)
            if roll < rate:
                return kind
            roll -= rate
        return None


# SendGrid's limits, per endpoint and per minute (`--endpoint-limits realistic`; windows scale with
# `--rate-window`). Every endpoint has its own window, its own X-RateLimit-* headers and its own 429s.
#   - 600 a minute: most endpoints, the typical limit per Twilio's changelog "Imposing rate limits on some
#     SendGrid v2 API endpoints" (2019); `X-RateLimit-Limit: 600` is what `/v3/scopes` has been seen to report.
#   - GET /v3/messages, 6 a minute: Twilio's changelog "Rate limit change for the Twilio SendGrid Email
#     Activity API" (9 December 2025; before: 30 per 5 minutes).
#   - POST /v3/marketing/contacts/exports, 10 a minute: `X-RateLimit-Limit: 10` is reported on export creation;
#     no public capture of it was found, nor of its window (a minute is assumed).
REALISTIC_WINDOW_SECONDS = 60.0
REALISTIC_DEFAULT_LIMIT = 600
REALISTIC_LIMITS = {
    "GET /v3/messages": 6,
    "POST /v3/marketing/contacts/exports": 10,
}


@dataclass
class RateLimiter:
    """A fixed window per API key, answering with SendGrid's X-RateLimit-* headers.

    Without `endpoint_limits` (None), one window per key covers every endpoint. With it, as SendGrid does,
    each endpoint (method and route, e.g. "GET /v3/messages") has its own window per key, allowing
    `endpoint_limits[endpoint]` requests, or `limit` for an endpoint not in it (0: unlimited).

    `reset_style` "epoch" sends X-RateLimit-Reset as a Unix time (SendGrid's docs), "delta" as seconds
    until the reset (the spec's one definition).
    """

    limit: int = 0  # 0: unlimited
    window_seconds: float = 1.0
    reset_style: str = "epoch"
    endpoint_limits: Optional[Dict[str, int]] = None
    _windows: Dict[tuple, list] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    rejected: int = 0
    # 429s answered, by endpoint (only with endpoint_limits).
    rejected_by_endpoint: Dict[str, int] = field(default_factory=dict)

    def take(self, key: str, endpoint: str = "") -> tuple:
        """(allowed, headers) for one request of `key` to `endpoint`."""
        per_endpoint = self.endpoint_limits is not None
        limit = self.endpoint_limits.get(endpoint, self.limit) if per_endpoint else self.limit
        if not limit:
            return True, {}
        now = time.time()
        with self._lock:
            window_key = (key, endpoint if per_endpoint else "")
            window = self._windows.get(window_key)
            if window is None or now >= window[0]:
                window = [now + self.window_seconds, 0]
                self._windows[window_key] = window
            window[1] += 1
            used = window[1]
            reset_at = window[0]
            allowed = used <= limit
            if not allowed:
                self.rejected += 1
                if per_endpoint:
                    self.rejected_by_endpoint[endpoint] = self.rejected_by_endpoint.get(endpoint, 0) + 1
        reset = str(int(reset_at + 0.999)) if self.reset_style == "epoch" else f"{max(0.0, reset_at - now):.3f}"
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": reset,
        }
        return allowed, headers

