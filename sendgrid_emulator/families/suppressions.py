"""Suppressions (docs/endpoints.md#suppressions): the five suppression lists, unsubscribe groups and their members."""

from __future__ import annotations

import bisect
import time
from typing import Any, Dict, List

from ..account import SEED_END, SEED_START, Account
from ..paging import int_arg, offset_page
from ..routing import Request, Response, Routes, error

FAMILY = "suppressions"
LISTS = ("bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes")
# Stream name in the connector for each list.
STREAM_OF_LIST = {
    "bounces": "bounces",
    "blocks": "blocks",
    "spam_reports": "spam_reports",
    "invalid_emails": "invalid_emails",
    "unsubscribes": "global_suppressions",
}
SCOPES = [f"suppression.{name}.read" for name in LISTS] + ["asm.groups.read", "asm.groups.suppressions.read"]

routes = Routes()


def default_counts(size: int) -> Dict[str, int]:
    return {
        "suppressions_per_list": size,
        "suppression_groups": max(2, min(50, size // 20)),
        "group_members": size,
    }


def _record(list_name: str, index: int, created: int, rng) -> Dict[str, Any]:
    email = f"{list_name[:3]}{index}.{rng.randrange(10**6)}@example{index % 7}.com"
    record: Dict[str, Any] = {"created": created, "email": email}
    if list_name in ("bounces", "blocks"):
        record["reason"] = rng.choice(["550 5.1.1 The email account does not exist.", "error dialing remote address"])
        record["status"] = rng.choice(["5.1.1", "4.0.0", "5.0.0"])
    elif list_name == "invalid_emails":
        record["reason"] = "Mail domain mentioned in email address is unknown"
    elif list_name == "spam_reports":
        record["ip"] = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
    return record


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    per_list = account.count("suppressions_per_list", 0)
    for list_name in LISTS:
        created = sorted(rng.randrange(SEED_START, SEED_END) for _ in range(per_list))
        # Kept oldest first; served newest first, as SendGrid does.
        account.data[list_name] = [_record(list_name, i, c, rng) for i, c in enumerate(created)]
        account.data[f"{list_name}:created"] = created
    groups = [
        {"id": 1000 + i, "name": f"Group {i}", "description": f"Unsubscribe group {i}", "is_default": i == 0, "unsubscribes": 0}
        for i in range(account.count("suppression_groups", 2))
    ]
    members: Dict[int, Dict[str, int]] = {group["id"]: {} for group in groups}
    for i in range(account.count("group_members", 0)):
        group = groups[rng.randrange(len(groups))]
        members[group["id"]][f"member{i}@example.org"] = rng.randrange(SEED_START, SEED_END)
    account.data["asm_groups"] = groups
    account.data["asm_members"] = members


def _window(account: Account, list_name: str, request: Request) -> List[Dict[str, Any]]:
    records = account.data[list_name]
    start = int_arg(request, "start_time", None, 0)
    end = int_arg(request, "end_time", None, 0)
    keys = account.data[f"{list_name}:created"] if (start is not None or end is not None) else None
    low = bisect.bisect_left(keys, start) if keys is not None and start is not None else 0
    high = bisect.bisect_right(keys, end) if keys is not None and end is not None else len(records)
    selected = records[low:high]
    email = request.arg("email")
    if email:
        selected = [r for r in selected if r["email"].startswith(email)]
    return selected[::-1]


@routes.get(r"/v3/suppression/(bounces|blocks|spam_reports|invalid_emails|unsubscribes)", scope="suppression.{0}.read")
def suppression_list(request: Request, account: Account) -> Response:
    with account.lock:
        selected = _window(account, request.match[0], request)
    return Response(200, offset_page(request, selected, default_limit=500, max_limit=500))


def _group_body(account: Account, group: Dict[str, Any]) -> Dict[str, Any]:
    return {**group, "unsubscribes": len(account.data["asm_members"][group["id"]])}


@routes.get(r"/v3/asm/groups", scope="asm.groups.read")
def asm_groups(request: Request, account: Account) -> Response:
    wanted = {int(i) for i in request.args("id")}
    with account.lock:
        groups = [_group_body(account, g) for g in account.data["asm_groups"] if not wanted or g["id"] in wanted]
    return Response(200, groups)


@routes.get(r"/v3/asm/groups/(\d+)", scope="asm.groups.read")
def asm_group(request: Request, account: Account) -> Response:
    with account.lock:
        for group in account.data["asm_groups"]:
            if group["id"] == int(request.match[0]):
                return Response(200, _group_body(account, group))
    return error(404, "not found")


@routes.get(r"/v3/asm/groups/(\d+)/suppressions", scope="asm.groups.suppressions.read")
def asm_group_members(request: Request, account: Account) -> Response:
    with account.lock:
        members = account.data["asm_members"].get(int(request.match[0]))
        if members is None:
            return error(404, "not found")
        return Response(200, list(members))


@routes.get(r"/v3/asm/suppressions", scope="asm.groups.suppressions.read")
def asm_all_members(request: Request, account: Account) -> Response:
    with account.lock:
        names = {g["id"]: g["name"] for g in account.data["asm_groups"]}
        body = [
            {"email": email, "group_id": group_id, "group_name": names[group_id], "created_at": created}
            for group_id, members in account.data["asm_members"].items()
            for email, created in members.items()
        ]
    return Response(200, body)


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    """What the connector must emit for each stream of this family, in the connector's record shape."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for list_name, stream in STREAM_OF_LIST.items():
        out[stream] = [{**r, "created": _iso(r["created"])} for r in account.data[list_name]]
    out["suppression_groups"] = [_group_body(account, g) for g in account.data["asm_groups"]]
    names = {g["id"]: g["name"] for g in account.data["asm_groups"]}
    out["suppression_group_members"] = [
        {"email": email, "group_id": gid, "group_name": names[gid], "created_at": _iso(created)}
        for gid, members in account.data["asm_members"].items()
        for email, created in members.items()
    ]
    return out


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """add: new suppressions created now in every list, and new group members; remove: drop some."""
    count = int(params.get("count", 1))
    now = int(time.time())
    rng = account.rng(f"{FAMILY}:mutate:{now}:{count}:{action}")
    if action == "add":
        for list_name in LISTS:
            base = len(account.data[list_name])
            account.data[list_name].extend(_record(list_name, base + i + 10**7, now, rng) for i in range(count))
            account.data[f"{list_name}:created"].extend([now] * count)
        groups = account.data["asm_groups"]
        for i in range(count):
            group = groups[i % len(groups)]
            account.data["asm_members"][group["id"]][f"new{now}.{i}@example.org"] = now
        return {"added_per_list": count, "added_members": count}
    if action == "remove":
        for list_name in LISTS:
            del account.data[list_name][:count]
            del account.data[f"{list_name}:created"][:count]
        for members in account.data["asm_members"].values():
            for email in list(members)[:count]:
                del members[email]
        return {"removed_per_list": count}
    if action == "remove_newest":
        # The newest `count` suppressions of each list: they are served first, so deleting them shifts
        # every later offset page of a newest-first read.
        for list_name in LISTS:
            if count:
                del account.data[list_name][-count:]
                del account.data[f"{list_name}:created"][-count:]
        return {"removed_per_list": count}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
