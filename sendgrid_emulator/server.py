"""The SendGrid emulator: a local HTTP server that answers like the v3 API on a seeded account.

Besides the API it serves a control API under `/_emulator/` (no auth): ground truth, mutations, faults,
rate limits, API keys and request statistics, so tests and benchmarks can drive it from another process.
"""

from __future__ import annotations

import collections
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import orjson

from .account import Account
from .faults import FaultPlan, RateLimiter
from .families import FAMILIES
from .routing import BadRequest, Request, Response, Route, error, write_body

FULL_ACCESS_KEY = "SG.emulator-full-access-key"
# Scopes every key has, whatever else it was given.
BASE_SCOPES = ("user.scopes.read",)

_WORD = re.compile(r"[a-z_]+")
_BAD_KEY = "The provided authorization grant is invalid, expired, or revoked"
_HTML_ERROR = b"<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1></body></html>"


class Emulator:
    def __init__(
        self,
        size: int = 100,
        seed: int = 42,
        counts: Optional[Dict[str, int]] = None,
        families: Optional[Iterable[str]] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        products: Optional[Iterable[str]] = None,
    ):
        # None: the account has every product (new and legacy Marketing Campaigns, the activity add-on…).
        self.products = set(products) if products is not None else None
        self.families = {name: FAMILIES[name] for name in (families or FAMILIES)}
        merged_counts: Dict[str, int] = {}
        for family in self.families.values():
            merged_counts.update(family.default_counts(size))
        merged_counts.update(counts or {})
        self.account = Account(seed=seed, size=size, counts=merged_counts)
        for family in self.families.values():
            family.seed(self.account)
        self.routes: List[Route] = [route for family in self.families.values() for route in family.routes.table]
        self.all_scopes = sorted({*BASE_SCOPES, *(s for f in self.families.values() for s in f.SCOPES)})
        self.keys: Dict[str, List[str]] = {FULL_ACCESS_KEY: list(self.all_scopes)}
        # Keys answered with one error on every endpoint, /v3/scopes included: key -> (status, message).
        self.refused_keys: Dict[str, Tuple[int, str]] = {}
        self.faults = FaultPlan()
        self.limiter = RateLimiter()
        self.requests_log: collections.deque = collections.deque(maxlen=200_000)
        # Called with each API request (not control requests) before it is answered: tests mutate data
        # between pages here. `api_requests` counts them.
        self.on_request: Optional[Callable[[Request], None]] = None
        self.api_requests = 0
        self.counters: Dict[str, int] = collections.Counter()
        self._counter_lock = threading.Lock()
        self._host, self._port = host, port
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Emulator":
        self._server = ThreadingHTTPServer((self._host, self._port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sendgrid-emulator", daemon=True)
        self._thread.start()
        # Families that serve more than the API (e.g. export downloads on another host) start it here.
        for family in self.families.values():
            if hasattr(family, "start"):
                family.start(self)
        return self

    def stop(self) -> None:
        for family in self.families.values():
            if hasattr(family, "stop"):
                family.stop(self)
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- what tests use ----------------------------------------------------------------------

    def truth(self) -> Dict[str, List[Dict[str, Any]]]:
        with self.account.lock:
            out: Dict[str, List[Dict[str, Any]]] = {}
            for family in self.families.values():
                out.update(family.truth(self.account))
            return out

    def mutate(self, family: str, action: str, **params: Any) -> Dict[str, Any]:
        with self.account.lock:
            return self.families[family].mutate(self.account, action, params)

    def add_key(self, key: str, scopes: Iterable[str]) -> None:
        self.keys[key] = sorted({*BASE_SCOPES, *scopes})

    def refuse_key(self, key: str, status: int = 401, message: str = "authorization required") -> None:
        """Answer every request with this key with `status` and `message`: SendGrid's 401 "authorization
        required" for a key it cannot take from the Authorization header, or a 403 for a key it refuses."""
        self.refused_keys[key] = (status, message)

    def set_faults(self, rates: Dict[str, float], seed: int = 0, slow_seconds: float = 2.0, path_regex: str = r"^/v3/",
                   max_in_a_row: Optional[int] = None) -> None:
        self.faults = FaultPlan(rates=dict(rates), seed=seed, slow_seconds=slow_seconds, path_regex=path_regex,
                                max_in_a_row=max_in_a_row)

    def set_rate_limit(self, limit: int, window_seconds: float = 1.0, reset_style: str = "epoch",
                       endpoint_limits: Optional[Dict[str, int]] = None) -> None:
        """`limit` requests per `window_seconds` per key: over every endpoint at once, or, with `endpoint_limits`
        ({"GET /v3/messages": 6, …}; faults.REALISTIC_LIMITS), per endpoint, `limit` for the others."""
        self.limiter = RateLimiter(limit=limit, window_seconds=window_seconds, reset_style=reset_style,
                                   endpoint_limits=endpoint_limits)

    def endpoint_of(self, method: str, path: str) -> str:
        """The endpoint a request is limited under: its method and its route's path, each id the route captures
        written `{id}` ("GET /v3/templates/{id}"); a captured lowercase word is kept, since a route may serve
        several endpoints (`/v3/suppression/(bounces|blocks|…)`)."""
        for route in self.routes:
            found = route.pattern.match(path) if route.method == method else None
            if found:
                parts, end = [], 0
                for index in range(1, (found.lastindex or 0) + 1):
                    start, stop = found.span(index)
                    if start < 0 or _WORD.fullmatch(found.group(index)):
                        continue
                    parts += [path[end:start], "{id}"]
                    end = stop
                return f"{method} {''.join(parts) + path[end:]}"
        return f"{method} {path}"

    def stats(self) -> Dict[str, Any]:
        with self._counter_lock:
            counters = dict(self.counters)
        return {"counters": counters, "faults": dict(self.faults.injected), "rate_limited": self.limiter.rejected,
                "rate_limited_by_endpoint": dict(self.limiter.rejected_by_endpoint)}

    def count(self, name: str) -> None:
        with self._counter_lock:
            self.counters[name] += 1

    # --- request handling --------------------------------------------------------------------

    def answer(self, request: Request) -> Response:
        """The API's answer to one request, before faults that break the connection itself."""
        if request.path.startswith("/_emulator/"):
            return self._control(request)
        key = _bearer(request.headers)
        if key is None:
            return error(401, "authorization required")
        if key in self.refused_keys:
            return error(*self.refused_keys[key])
        if key not in self.keys:
            return error(401, _BAD_KEY)
        endpoint = self.endpoint_of(request.method, request.path) if self.limiter.endpoint_limits is not None else ""
        allowed, limit_headers = self.limiter.take(key, endpoint)
        if not allowed:
            response = error(429, "too many requests")
            response.headers.update(limit_headers)
            return response
        response = self._dispatch(request, key)
        response.headers.update(limit_headers)
        return response

    def _dispatch(self, request: Request, key: str) -> Response:
        if request.path == "/v3/scopes" and request.method == "GET":
            return Response(200, {"scopes": self.keys[key]})
        path_matched = False
        for route in self.routes:
            found = route.pattern.match(request.path)
            if not found:
                continue
            path_matched = True
            if route.method != request.method:
                continue
            request.match = found.groups()
            scope = route.scope_for(request.match)
            if scope and scope not in self.keys[key]:
                return error(403, "access forbidden")
            if route.product and self.products is not None and route.product not in self.products:
                return error(403, "access forbidden")
            try:
                return route.handler(request, self.account)
            except BadRequest as bad:
                return error(400, str(bad), bad.field_name)
        if path_matched:
            return error(405, "method not allowed")
        return error(404, "resource not found")

    def _control(self, request: Request) -> Response:
        action = request.path[len("/_emulator/") :]
        body = request.json() or {}
        if action == "health":
            return Response(200, {"ok": True, "families": list(self.families), "size": self.account.size})
        if action == "truth":
            truth = self.truth()
            if request.arg("counts"):
                return Response(200, {name: len(records) for name, records in truth.items()})
            stream = request.arg("stream")
            return Response(200, truth.get(stream, []) if stream else truth)
        if action == "mutate":
            return Response(200, self.mutate(body.pop("family"), body.pop("action"), **body))
        if action == "faults":
            self.set_faults(**body)
            return Response(200, {"ok": True})
        if action == "ratelimit":
            self.set_rate_limit(**body)
            return Response(200, {"ok": True})
        if action == "keys":
            self.add_key(body["key"], body.get("scopes", []))
            return Response(200, {"ok": True})
        if action == "refuse_key":
            self.refuse_key(body["key"], body.get("status", 401), body.get("message", "authorization required"))
            return Response(200, {"ok": True})
        if action == "stats":
            return Response(200, self.stats())
        if action == "requests":
            return Response(200, list(self.requests_log))
        return error(404, f"no control action {action!r}")


def _bearer(headers: Any) -> Optional[str]:
    value = headers.get("Authorization") or ""
    return value[len("Bearer ") :].strip() if value.startswith("Bearer ") else None


def _handler_for(emulator: Emulator) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without this, headers and body leave in two packets and Nagle + delayed ACK add ~40 ms a request.
        disable_nagle_algorithm = True
        server_version = "SendGridEmulator/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = self.headers.get("Host") or "%s:%s" % self.server.server_address[:2]
            request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              self.headers, body, base_url=f"http://{host}", client_port=self.client_address[1])
            fault = emulator.faults.draw(parts.path, f"{self.command} {self.path}") if not parts.path.startswith("/_emulator/") else None
            emulator.count(f"{self.command} {parts.path.split('/')[2] if parts.path.startswith('/v3/') else 'control'}")
            emulator.requests_log.append({
                "method": self.command,
                "path": parts.path,
                "query": parts.query,
                "authorized": "Authorization" in self.headers,
                "on_behalf_of": self.headers.get("on-behalf-of"),
                "fault": fault,
                "at": time.time(),
            })
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "slow":
                time.sleep(emulator.faults.slow_seconds)
            if not parts.path.startswith("/_emulator/"):
                with emulator._counter_lock:
                    emulator.api_requests += 1
                if emulator.on_request is not None:
                    emulator.on_request(request)
            response = _faulty_response(fault) or emulator.answer(request)
            self._write(response, truncate=fault == "truncate")

        def _write(self, response: Response, truncate: bool) -> None:
            payload = response.payload()
            if truncate and not payload:
                # An answer without a body (a 202) cannot be cut short in its body: it is cut before it starts.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            write_body(self, payload, truncate)

    return Handler


def _faulty_response(fault: Optional[str]) -> Optional[Response]:
    if fault == "429":
        return Response(429, {"errors": [{"field": None, "message": "too many requests"}]},
                        headers={"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 1)})
    if fault in ("500", "502", "503"):
        return Response(int(fault), {"errors": [{"field": None, "message": "internal server error"}]})
    if fault == "html":
        return Response(503, raw=_HTML_ERROR, content_type="text/html")
    if fault == "nonjson":
        return Response(200, raw=b"<html><body>Welcome to nginx!</body></html>", content_type="text/html")
    return None
