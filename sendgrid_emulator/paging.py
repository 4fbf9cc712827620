"""Server-side pagination in the styles of the SendGrid spec, with its limits and 400s."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import urlencode

from .routing import BadRequest, Request


def int_arg(request: Request, name: str, default: Optional[int], low: Optional[int] = None, high: Optional[int] = None) -> Optional[int]:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", name) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadRequest(f"{name} must be between {low} and {high}", name)
    return value


def offset_page(request: Request, items: Sequence[Any], default_limit: int, max_limit: Optional[int]) -> List[Any]:
    """Styles A/B: `limit` (1..max) and `offset` (>= 0)."""
    limit = int_arg(request, "limit", default_limit, 1, max_limit)
    offset = int_arg(request, "offset", 0, 0)
    return list(items[offset : offset + limit])


def page_token_page(request: Request, items: Sequence[Any], default_size: int, max_size: int, required: bool = False) -> Tuple[List[Any], dict]:
    """Style C: `page_size` + opaque `page_token`; `_metadata.next` is the full URL of the next page."""
    if required and request.arg("page_size") is None:
        raise BadRequest("page_size is required", "page_size")
    size = int_arg(request, "page_size", default_size, 1, max_size)
    token = request.arg("page_token")
    start = _decode_token(token) if token else 0
    page = list(items[start : start + size])
    metadata = {"self": _url(request, {"page_size": size, **({"page_token": token} if token else {})}), "count": len(items)}
    if start + size < len(items):
        metadata["next"] = _url(request, {"page_size": size, "page_token": _encode_token(start + size)})
    if start > 0:
        metadata["prev"] = _url(request, {"page_size": size, "page_token": _encode_token(max(0, start - size))})
    return page, metadata


def page_number_page(request: Request, items: Sequence[Any], default_size: int = 100, max_size: int = 1000) -> Optional[List[Any]]:
    """Style D: 1-based `page`; None (a 404) past the last page."""
    page = int_arg(request, "page", 1, 1)
    size = int_arg(request, "page_size", default_size, 1, max_size)
    start = (page - 1) * size
    if start >= len(items) and not (page == 1 and not items):
        return None
    return list(items[start : start + size])


def _url(request: Request, params: dict) -> str:
    others = {k: v[-1] for k, v in request.query.items() if k not in ("page_size", "page_token")}
    return f"{request.base_url}{request.path}?{urlencode({**others, **params})}"


def _encode_token(offset: int) -> str:
    return f"pt{offset:x}"


def _decode_token(token: str) -> int:
    if not token.startswith("pt"):
        raise BadRequest("invalid page_token", "page_token")
    try:
        return int(token[2:], 16)
    except ValueError:
        raise BadRequest("invalid page_token", "page_token") from None
