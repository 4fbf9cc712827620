"""Legacy Marketing Campaigns (docs/endpoints.md#legacy-marketing-campaigns): the contact database (recipients, lists, segments, custom
and reserved fields) and legacy campaigns. US only, and only for accounts with the `legacy_mc` product.

Recipients sit in slots in the order they were added; a batch delete empties slots without moving the
others, so a page can come back empty (or short) before the end, as the spec warns. Past the last slot
the API answers 404, which is the only end-of-list signal.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Dict, List, Optional

from ..account import SEED_END, SEED_START, Account
from ..paging import int_arg, offset_page
from ..routing import Request, Response, Routes, error

FAMILY = "contactdb"
PRODUCT = "legacy_mc"
SCOPE = "marketing_campaigns.read"
SCOPES = [SCOPE]

routes = Routes()

CUSTOM_FIELDS = [
    {"id": 6234, "name": "age", "type": "number"},
    {"id": 6235, "name": "pet", "type": "text"},
    {"id": 6236, "name": "birthday", "type": "date"},
    {"id": 6237, "name": "score", "type": "number"},
]
RESERVED_FIELDS = [
    {"name": name, "type": kind}
    for name, kind in (("first_name", "text"), ("last_name", "text"), ("email", "text"), ("created_at", "date"),
                       ("updated_at", "date"), ("last_emailed", "date"), ("last_clicked", "date"),
                       ("last_opened", "date"), ("lists", "set"), ("campaigns", "set"))
]
RECIPIENT_TIMES = ("created_at", "updated_at", "last_clicked", "last_emailed", "last_opened")
# A slot is deleted before about one recipient in this many, so short pages occur before the end.
DELETED_SLOT_EVERY = 9


def default_counts(size: int) -> Dict[str, int]:
    return {
        "legacy_recipients": size,
        "legacy_lists": max(2, min(10, size // 15)),
        "legacy_segments": max(2, min(5, size // 30)),
        "legacy_campaigns": max(12, min(60, size // 4)),
        # Empty slots in one run after the first half of the recipients (whole empty pages before the end).
        "legacy_empty_run": 0,
    }


# --- seeding -----------------------------------------------------------------------------------

def recipient_id(email: str) -> str:
    """SendGrid's legacy recipient id: URL-safe base64 of the lower-cased address."""
    return base64.urlsafe_b64encode(email.lower().encode()).decode().rstrip("=")


def _custom_value(field: Dict[str, Any], rng) -> Optional[str]:
    """The spec types every value as a (nullable) string: dates are epoch seconds, numbers decimals, as text."""
    if rng.random() < 0.25:
        return None
    if field["type"] == "date":
        return str(rng.randrange(SEED_START, SEED_END))
    if field["type"] == "number":
        return str(rng.randrange(18, 90) if field["name"] == "age" else round(rng.uniform(0, 100), 2))
    return rng.choice(["Indiana", "Rex", "Tom", "Nemo"])


def _recipient(rng, index: int, created: int) -> Dict[str, Any]:
    email = f"Legacy{index}.{rng.randrange(10**6)}@example{index % 4}.com"
    updated = min(SEED_END, created + rng.randrange(0, 86400 * 90))
    engaged = rng.random() < 0.6
    return {
        "id": recipient_id(email),
        "email": email.lower(),
        "first_name": rng.choice([None, "Ada", "Grace", "Alan"]),
        "last_name": rng.choice([None, "Jones", "Smith"]),
        "created_at": created,
        "updated_at": updated,
        "last_clicked": updated if engaged and rng.random() < 0.5 else None,
        "last_emailed": updated if engaged else None,
        "last_opened": updated if engaged and rng.random() < 0.7 else None,
        "custom_fields": [{**field, "value": _custom_value(field, rng)} for field in CUSTOM_FIELDS],
    }


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    count = account.count("legacy_recipients", 0)
    created = sorted(rng.randrange(SEED_START, SEED_END) for _ in range(count))
    recipients: Dict[str, Dict[str, Any]] = {}
    slots: List[Optional[str]] = []
    empty_run = account.count("legacy_empty_run", 0)
    for index, moment in enumerate(created):
        if index == count // 2:
            slots.extend([None] * empty_run)
        if rng.randrange(DELETED_SLOT_EVERY) == 0:
            slots.append(None)
        record = _recipient(rng, index, moment)
        recipients[record["id"]] = record
        slots.append(record["id"])
    ids = list(recipients)
    lists = [{"id": 100 + i, "name": f"Legacy list {i}"} for i in range(account.count("legacy_lists", 2))]
    list_members = {item["id"]: [rid for rid in ids if rng.random() < 0.4] for item in lists}
    segments = []
    segment_members = {}
    for i in range(account.count("legacy_segments", 2)):
        base_list = lists[i % len(lists)]["id"] if lists and i % 2 == 0 else None
        segment = {"id": 500 + i, "name": f"Legacy segment {i}",
                   "conditions": [{"field": "last_name", "value": "Jones", "operator": "eq", "and_or": ""}]}
        if base_list is not None:
            segment["list_id"] = base_list
        segments.append(segment)
        pool = list_members[base_list] if base_list is not None else ids
        segment_members[segment["id"]] = [rid for rid in pool if rng.random() < 0.5]
    campaigns = []
    for i in range(account.count("legacy_campaigns", 0)):
        campaigns.append({
            "id": 986000 + i, "title": f"Newsletter {i}", "subject": f"News #{i}", "sender_id": 124451,
            "list_ids": [lists[i % len(lists)]["id"]] if lists else [], "segment_ids": [],
            "categories": [rng.choice(["spring line", "winter line"])], "suppression_group_id": 42,
            "custom_unsubscribe_url": "", "ip_pool": "marketing", "html_content": f"<p>Issue {i}</p>",
            "plain_content": f"Issue {i}", "editor": rng.choice(["code", "design"]),
            "status": rng.choice(["Draft", "Sent", "Scheduled"]),
        })
    account.data.update({
        "legacy_recipients": recipients, "legacy_slots": slots, "legacy_lists": lists,
        "legacy_list_members": list_members, "legacy_segments": segments,
        "legacy_segment_members": segment_members, "legacy_campaigns": campaigns,
    })


# --- API ---------------------------------------------------------------------------------------

def _page(request: Request, slots: List[Optional[str]], account: Account) -> Response:
    """Style D: 1-based `page`, `page_size` 1..1000 (default 100); 404 past the last slot."""
    page = int_arg(request, "page", 1, 1)
    size = int_arg(request, "page_size", 100, 1, 1000)
    start = (page - 1) * size
    if start >= len(slots) and page > 1:
        return error(404, "No more pages")
    recipients = account.data["legacy_recipients"]
    return Response(200, {"recipients": [recipients[rid] for rid in slots[start : start + size] if rid is not None]})


@routes.get(r"/v3/contactdb/recipients", scope=SCOPE, us_only=True, product=PRODUCT)
def list_recipients(request: Request, account: Account) -> Response:
    with account.lock:
        return _page(request, account.data["legacy_slots"], account)


def _list_body(account: Account, item: Dict[str, Any]) -> Dict[str, Any]:
    return {**item, "recipient_count": len(account.data["legacy_list_members"][item["id"]])}


def _segment_body(account: Account, item: Dict[str, Any]) -> Dict[str, Any]:
    return {**item, "recipient_count": len(account.data["legacy_segment_members"][item["id"]])}


@routes.get(r"/v3/contactdb/lists", scope=SCOPE, us_only=True, product=PRODUCT)
def list_lists(request: Request, account: Account) -> Response:
    with account.lock:
        return Response(200, {"lists": [_list_body(account, item) for item in account.data["legacy_lists"]]})


@routes.get(r"/v3/contactdb/lists/(\d+)", scope=SCOPE, us_only=True, product=PRODUCT)
def get_list(request: Request, account: Account) -> Response:
    with account.lock:
        for item in account.data["legacy_lists"]:
            if item["id"] == int(request.match[0]):
                return Response(200, _list_body(account, item))
    return error(404, "List ID does not exist")


@routes.get(r"/v3/contactdb/lists/(\d+)/recipients", scope=SCOPE, us_only=True, product=PRODUCT)
def list_members(request: Request, account: Account) -> Response:
    with account.lock:
        members = account.data["legacy_list_members"].get(int(request.match[0]))
        if members is None:
            return error(404, "Returned if list_id is invalid", "list_id")
        return _page(request, members, account)


@routes.get(r"/v3/contactdb/segments", scope=SCOPE, us_only=True, product=PRODUCT)
def list_segments(request: Request, account: Account) -> Response:
    with account.lock:
        return Response(200, {"segments": [_segment_body(account, item) for item in account.data["legacy_segments"]]})


@routes.get(r"/v3/contactdb/segments/(\d+)/recipients", scope=SCOPE, us_only=True, product=PRODUCT)
def segment_members(request: Request, account: Account) -> Response:
    with account.lock:
        members = account.data["legacy_segment_members"].get(int(request.match[0]))
        if members is None:
            return error(404, "segment_id not found", "segment_id")
        return _page(request, members, account)


@routes.get(r"/v3/contactdb/custom_fields", scope=SCOPE, us_only=True, product=PRODUCT)
def custom_fields(request: Request, account: Account) -> Response:
    return Response(200, {"custom_fields": [dict(field) for field in CUSTOM_FIELDS]})


@routes.get(r"/v3/contactdb/reserved_fields", scope=SCOPE, us_only=True, product=PRODUCT)
def reserved_fields(request: Request, account: Account) -> Response:
    return Response(200, {"reserved_fields": [dict(field) for field in RESERVED_FIELDS]})


@routes.get(r"/v3/campaigns", scope=SCOPE, us_only=True, product=PRODUCT)
def campaigns(request: Request, account: Account) -> Response:
    """Style B, newest first; `limit` defaults to 10 (the spec gives no maximum)."""
    with account.lock:
        newest_first = account.data["legacy_campaigns"][::-1]
        return Response(200, {"result": offset_page(request, newest_first, default_limit=10, max_limit=None)})


# --- ground truth and mutations ----------------------------------------------------------------

def _iso(epoch: Any) -> Optional[str]:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def _custom_text(field: Dict[str, Any]) -> Optional[str]:
    value = field["value"]
    if value is None:
        return None
    return _iso(value) if field["type"] == "date" else value


def connector_recipient(record: Dict[str, Any]) -> Dict[str, Any]:
    """A recipient as the connector emits it: RFC 3339 times, custom field values as text, and no
    top-level null fields (the Airbyte protocol's serializer leaves them out of a record)."""
    shaped = {**record, **{field: _iso(record[field]) for field in RECIPIENT_TIMES}}
    shaped["custom_fields"] = [{**field, "value": _custom_text(field)} for field in record["custom_fields"]]
    return {key: value for key, value in shaped.items() if value is not None}


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    recipients = account.data["legacy_recipients"]
    return {
        "legacy_contacts": [connector_recipient(recipients[rid]) for rid in account.data["legacy_slots"] if rid],
        "legacy_lists": [_list_body(account, item) for item in account.data["legacy_lists"]],
        "legacy_list_members": [
            {**connector_recipient(recipients[rid]), "list_id": list_id}
            for list_id, members in account.data["legacy_list_members"].items() for rid in members if rid
        ],
        "legacy_segments": [_segment_body(account, item) for item in account.data["legacy_segments"]],
        "legacy_segment_members": [
            {**connector_recipient(recipients[rid]), "segment_id": segment_id}
            for segment_id, members in account.data["legacy_segment_members"].items() for rid in members if rid
        ],
        "legacy_custom_fields": [dict(field) for field in CUSTOM_FIELDS],
        "legacy_reserved_fields": [dict(field) for field in RESERVED_FIELDS],
        "legacy_campaigns": list(account.data["legacy_campaigns"]),
    }


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """add: new recipients (on the first list); update: touch the oldest recipients; batch_delete: empty
    the slots of the oldest recipients; delete_list: drop a list and its memberships."""
    count = int(params.get("count", 1))
    now = int(time.time())
    rng = account.rng(f"{FAMILY}:mutate:{now}:{count}:{action}")
    recipients = account.data["legacy_recipients"]
    if action == "add":
        added = []
        for i in range(count):
            record = _recipient(rng, 10**7 + len(account.data["legacy_slots"]) + i, now)
            record["updated_at"] = now
            recipients[record["id"]] = record
            account.data["legacy_slots"].append(record["id"])
            added.append(record["id"])
        first_list = account.data["legacy_lists"][0]["id"]
        account.data["legacy_list_members"][first_list].extend(added)
        return {"added": added}
    if action == "update":
        touched = [rid for rid in account.data["legacy_slots"] if rid][:count]
        for rid in touched:
            recipients[rid]["updated_at"] = now
            recipients[rid]["last_name"] = "Updated"
        return {"updated": touched}
    if action == "batch_delete":
        gone = set()
        slots = account.data["legacy_slots"]
        for position, rid in enumerate(slots):
            if rid and len(gone) < count:
                gone.add(rid)
                slots[position] = None
        for members in list(account.data["legacy_list_members"].values()) + list(account.data["legacy_segment_members"].values()):
            members[:] = [rid for rid in members if rid not in gone]
        return {"deleted": sorted(gone)}
    if action == "delete_list":
        list_id = int(params["id"])
        account.data["legacy_lists"] = [item for item in account.data["legacy_lists"] if item["id"] != list_id]
        account.data["legacy_list_members"].pop(list_id, None)
        return {"deleted_list": list_id}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
