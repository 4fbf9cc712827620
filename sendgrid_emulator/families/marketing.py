"""Marketing Campaigns, current API (docs/endpoints.md#marketing-campaigns): contacts and their export jobs, lists, segments 2.0,
single sends, campaigns, marketing stats and link click stats, field definitions and marketing senders.

`/v3/marketing/campaigns` is not in SendGrid's spec (docs/sendgrid-behaviour.md#marketing). It answers as a live capture
shows (Airbyte's source-sendgrid `integration_tests/expected_records.jsonl`, stream `campaigns`): style C
paging under `result`, newest first, one short row per single send under the single send's id.

An export file has the columns of the one captured from a live account: reserved fields, custom fields
(upper-cased, as SendGrid writes the reserved ones) and CONTACT_ID, but no list or segment column; the
`membership_columns` export setting adds LIST_IDS and SEGMENT_IDS. Memberships are read through
`POST /v3/marketing/contacts/batch` (100 contact ids a request).

Export files are served by a second listener (another port, so another host) that behaves like S3 with
pre-signed URLs: it refuses a request carrying an `Authorization` header (400) and an expired link (403).
"""

from __future__ import annotations

import gzip
import operator
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

import orjson

from ..account import SEED_END, SEED_START, Account
from ..paging import page_token_page
from ..routing import BadRequest, Request, Response, Routes, error, write_body

FAMILY = "marketing"
PRODUCT = "new_mc"
SCOPES = ["marketing.read", "marketing.automation.read"]

routes = Routes()

# Reserved fields as the export's CSV header names them, in the order the file carries them.
RESERVED_TEXT = ("email", "first_name", "last_name", "address_line_1", "address_line_2", "city",
                 "state_province_region", "postal_code", "country", "phone_number", "whatsapp", "line",
                 "facebook", "unique_name")
CUSTOM_FIELDS = [
    {"id": "e1_N", "name": "num_orders", "field_type": "Number"},
    {"id": "e2_D", "name": "last_purchase", "field_type": "Date"},
    {"id": "e3_T", "name": "Tier", "field_type": "Text"},
    {"id": "e4_N", "name": "lifetime_value", "field_type": "Number"},
]
RESERVED_FIELDS = [
    {"id": f"_rf{i}_T", "name": name, "field_type": "Text", "read_only": name == "email"}
    for i, name in enumerate(RESERVED_TEXT + ("alternate_emails",))
] + [
    {"id": "_rf20_D", "name": "created_at", "field_type": "Date", "read_only": True},
    {"id": "_rf21_D", "name": "updated_at", "field_type": "Date", "read_only": True},
    {"id": "_rf22_T", "name": "contact_id", "field_type": "Text", "read_only": True},
]
# The export's CSV columns, in the order of a file captured from a live account (Airbyte's source-sendgrid
# unit_tests/decompressed_response.csv).
EXPORT_RESERVED = ("email", "first_name", "last_name", "address_line_1", "address_line_2", "city",
                   "state_province_region", "postal_code", "country", "alternate_emails", "phone_number", "whatsapp",
                   "line", "facebook", "unique_name", "created_at", "updated_at", "contact_id")
BATCH_MAX_IDS = 100
STAT_NAMES = ("bounce_drops", "bounces", "clicks", "delivered", "invalid_emails", "opens", "requests",
              "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens", "unsubscribes")
EXPORT_SECONDS = 3600


def default_counts(size: int) -> Dict[str, int]:
    return {
        "contacts": size,
        "marketing_lists": max(3, min(12, size // 15)),
        "segments": max(2, min(6, size // 30)),
        "singlesends": max(3, min(40, size // 5)),
        "automations": max(2, min(10, size // 20)),
        "marketing_senders": 3,
    }


# --- seeding -----------------------------------------------------------------------------------

def _uuid(rng) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(epoch: Optional[int]) -> Optional[str]:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _contact(rng, index: int, lists: List[str], segments: List[str], created: int, max_lists: int = 3) -> Dict[str, Any]:
    contact: Dict[str, Any] = {name: None for name in RESERVED_TEXT}
    contact.update({
        "id": _uuid(rng),
        "email": f"contact{index}.{rng.randrange(10**6)}@example{index % 5}.com",
        "first_name": rng.choice(["Ann", "Bo", "Chen", "Dana", "Émile", None]),
        "last_name": rng.choice(["Smith", "O'Neil", "Doe, Jr.", None]),
        "city": rng.choice(["Denver", "Paris", None]),
        "country": rng.choice(["US", "FR", None]),
        "postal_code": rng.choice(["80202", "75001", None]),
        "alternate_emails": [f"alt{index}@example.org"] if rng.random() < 0.3 else [],
        "list_ids": sorted(rng.sample(lists, rng.randrange(0, min(max_lists, len(lists)) + 1))),
        "segment_ids": sorted(rng.sample(segments, rng.randrange(0, min(2, len(segments)) + 1))),
        "custom_fields": {
            "num_orders": rng.choice([None, rng.randrange(0, 40)]),
            "last_purchase": rng.choice([None, _iso(rng.randrange(SEED_START, SEED_END) // 86400 * 86400)]),
            "Tier": rng.choice([None, "gold", "silver, plus"]),
            "lifetime_value": rng.choice([None, round(rng.uniform(0, 900), 2)]),
        },
        "created_at": created,
        "updated_at": created + rng.randrange(0, 86400 * 30),
    })
    return contact


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    lists = [{"id": _uuid(rng), "name": f"List {i}"} for i in range(account.count("marketing_lists", 3))]
    segments = []
    for i in range(account.count("segments", 2)):
        created = rng.randrange(SEED_START, SEED_END)
        segments.append({
            "id": _uuid(rng), "name": f"Segment {i}", "created_at": created, "updated_at": created + rng.randrange(86400 * 90),
            "parent_list_ids": [lists[i % len(lists)]["id"]] if i % 2 else [], "query_version": "2",
            "status": {"query_validation": "VALID"},
        })
    list_ids = [item["id"] for item in lists]
    segment_ids = [item["id"] for item in segments]
    # `max_lists_per_contact` (default 3) only for benchmarks that need more memberships per contact.
    max_lists = account.count("max_lists_per_contact", 3)
    contacts = [_contact(rng, i, list_ids, segment_ids, rng.randrange(SEED_START, SEED_END - 86400 * 31), max_lists)
                for i in range(account.count("contacts", 0))]
    singlesends = []
    for i in range(account.count("singlesends", 3)):
        created = rng.randrange(SEED_START, SEED_END)
        is_abtest = i % 4 == 0
        singlesends.append({
            "id": _uuid(rng), "name": f"Single send {i}", "status": rng.choice(["draft", "scheduled", "triggered"]),
            "categories": rng.sample(["shoes", "news", "promo"], rng.randrange(0, 3)), "send_at": _iso(created + 86400),
            "is_abtest": is_abtest, "abtest": _abtest(rng, is_abtest), "created_at": _iso(created),
            "updated_at": _iso(created + rng.randrange(86400 * 60)),
            # Only the detail endpoint has these.
            "send_to": {"list_ids": rng.sample(list_ids, 1), "segment_ids": [], "all": False},
            "email_config": {"subject": f"Hello {i}", "html_content": "<p>Hi</p>", "plain_content": "Hi",
                             "generate_plain_content": True, "editor": "code", "suppression_group_id": None,
                             "custom_unsubscribe_url": None, "sender_id": 1, "ip_pool": None},
            "warnings": [],
        })
    automations = [_uuid(rng) for _ in range(account.count("automations", 2))]
    account.data.update({
        "mc_lists": lists, "mc_segments": segments, "mc_contacts": contacts, "mc_singlesends": singlesends,
        "mc_ss_stats": [_stat_rows_singlesend(rng, s) for s in singlesends],
        "mc_automation_stats": [_stat_rows_automation(rng, a) for a in automations],
        "mc_senders": [_sender(rng, i) for i in range(account.count("marketing_senders", 3))],
        "mc_exports": {}, "mc_export_settings": dict(_DEFAULT_EXPORT_SETTINGS), "mc_download_log": [],
    })
    _seed_links(account)


def _stats(rng) -> Dict[str, int]:
    return {name: rng.randrange(0, 500) for name in STAT_NAMES}


def _stat_rows_singlesend(rng, singlesend: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = [{"id": singlesend["id"], "ab_variation": "all", "ab_phase": "all", "aggregation": "total", "stats": _stats(rng)}]
    if singlesend["is_abtest"]:
        for phase in ("test", "send"):
            rows.append({"id": singlesend["id"], "ab_variation": _uuid(rng), "ab_phase": phase, "aggregation": "total",
                         "stats": _stats(rng)})
    return rows


def _stat_rows_automation(rng, automation_id: str) -> List[Dict[str, Any]]:
    rows = [{"id": automation_id, "aggregation": "total", "step_id": "all", "stats": _stats(rng)}]
    rows += [{"id": automation_id, "aggregation": "total", "step_id": _uuid(rng), "stats": _stats(rng)} for _ in range(2)]
    return rows


def _sender(rng, index: int) -> Dict[str, Any]:
    created = rng.randrange(SEED_START, SEED_END)
    return {"id": 100 + index, "nickname": f"Sender {index}",
            "from": {"email": f"from{index}@example.com", "name": f"Shop {index}"},
            "reply_to": {"email": f"reply{index}@example.com", "name": ""}, "address": "1 Main St", "address_2": "",
            "city": "Denver", "state": "CO", "zip": "80202", "country": "United States", "verified": index != 2,
            "locked": False, "created_at": created, "updated_at": created + 3600}


# --- the API -----------------------------------------------------------------------------------

def _counted_lists(account: Account) -> List[Dict[str, Any]]:
    counts: Dict[str, int] = {}
    for contact in account.data["mc_contacts"]:
        for list_id in contact["list_ids"]:
            counts[list_id] = counts.get(list_id, 0) + 1
    return [{**item, "contact_count": counts.get(item["id"], 0)} for item in account.data["mc_lists"]]


def _counted_segments(account: Account) -> List[Dict[str, Any]]:
    counts: Dict[str, int] = {}
    for contact in account.data["mc_contacts"]:
        for segment_id in contact["segment_ids"]:
            counts[segment_id] = counts.get(segment_id, 0) + 1
    out = []
    for segment in account.data["mc_segments"]:
        out.append({**segment, "contacts_count": counts.get(segment["id"], 0), "created_at": _iso(segment["created_at"]),
                    "updated_at": _iso(segment["updated_at"]), "sample_updated_at": _iso(segment["updated_at"]),
                    "next_sample_update": _iso(segment["updated_at"] + 86400)})
    return out


def _with_self_link(item: Dict[str, Any], base_url: str) -> Dict[str, Any]:
    return {**item, "_metadata": {"self": f"{base_url}/v3/marketing/lists/{item['id']}"}}


@routes.get(r"/v3/marketing/lists", scope="marketing.read", us_only=True, product=PRODUCT)
def lists(request: Request, account: Account) -> Response:
    with account.lock:
        items = _counted_lists(account)
    page, metadata = page_token_page(request, items, default_size=100, max_size=1000)
    page = [_with_self_link(item, request.base_url) for item in page]
    return Response(200, {"result": page, "_metadata": metadata})


@routes.get(r"/v3/marketing/segments/2\.0", scope="marketing.read", us_only=True, product=PRODUCT)
def segments(request: Request, account: Account) -> Response:
    wanted = set(request.args("ids"))
    parents = set(request.args("parent_list_ids"))
    if len(parents) > 50:
        raise BadRequest("parent_list_ids allows at most 50 ids", "parent_list_ids")
    with account.lock:
        items = [s for s in _counted_segments(account)
                 if (not wanted or s["id"] in wanted) and (not parents or parents & set(s["parent_list_ids"]))]
    # What SendGrid really sends (docs/endpoints.md#segment-list-envelope), not the spec's single-segment schema.
    return Response(200, {"results": items, "_metadata": {"self": f"{request.base_url}{request.path}"}})


def _short_singlesend(item: Dict[str, Any]) -> Dict[str, Any]:
    return {key: item[key] for key in ("id", "name", "status", "categories", "send_at", "is_abtest", "created_at",
                                       "updated_at", "abtest")}


@routes.get(r"/v3/marketing/singlesends", scope="marketing.read", us_only=True, product=PRODUCT)
def singlesends(request: Request, account: Account) -> Response:
    with account.lock:
        items = [_short_singlesend(item) for item in account.data["mc_singlesends"]]
    page, metadata = page_token_page(request, items, default_size=100, max_size=100)
    return Response(200, {"result": page, "_metadata": metadata})


def _detail(item: Dict[str, Any]) -> Dict[str, Any]:
    return dict(item)


def _campaigns(account: Account) -> List[Dict[str, Any]]:
    """One row per single send, in the captured shape, newest first."""
    rows = [{"id": item["id"], "name": item["name"], "status": item["status"], "created_at": item["created_at"],
             "updated_at": item["updated_at"], "is_abtest": item["is_abtest"], "channels": ["email"]}
            for item in account.data["mc_singlesends"]]
    return sorted(rows, key=lambda row: (row["created_at"], row["id"]), reverse=True)


@routes.get(r"/v3/marketing/campaigns", scope="marketing.read", us_only=True, product=PRODUCT)
def campaigns(request: Request, account: Account) -> Response:
    with account.lock:
        items = _campaigns(account)
    page, metadata = page_token_page(request, items, default_size=100, max_size=100)
    return Response(200, {"result": page, "_metadata": metadata})


def _abtest(rng, is_abtest: bool) -> Optional[Dict[str, Any]]:
    # `abtest` is required and "nullable": null unless the single send is an A/B test.
    if not is_abtest:
        return None
    return {"type": "subject", "winner_criteria": "open", "test_percentage": 20, "duration": "1 day",
            "winning_template_id": "", "winner_selected_at": None, "expiration_date": None}


@routes.get(r"/v3/marketing/singlesends/([0-9a-f-]{36})", scope="marketing.read", us_only=True, product=PRODUCT)
def singlesend(request: Request, account: Account) -> Response:
    with account.lock:
        for item in account.data["mc_singlesends"]:
            if item["id"] == request.match[0]:
                return Response(200, _detail(item))
    return error(404, "not found")


def _stats_page(request: Request, rows: List[Dict[str, Any]], id_param: str) -> Response:
    ids = request.args(id_param)
    if len(ids) > 25:
        raise BadRequest(f"{id_param} allows at most 25 ids", id_param)
    selected = [row for row in rows if not ids or row["id"] in ids]
    page, metadata = page_token_page(request, selected, default_size=25, max_size=50)
    return Response(200, {"results": page, "_metadata": metadata})


@routes.get(r"/v3/marketing/stats/singlesends", scope="marketing.read", us_only=True, product=PRODUCT)
def singlesend_stats(request: Request, account: Account) -> Response:
    with account.lock:
        rows = [row for rows in account.data["mc_ss_stats"] for row in rows]
    return _stats_page(request, rows, "singlesend_ids")


@routes.get(r"/v3/marketing/stats/automations", scope="marketing.automation.read", us_only=True, product=PRODUCT)
def automation_stats(request: Request, account: Account) -> Response:
    with account.lock:
        rows = [row for rows in account.data["mc_automation_stats"] for row in rows]
    return _stats_page(request, rows, "automation_ids")


# --- link click stats ----------------------------------------------------------------------------

LINK_PAGES = ("https://example.com/", "https://example.com/shop?utm_source=sendgrid", "https://example.com/blog/news",
              "https://example.org/unsubscribe-preferences", "https://example.com/p/shoes?color=red&size=9")


def _links(rng, combos: List[tuple], count: int) -> List[Dict[str, Any]]:
    """Links of one message, topmost first, each with its clicks per combination (A/B variation and phase, or
    step); `count` links (0: a few). One URL sits at two places now and then, as a header and a footer link do."""
    pages = [f"https://example.com/item/{n}" for n in range(count)] if count else rng.sample(LINK_PAGES, rng.randrange(0, 4))
    if pages and rng.random() < 0.5:
        pages.insert(rng.randrange(len(pages) + 1), pages[0])
    return [{"url": url, "url_location": location, "clicks": {combo: rng.randrange(0, 40) for combo in combos}}
            for location, url in enumerate(pages)]


def _seed_links(account: Account) -> None:
    # A generator of their own, so the rest of the family's data stays what it was before links existed.
    rng = account.rng(f"{FAMILY}:links")
    count = account.count("links_per_message", 0)
    singlesend_links = {}
    for rows in account.data["mc_ss_stats"]:
        variations = [(row["ab_variation"], row["ab_phase"]) for row in rows if row["ab_variation"] != "all"]
        singlesend_links[rows[0]["id"]] = _links(rng, variations or [("all", "send")], count)
    automation_links = {}
    for rows in account.data["mc_automation_stats"]:
        steps = [row["step_id"] for row in rows if row["step_id"] != "all"]
        # Each step is its own message: its links are numbered from 0.
        automation_links[rows[0]["id"]] = [{**link, "step_id": step} for step in steps for link in _links(rng, [step], count)]
    account.data.update({"mc_ss_links": singlesend_links, "mc_automation_links": automation_links})


def _singlesend_link_rows(links: List[Dict[str, Any]], group_by: List[str], variation: Optional[str],
                          phase: Optional[str]) -> List[Dict[str, Any]]:
    """Clicks per link, summed over what the request neither groups by nor filters on (then `"all"`); links
    without clicks are not listed (the spec's `clicks` is at least 1)."""
    rows: Dict[tuple, Dict[str, Any]] = {}
    for link in links:
        for (ab_variation, ab_phase), clicks in link["clicks"].items():
            if (variation and ab_variation != variation) or (phase and ab_phase != phase):
                continue
            shown_variation = ab_variation if "ab_variation" in group_by or variation else "all"
            shown_phase = ab_phase if "ab_phase" in group_by or phase else "all"
            key = (link["url_location"], link["url"], shown_variation, shown_phase)
            row = rows.setdefault(key, {"url": link["url"], "url_location": link["url_location"],
                                        "ab_variation": shown_variation, "ab_phase": shown_phase, "clicks": 0})
            row["clicks"] += clicks
    return [row for _, row in sorted(rows.items()) if row["clicks"] > 0]


def _automation_link_rows(links: List[Dict[str, Any]], group_by: List[str], step_ids: List[str]) -> List[Dict[str, Any]]:
    rows: Dict[tuple, Dict[str, Any]] = {}
    for link in links:
        if step_ids and link["step_id"] not in step_ids:
            continue
        step = link["step_id"] if "step_id" in group_by else "all"
        key = (link["url_location"], link["url"], step)
        row = rows.setdefault(key, {"url": link["url"], "url_location": link["url_location"], "step_id": step, "clicks": 0})
        row["clicks"] += sum(link["clicks"].values())
    return [row for _, row in sorted(rows.items()) if row["clicks"] > 0]


def _group_by(request: Request, allowed: tuple) -> List[str]:
    group_by = request.args("group_by")
    unknown = [item for item in group_by if item not in allowed]
    if unknown:
        raise BadRequest(f"group_by must be among {', '.join(allowed)}", "group_by")
    return group_by


def _not_found(what: str) -> Response:
    # The spec's ErrorResponse types `field` as a string (its `nullable` is lost in 3.1): none is sent here.
    return Response(404, {"errors": [{"message": f"{what} not found"}]})


def _link_page(request: Request, rows: List[Dict[str, Any]]) -> Response:
    page, metadata = page_token_page(request, rows, default_size=25, max_size=50)
    return Response(200, {"results": page, "total_clicks": sum(row["clicks"] for row in rows), "_metadata": metadata})


@routes.get(r"/v3/marketing/stats/singlesends/([0-9a-f-]{36})/links", scope="marketing.read", us_only=True, product=PRODUCT)
def singlesend_link_stats(request: Request, account: Account) -> Response:
    group_by = _group_by(request, ("ab_variation", "ab_phase"))
    phase = request.arg("ab_phase_id")
    if phase not in (None, "test", "send"):
        raise BadRequest("ab_phase_id must be test or send", "ab_phase_id")
    with account.lock:
        links = account.data["mc_ss_links"].get(request.match[0])
        if links is None:
            return _not_found("single send")
        rows = _singlesend_link_rows(links, group_by, request.arg("ab_variation_id"), phase)
    return _link_page(request, rows)


@routes.get(r"/v3/marketing/stats/automations/([0-9a-f-]{36})/links", scope="marketing.automation.read", us_only=True, product=PRODUCT)
def automation_link_stats(request: Request, account: Account) -> Response:
    group_by = _group_by(request, ("step_id",))
    with account.lock:
        links = account.data["mc_automation_links"].get(request.match[0])
        if links is None:
            return _not_found("automation")
        rows = _automation_link_rows(links, group_by, request.args("step_ids"))
    return _link_page(request, rows)


@routes.get(r"/v3/marketing/field_definitions", scope="marketing.read", us_only=True, product=PRODUCT)
def field_definitions(request: Request, account: Account) -> Response:
    return Response(200, {"custom_fields": CUSTOM_FIELDS, "reserved_fields": RESERVED_FIELDS,
                          "_metadata": {"self": f"{request.base_url}{request.path}"}})


@routes.get(r"/v3/marketing/senders", scope="marketing.read", us_only=True, product=PRODUCT)
def senders(request: Request, account: Account) -> Response:
    with account.lock:
        return Response(200, {"results": list(account.data["mc_senders"])})


# --- export jobs -------------------------------------------------------------------------------

_DEFAULT_EXPORT_SETTINGS = {
    "polls_before_ready": 1,   # GETs of a job answered `pending` before it is `ready`
    "gzip": True,
    "json_style": "lines",     # file_type=json: "lines" (JSON lines) or "array"
    "fail_next": 0,            # this many new jobs end in a failure state
    "failure_status": "failure",
    "expire_next": 0,          # this many new jobs get download links that have already expired
    "rows_per_file": 5000,     # a larger export is split into several files
    "truncate_next_downloads": 0,  # this many downloads send half the file, then close the connection
    "search_timeouts_next": 0,   # this many contact searches answer 408, as a query running over 20 s
    "search_matches_nothing": False,  # a search index that has not caught up: every query matches no one
    "membership_columns": False,  # export files also carry LIST_IDS and SEGMENT_IDS (no live capture has them)
    # Broken jobs (each counts down like fail_next; none of them fails):
    "ready_without_urls_next": 0,  # this many jobs are ready without a download link
    "short_next": 0,               # this many jobs' files lack their last contact, which the job still counts
    "malformed_row_next": 0,       # this many jobs' first file has a row of 3 columns after its first row
    "rows_without_id_next": 0,     # this many jobs' first two contacts come without their contact id
}


@routes.post(r"/v3/marketing/contacts/exports", scope="marketing.read", us_only=True, product=PRODUCT)
def start_export(request: Request, account: Account) -> Response:
    body = request.json() or {}
    file_type = body.get("file_type", "csv")
    if file_type not in ("csv", "json"):
        raise BadRequest("file_type must be csv or json", "file_type")
    with account.lock:
        settings = account.data["mc_export_settings"]
        known_lists = {item["id"] for item in account.data["mc_lists"]}
        known_segments = {item["id"] for item in account.data["mc_segments"]}
        list_ids, segment_ids = body.get("list_ids") or [], body.get("segment_ids") or []
        if set(list_ids) - known_lists:
            raise BadRequest("list_ids contains an unknown list", "list_ids")
        if set(segment_ids) - known_segments:
            raise BadRequest("segment_ids contains an unknown segment", "segment_ids")
        contacts = [c for c in account.data["mc_contacts"]
                    if (not list_ids and not segment_ids) or set(c["list_ids"]) & set(list_ids)
                    or set(c["segment_ids"]) & set(segment_ids)]
        now = int(time.time())
        job_id = str(uuid.uuid4())
        failing = settings["fail_next"] > 0
        expired = settings["expire_next"] > 0 and not failing
        settings["fail_next"] -= failing
        settings["expire_next"] -= expired
        broken = {}
        for name in ("ready_without_urls_next", "short_next", "malformed_row_next", "rows_without_id_next"):
            broken[name] = settings[name] > 0 and not failing
            settings[name] -= broken[name]
        job = account.data["mc_exports"][job_id] = {
            "id": job_id, "created_at": now, "polls_left": settings["polls_before_ready"], "failing": failing,
            "failure_status": settings["failure_status"], "expires_at": now - 1 if expired else now + EXPORT_SECONDS,
            "contact_count": len(contacts), "list_ids": list_ids, "segment_ids": segment_ids, "files": [],
            "without_urls": broken["ready_without_urls_next"], "built": threading.Event(),
        }
        layout = (max(1, settings["rows_per_file"]), file_type, settings["json_style"], settings["gzip"],
                  settings["membership_columns"], broken["short_next"], broken["malformed_row_next"])
        # The files of unchanged contacts are kept: writing a million contacts takes the emulator half a minute,
        # time a benchmark would otherwise charge to the connector it measures (SendGrid writes on its servers).
        cache = account.data.setdefault("mc_export_files", {})
        key = None if any(broken.values()) else (account.data.get("mc_contacts_version", 0), tuple(list_ids),
                                                  tuple(segment_ids), layout)
        if key in cache:
            job["files"] = cache[key]
            job["built"].set()
        else:
            # The contacts as they are now (mutations change them in place); the files are written from this
            # copy outside the lock, as SendGrid builds an export while it goes on answering other endpoints.
            exported = [{**c, "id": "" if broken["rows_without_id_next"] and i < 2 else c["id"],
                         "list_ids": list(c["list_ids"]), "segment_ids": list(c["segment_ids"])}
                        for i, c in enumerate(contacts)]
            threading.Thread(target=_build_export_files, args=(job, cache, key, exported, *layout), daemon=True,
                             name=f"export {job_id}").start()
    return Response(202, {"id": job_id, "_metadata": {"self": f"{request.base_url}{request.path}/{job_id}"}})


def _build_export_files(job: Dict[str, Any], cache: Dict[Any, List[bytes]], key: Any, exported: List[Dict[str, Any]],
                        rows: int, file_type: str, json_style: str, gzipped: bool, membership_columns: bool,
                        short: bool, malformed: bool) -> None:
    """Write an export job's files; the job answers `ready` (and its files are served) only once they are."""
    try:
        chunks = [exported[i : i + rows] for i in range(0, len(exported), rows)] or [[]]
        if short:
            chunks[-1] = chunks[-1][:-1]
        files = [_export_file(chunk, file_type, json_style, gzipped, membership_columns) for chunk in chunks]
        if malformed:
            files[0] = _with_a_row_of_three_columns(files[0], gzipped)
        job["files"] = files
        if key is not None:
            cache[key] = files
    finally:
        job["built"].set()


@routes.get(r"/v3/marketing/contacts/exports/([0-9a-f-]{36})", scope="marketing.read", us_only=True, product=PRODUCT)
def export_status(request: Request, account: Account) -> Response:
    with account.lock:
        job = account.data["mc_exports"].get(request.match[0])
        if job is None:
            return error(404, "export not found")
        body = {"id": job["id"], "created_at": _iso(job["created_at"]), "updated_at": _iso(int(time.time())),
                "expires_at": _iso(job["expires_at"]), "_metadata": {"self": f"{request.base_url}{request.path}"}}
        if job["polls_left"] > 0:
            job["polls_left"] -= 1
            return Response(200, {**body, "status": "pending"})
        if job["failing"]:
            return Response(200, {**body, "status": job["failure_status"], "message": "export failed, please retry"})
        base = account.data.get("mc_download_base", "")
    job["built"].wait()
    with account.lock:
        urls = [f"{base}/exports/{job['id']}/{n}?X-Amz-Expires={job['expires_at']}&X-Amz-Signature=sig{n}"
                for n in range(len(job["files"]))] if not job["without_urls"] else []
        return Response(200, {**body, "status": "ready", "urls": urls, "contact_count": job["contact_count"],
                              "completed_at": _iso(job["created_at"])})


# --- contact search and count --------------------------------------------------------------------

_SGQL_COMPARISON = re.compile(r"\s*(created_at|updated_at)\s*(>=|<=|!=|=|>|<)\s*TIMESTAMP\s*(['\"])([^'\"]+)\3\s*", re.I)
_SGQL_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq,
                   "!=": operator.ne}


def _sgql_filter(query: str) -> Callable[[Dict[str, Any]], bool]:
    """The SGQL this emulator understands: time comparisons (`updated_at > TIMESTAMP '…'`) joined by AND.
    Anything else is refused as SendGrid refuses a query it cannot parse (400)."""
    tests = []
    for part in re.split(r"\s+AND\s+", query.strip(), flags=re.I):
        found = _SGQL_COMPARISON.fullmatch(part)
        if not found:
            raise BadRequest(f"invalid query: cannot parse {part.strip()[:60]!r}", "query")
        field_name, op, _, literal = found.groups()
        try:
            moment = datetime.fromisoformat(literal.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"invalid query: {literal!r} is not an ISO 8601 timestamp", "query") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        tests.append((field_name.lower(), _SGQL_OPERATORS[op], int(moment.timestamp())))
    return lambda contact: all(compare(contact[name], epoch) for name, compare, epoch in tests)


@routes.post(r"/v3/marketing/contacts/search", scope="marketing.read", us_only=True, product=PRODUCT)
def search_contacts(request: Request, account: Account) -> Response:
    query = (request.json() or {}).get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("query is required", "query")
    matches = _sgql_filter(query)
    with account.lock:
        settings = account.data["mc_export_settings"]
        if settings["search_timeouts_next"] > 0:
            settings["search_timeouts_next"] -= 1
            return error(408, "the query took longer than 20 seconds")
        found = [] if settings["search_matches_nothing"] else [c for c in account.data["mc_contacts"] if matches(c)]
        first = [_present(_contact_record(c)) for c in found[:50]]  # the spec types no field as nullable
    return Response(200, {"result": first, "contact_count": len(found),
                          "_metadata": {"self": f"{request.base_url}{request.path}"}})


@routes.post(r"/v3/marketing/contacts/batch", scope="marketing.read", us_only=True, product=PRODUCT)
def contacts_by_id(request: Request, account: Account) -> Response:
    """Up to 100 contacts by id, as full contact objects (with `list_ids` and `segment_ids`). Ids that are not
    contacts are left out; when none is, the answer is a 404 (the spec lists one, without saying when)."""
    ids = (request.json() or {}).get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(item, str) for item in ids):
        raise BadRequest("ids must be a non-empty array of contact id strings", "ids")
    if len(ids) > BATCH_MAX_IDS:
        raise BadRequest(f"ids allows at most {BATCH_MAX_IDS} ids", "ids")
    with account.lock:
        by_id = _contacts_by_id(account)
        found = [_present(_contact_record(by_id[item])) for item in dict.fromkeys(ids) if item in by_id]
    if not found:
        return error(404, "no contacts found for the given ids")
    self_url = f"{request.base_url}/v3/marketing/contacts"
    return Response(200, {"result": [{**contact, "_metadata": {"self": f"{self_url}/{contact['id']}"}} for contact in found]})


def _contacts_by_id(account: Account) -> Dict[str, Dict[str, Any]]:
    """Contacts by id, built once per change of the contacts (every mutation drops it)."""
    index = account.data.get("mc_contact_index")
    if index is None:
        index = account.data["mc_contact_index"] = {c["id"]: c for c in account.data["mc_contacts"]}
    return index


@routes.get(r"/v3/marketing/contacts/count", scope="marketing.read", us_only=True, product=PRODUCT)
def count_contacts(request: Request, account: Account) -> Response:
    with account.lock:
        total = len(account.data["mc_contacts"])
    return Response(200, {"contact_count": total, "billable_count": total})


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def _export_file(contacts: List[Dict[str, Any]], file_type: str, json_style: str, compress: bool,
                 membership_columns: bool = False) -> bytes:
    """One export file as SendGrid writes it: in CSV, every header and non-empty value double-quoted and an
    empty value left as nothing, reserved fields and custom fields upper-cased; in JSON, `contact_id` and
    custom fields by name under `custom_fields`. Lists and segments only with `membership_columns`."""
    custom_names = [field["name"] for field in CUSTOM_FIELDS]
    memberships = ("list_ids", "segment_ids") if membership_columns else ()
    if file_type == "csv":
        lines = [",".join(f'"{name.upper()}"' for name in EXPORT_RESERVED + memberships + tuple(custom_names))]
        for c in contacts:
            row = {**c, "contact_id": c["id"], "created_at": _iso(c["created_at"]), "updated_at": _iso(c["updated_at"])}
            values = [_csv_value(row[name]) for name in EXPORT_RESERVED + memberships]
            values += [_csv_value(c["custom_fields"][name]) for name in custom_names]
            lines.append(",".join('"%s"' % value.replace('"', '""') if value else "" for value in values))
        payload = ("\n".join(lines) + "\n").encode()
    else:
        objects = [{**{name: c[name] for name in RESERVED_TEXT}, "alternate_emails": c["alternate_emails"],
                    "created_at": _iso(c["created_at"]), "updated_at": _iso(c["updated_at"]), "contact_id": c["id"],
                    **{name: c[name] for name in memberships}, "custom_fields": c["custom_fields"]}
                   for c in contacts]
        if json_style == "array":
            payload = orjson.dumps(objects)
        else:
            payload = b"".join(orjson.dumps(o) + b"\n" for o in objects)
    return gzip.compress(payload, mtime=0) if compress else payload


def _with_a_row_of_three_columns(payload: bytes, compressed: bool) -> bytes:
    lines = (gzip.decompress(payload) if compressed else payload).split(b"\n")
    lines.insert(2, b"x,y,z")
    text = b"\n".join(lines)
    return gzip.compress(text, mtime=0) if compressed else text


# --- the download host -------------------------------------------------------------------------

def start(emulator: Any) -> None:
    """Serve export files from a listener of our own, on another port: another host for the client."""
    account = emulator.account
    server = ThreadingHTTPServer((emulator._host, 0), _download_handler(emulator))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sendgrid-emulator-downloads", daemon=True).start()
    host, port = server.server_address[:2]
    account.data["mc_download_server"] = server
    account.data["mc_download_base"] = f"http://{host}:{port}"
    # Lists link to themselves under the API's own address (`_metadata.self`): the truth needs it too.
    account.data["mc_api_base"] = emulator.url


def stop(emulator: Any) -> None:
    server = emulator.account.data.pop("mc_download_server", None)
    if server:
        server.shutdown()
        server.server_close()


def _download_handler(emulator: Any) -> type:
    """Files of ready export jobs. The emulator's fault plan applies here too when its `path_regex` matches
    `/exports/…` (S3 answers 503 "SlowDown" where the API would answer 429)."""
    account = emulator.account

    class Downloads(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            authorized = "Authorization" in self.headers
            account.data["mc_download_log"].append({"path": parts.path, "authorized": authorized, "at": time.time()})
            if authorized:
                # S3 refuses a pre-signed URL that also carries another authorization mechanism.
                return self._send(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>")
            fault = emulator.faults.draw(parts.path)
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if fault == "slow":
                time.sleep(emulator.faults.slow_seconds)
            if fault in ("429", "500", "502", "503"):
                return self._send(503 if fault == "429" else int(fault), b"<Error><Code>SlowDown</Code></Error>")
            if fault in ("html", "nonjson"):
                return self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
            pieces = parts.path.strip("/").split("/")
            with account.lock:
                job = account.data["mc_exports"].get(pieces[1]) if len(pieces) == 3 and pieces[0] == "exports" else None
                if job is None or not pieces[2].isdigit() or int(pieces[2]) >= len(job["files"]):
                    return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
                expires = int((parse_qs(parts.query).get("X-Amz-Expires") or ["0"])[0])
                if time.time() > expires:
                    return self._send(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
                payload = job["files"][int(pieces[2])]
                settings = account.data["mc_export_settings"]
                truncate = settings["truncate_next_downloads"] > 0
                settings["truncate_next_downloads"] -= truncate
                truncate = truncate or fault == "truncate"
            # A gzip file goes out as a gzip-encoded body, as SendGrid's do (docs/sendgrid-behaviour.md).
            encoding = "gzip" if payload[:2] == b"\x1f\x8b" else None
            self._send(200, payload, "application/octet-stream", truncate=truncate, encoding=encoding)

        def _send(self, status: int, payload: bytes, content_type: str = "application/xml", truncate: bool = False,
                  encoding: Optional[str] = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            write_body(self, payload, truncate)

    return Downloads


# --- ground truth and mutations ----------------------------------------------------------------

def _typed_custom(contact: Dict[str, Any]) -> Dict[str, Any]:
    return dict(contact["custom_fields"])


def _contact_record(contact: Dict[str, Any]) -> Dict[str, Any]:
    record = {name: contact[name] for name in RESERVED_TEXT}
    record.update({"id": contact["id"], "alternate_emails": list(contact["alternate_emails"]),
                   "list_ids": list(contact["list_ids"]), "segment_ids": list(contact["segment_ids"]),
                   "created_at": _iso(contact["created_at"]), "updated_at": _iso(contact["updated_at"]),
                   "custom_fields": _typed_custom(contact)})
    return record


def _present(record: Dict[str, Any]) -> Dict[str, Any]:
    """A record as Airbyte emits it: top-level nulls are left out of the record message."""
    return {key: value for key, value in record.items() if value is not None}


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    """What the connector must emit for each stream of this family, in the connector's record shape."""
    contacts = account.data["mc_contacts"]
    exported = [_contact_record(c) for c in contacts]
    if not account.data["mc_export_settings"]["membership_columns"]:
        # The export is the contacts stream's source, and without those columns it does not know them.
        exported = [{**record, "list_ids": None, "segment_ids": None} for record in exported]
    return {
        "contacts": [_present(record) for record in exported],
        "lists": [_with_self_link(item, account.data.get("mc_api_base", "")) for item in _counted_lists(account)],
        "list_members": [{"list_id": list_id, "contact_id": c["id"], "email": c["email"], "contact_updated_at": _iso(c["updated_at"])}
                         for c in contacts for list_id in c["list_ids"]],
        "segments": _counted_segments(account),
        "segment_members": [{"segment_id": sid, "contact_id": c["id"], "email": c["email"], "contact_updated_at": _iso(c["updated_at"])}
                            for c in contacts for sid in c["segment_ids"]],
        "singlesends": [_present(_detail(item)) for item in account.data["mc_singlesends"]],
        "campaigns": _campaigns(account),
        "singlesend_stats": [row for rows in account.data["mc_ss_stats"] for row in rows],
        "stats_automations": [row for rows in account.data["mc_automation_stats"] for row in rows],
        "singlesend_link_stats": [{"singlesend_id": singlesend_id, **row}
                                  for singlesend_id, links in account.data["mc_ss_links"].items()
                                  for row in _singlesend_link_rows(links, [], None, None)],
        "automation_link_stats": [{"automation_id": automation_id, **row}
                                  for automation_id, links in account.data["mc_automation_links"].items()
                                  for row in _automation_link_rows(links, [], [])],
        "field_definitions": [{**f, "reserved": False} for f in CUSTOM_FIELDS]
        + [{**f, "reserved": True} for f in RESERVED_FIELDS],
        "marketing_senders": [{**s, "created_at": _iso(s["created_at"]), "updated_at": _iso(s["updated_at"])}
                              for s in account.data["mc_senders"]],
    }


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """Contacts: add_contacts, update_contacts, remove_contacts, churn_lists (a member of every list leaves
    and a non-member joins: counts stay equal, and no contact's updated_at moves); export_settings."""
    account.data.pop("mc_contact_index", None)
    if action != "export_settings":
        account.data["mc_contacts_version"] = account.data.get("mc_contacts_version", 0) + 1
    count = int(params.get("count", 1))
    now = int(time.time())
    rng = account.rng(f"{FAMILY}:mutate:{now}:{count}:{action}:{len(account.data['mc_contacts'])}")
    contacts = account.data["mc_contacts"]
    list_ids = [item["id"] for item in account.data["mc_lists"]]
    segment_ids = [item["id"] for item in account.data["mc_segments"]]
    if action == "add_contacts":
        base = len(contacts) + 10**6
        added = [_contact(rng, base + i, list_ids, segment_ids, now) for i in range(count)]
        for contact in added:
            contact["updated_at"] = now
        contacts.extend(added)
        return {"added": [c["id"] for c in added]}
    if action == "update_contacts":  # updated_at: epoch seconds to date them (default: now)
        for contact in contacts[:count]:
            contact["first_name"] = f"Updated{now}"
            contact["updated_at"] = int(params.get("updated_at", now))
        return {"updated": [c["id"] for c in contacts[:count]]}
    if action == "remove_contacts":
        removed = [c["id"] for c in contacts[:count]]
        del contacts[:count]
        return {"removed": removed}
    if action == "churn_lists":
        moved = []
        for list_id in list_ids:
            inside = [c for c in contacts if list_id in c["list_ids"]]
            outside = [c for c in contacts if list_id not in c["list_ids"]]
            if inside and outside:
                inside[0]["list_ids"].remove(list_id)
                outside[0]["list_ids"] = sorted(outside[0]["list_ids"] + [list_id])
                moved.append({"list_id": list_id, "left": inside[0]["id"], "joined": outside[0]["id"]})
        return {"moved": moved}
    if action == "export_settings":
        unknown = set(params) - set(_DEFAULT_EXPORT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown export settings {sorted(unknown)}")
        account.data["mc_export_settings"].update(params)
        return dict(account.data["mc_export_settings"])
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
