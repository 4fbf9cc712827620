"""Requests, responses and the route table that API families register their endpoints in."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import orjson


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Mapping[str, str]
    body: bytes
    match: Tuple[str, ...] = ()
    base_url: str = ""
    client_port: int = 0  # the sender's TCP port: a test finds which process sent a request

    def arg(self, name: str, default: Optional[str] = None) -> Optional[str]:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> List[str]:
        """A repeated parameter (`?id=1&id=2`), also accepting comma-separated values."""
        out: List[str] = []
        for value in self.query.get(name, []) + self.query.get(f"{name}[]", []):
            out.extend(part for part in value.split(",") if part)
        return out

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    raw: Optional[bytes] = None

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"" if self.body is None else orjson.dumps(self.body)


def error(status: int, message: str, field_name: Optional[str] = None) -> Response:
    return Response(status, {"errors": [{"field": field_name, "message": message}]})


class BadRequest(Exception):
    """Raised by a handler for a parameter the spec does not allow; becomes a 400 like SendGrid's."""

    def __init__(self, message: str, field_name: Optional[str] = None):
        super().__init__(message)
        self.field_name = field_name


Handler = Callable[[Request, Any], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Handler
    scope: Optional[str]  # may use {0}, {1}… for the path's groups
    us_only: bool = False
    # The SendGrid product the endpoint belongs to ("new_mc", "legacy_mc", "email_activity", …); an account
    # without that product answers 403, as SendGrid does (Emulator(products=...)).
    product: Optional[str] = None

    def scope_for(self, match: Tuple[str, ...]) -> Optional[str]:
        return self.scope.format(*match) if self.scope else None


class Routes:
    """A family's endpoints; `server.Emulator` merges every family's table."""

    def __init__(self) -> None:
        self.table: List[Route] = []

    def get(self, path_regex: str, scope: Optional[str], us_only: bool = False, product: Optional[str] = None) -> Callable[[Handler], Handler]:
        return self.add("GET", path_regex, scope, us_only, product)

    def post(self, path_regex: str, scope: Optional[str], us_only: bool = False, product: Optional[str] = None) -> Callable[[Handler], Handler]:
        return self.add("POST", path_regex, scope, us_only, product)

    def add(self, method: str, path_regex: str, scope: Optional[str], us_only: bool, product: Optional[str] = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table.append(Route(method, re.compile(f"^{path_regex}$"), handler, scope, us_only, product))
            return handler

        return register


def write_body(handler: Any, payload: bytes, truncate: bool) -> None:
    """Write a response body after its headers; `truncate` sends half of it and cuts the connection, as a
    dropped transfer does (the client sees a body shorter than its Content-Length)."""
    if not truncate:
        handler.wfile.write(payload)
        return
    handler.wfile.write(payload[: len(payload) // 2])
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)
