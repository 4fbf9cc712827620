"""Senders and subusers (docs/endpoints.md#senders-and-subusers): verified senders (keyset by `lastSeenID`), legacy sender
identities (`/v3/senders`, US only, legacy Marketing Campaigns accounts) and subusers (parent accounts only).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

from ..account import SEED_END, SEED_START, Account
from ..paging import int_arg, offset_page
from ..routing import BadRequest, Request, Response, Routes

FAMILY = "account"
SCOPES = ["subusers.read", "marketing_campaigns.read"]
REGIONS = ("all", "global", "eu")

routes = Routes()


def default_counts(size: int) -> Dict[str, int]:
    return {
        "verified_senders": max(3, min(30, size // 5)),
        "legacy_senders": max(2, min(10, size // 20)),
        "subusers": max(3, min(50, size // 4)),
    }


def _address(rng) -> Dict[str, str]:
    return {"city": rng.choice(["Denver", "San Francisco", "Berlin"]), "state": rng.choice(["CO", "CA", "BE"]),
            "zip": f"{rng.randrange(10000, 99999)}", "country": rng.choice(["USA", "Germany"])}


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    verified, next_id = [], 1200
    for i in range(account.count("verified_senders", 0)):
        next_id += 1 + rng.randrange(5)  # ids ascend with gaps, as deletions leave them
        verified.append({
            "id": next_id, "nickname": f"Sender {i}", "from_email": f"orders{i}@example.com",
            "from_name": f"Example {i}", "reply_to": f"reply{i}@example.com", "reply_to_name": f"Reply {i}",
            "address": f"{i} Fake St.", "address2": "", **_address(rng),
            "verified": rng.random() < 0.8, "locked": False,
        })
    legacy = []
    for i in range(account.count("legacy_senders", 0)):
        created = rng.randrange(SEED_START, SEED_END)
        legacy.append({
            "id": 1 + i, "nickname": f"Legacy sender {i}",
            "from": {"email": f"from{i}@example.com", "name": f"Example INC {i}"},
            "reply_to": {"email": f"replyto{i}@example.com", "name": f"Example INC {i}"},
            "address": f"{100 + i} Elm St.", "address_2": "", **_address(rng),
            "verified": True, "locked": rng.random() < 0.3,
            "created_at": created, "updated_at": min(SEED_END, created + rng.randrange(86400 * 30)),
        })
    subusers = [
        {"id": 5000 + i, "username": f"subuser{i}", "email": f"subuser{i}@example.com",
         "disabled": rng.random() < 0.1, "region": "eu" if i % 3 == 0 else "global"}
        for i in range(account.count("subusers", 0))
    ]
    account.data.update({"verified_senders": verified, "legacy_senders": legacy, "subusers": subusers})


@routes.get(r"/v3/verified_senders", scope=None)
def verified_senders(request: Request, account: Account) -> Response:
    """Style F: senders with an id after `lastSeenID`, `limit` of them (no default in the spec: 100 here)."""
    limit = int_arg(request, "limit", 100, 1)
    last_seen = int_arg(request, "lastSeenID", 0, 0)
    only = int_arg(request, "id", None, 1)
    with account.lock:
        selected = [s for s in account.data["verified_senders"] if s["id"] > last_seen and (only is None or s["id"] == only)]
    return Response(200, {"results": selected[:limit]})


@routes.get(r"/v3/senders", scope="marketing_campaigns.read", us_only=True, product="legacy_mc")
def legacy_senders(request: Request, account: Account) -> Response:
    with account.lock:
        return Response(200, {"result": [dict(s) for s in account.data["legacy_senders"]]})


@routes.get(r"/v3/subusers", scope="subusers.read", product="parent_account")
def subusers(request: Request, account: Account) -> Response:
    """Style A; `region` filters, `include_region=true` adds the region to each subuser."""
    region = request.arg("region", "all") or "all"
    if region not in REGIONS:
        raise BadRequest("region must be all, global or eu", "region")
    include_region = (request.arg("include_region") or "false").lower() == "true"
    username = request.arg("username")
    with account.lock:
        selected = [s for s in account.data["subusers"]
                    if (region == "all" or s["region"] == region) and (not username or s["username"].startswith(username))]
    page = offset_page(request, selected, default_limit=10, max_limit=500)
    return Response(200, [s if include_region else {k: v for k, v in s.items() if k != "region"} for s in page])


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    return {
        "verified_senders": [dict(s) for s in account.data["verified_senders"]],
        "legacy_senders": [{**s, "created_at": _iso(s["created_at"]), "updated_at": _iso(s["updated_at"])}
                           for s in account.data["legacy_senders"]],
        "subusers": [dict(s) for s in account.data["subusers"]],
    }


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """touch_legacy_sender: bump the first legacy senders' updated_at to now."""
    count = int(params.get("count", 1))
    if action == "touch_legacy_sender":
        now = int(time.time())
        for sender in account.data["legacy_senders"][:count]:
            sender["updated_at"] = now
        return {"touched": count}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
