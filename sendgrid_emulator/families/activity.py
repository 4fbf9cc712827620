"""Email activity (docs/endpoints.md#email-activity, `GET /v3/messages`): at most `limit` (≤ 1000) messages per query, no cursor.

Only the query the connector needs is understood, `last_event_time BETWEEN TIMESTAMP "…" AND TIMESTAMP "…"`
(keywords in any case); anything else is a 400 "invalid syntax", as SendGrid answers. The endpoint belongs
to the paid add-on: an `Emulator(products=...)` without "email_activity" answers 403.
"""

from __future__ import annotations

import bisect
import re
import time
from datetime import datetime, timezone
from typing import Any, Dict, List

from ..account import Account
from ..paging import int_arg
from ..routing import Request, Response, Routes, error

FAMILY = "activity"
SCOPES = ["messages.read"]
MAX_LIMIT = 1000
_BETWEEN = re.compile(
    r'^\s*last_event_time\s+BETWEEN\s+TIMESTAMP\s+"([^"]+)"\s+AND\s+TIMESTAMP\s+"([^"]+)"\s*$', re.IGNORECASE)
STATUSES = ("processed", "delivered", "not_delivered")

routes = Routes()


def default_counts(size: int) -> Dict[str, int]:
    # `message_burst` messages share ten busy minutes: windows around them must be split to a few minutes.
    return {"messages": size, "message_days": 10, "message_burst": 0}


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _epoch(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _message(index: int, last_event: int, rng) -> Dict[str, Any]:
    opens = rng.randrange(0, 5)
    return {
        "from_email": "news@shop.example.com",
        "msg_id": f"m{index:07d}.{rng.randrange(16**10):010x}.filter0001",
        "subject": f"Your order {index}",
        "to_email": f"customer{index}@example{index % 9}.org",
        "status": rng.choice(STATUSES),
        "opens_count": opens,
        "clicks_count": rng.randrange(0, opens + 1),
        "last_event_time": _iso(last_event),
    }


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    now = int(time.time())
    oldest = now - account.count("message_days", 10) * 86400
    times = [rng.randrange(oldest, now - 120) for _ in range(account.count("messages", 0))]
    busy_start = now - 86400
    times += [busy_start + rng.randrange(600) for _ in range(account.count("message_burst", 0))]
    account.data["activity:messages"] = [_message(i, t, rng) for i, t in enumerate(times)]
    _reindex(account)


def _reindex(account: Account) -> None:
    account.data["activity:messages"].sort(key=lambda m: (m["last_event_time"], m["msg_id"]))
    account.data["activity:times"] = [_epoch(m["last_event_time"]) for m in account.data["activity:messages"]]


@routes.get(r"/v3/messages", scope="messages.read", us_only=True, product="email_activity")
def messages(request: Request, account: Account) -> Response:
    query = request.arg("query")
    if not query:
        return error(400, "query is required", "query")
    found = _BETWEEN.match(query)
    if not found:
        return Response(400, {"errors": [{"message": f"invalid syntax: cannot parse query {query[:80]!r}"}]})
    try:
        low, high = _epoch(found.group(1)), _epoch(found.group(2))
    except ValueError:
        return Response(400, {"errors": [{"message": "invalid syntax: TIMESTAMP must look like 2024-01-31T00:00:00Z"}]})
    limit = int_arg(request, "limit", 10, 1, MAX_LIMIT)
    with account.lock:
        times = account.data["activity:times"]
        selected = account.data["activity:messages"][bisect.bisect_left(times, low): bisect.bisect_right(times, high)]
        # Newest first; whatever does not fit in `limit` is simply not returned.
        return Response(200, {"messages": [dict(m) for m in selected[::-1][:limit]]})


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    return {"email_activity": [dict(m) for m in account.data["activity:messages"]]}


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """add: `count` new messages now; touch: the `count` oldest messages get a new event (an open) now."""
    count = int(params.get("count", 1))
    now = int(time.time())
    rng = account.rng(f"{FAMILY}:mutate:{now}:{count}:{action}")
    if action == "add":
        base = len(account.data["activity:messages"]) + 10**6
        account.data["activity:messages"].extend(_message(base + i, now, rng) for i in range(count))
        _reindex(account)
        return {"added": count}
    if action == "touch":
        touched = account.data["activity:messages"][:count]
        for message in touched:
            message.update(last_event_time=_iso(now), status="delivered", opens_count=message["opens_count"] + 1)
        _reindex(account)
        return {"touched": [m["msg_id"] for m in touched]}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
