"""Email statistics (docs/endpoints.md#email-statistics): daily counters per dimension for the last `stats_days` days, and categories.

The spec says the five advanced statistics (mailbox providers, browsers, devices, clients, geo) keep 7 days
of activity; nothing shows SendGrid enforcing it, and the connector asks for every day either way, so every
dimension here serves every seeded day alike.

Days are counted back from the UTC date the emulator was seeded on, so a sync "today" always finds recent,
still-changing counters (`mutate("stats", "late_counts")` adds late events to the newest days).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Dict, List, Optional

from ..account import Account
from ..paging import offset_page
from ..routing import BadRequest, Request, Response, Routes

FAMILY = "stats"
SCOPES = [
    "stats.global.read", "categories.read", "categories.stats.read", "mailbox_providers.stats.read",
    "browsers.stats.read", "devices.stats.read", "clients.stats.read", "geo.stats.read",
]
GLOBAL_METRICS = (
    "blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered", "invalid_emails", "opens", "processed",
    "requests", "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens", "unsubscribe_drops", "unsubscribes",
)
MAILBOX_METRICS = ("blocks", "bounces", "clicks", "deferred", "delivered", "drops", "opens", "processed", "requests",
                   "spam_reports", "unique_clicks", "unique_opens")


class Dimension:
    """One `/v3/<x>/stats` endpoint: its segment type, names, counters, and the stream the connector emits."""

    def __init__(self, stream: str, kind: str, names: tuple, metrics: tuple, filter_param: Optional[str] = None):
        self.stream, self.kind, self.names, self.metrics = stream, kind, names, metrics
        self.filter_param = filter_param


DIMENSIONS = {
    "mailbox_providers": Dimension("mailbox_provider_stats", "mailbox_provider",
                                   ("Gmail", "Yahoo", "Outlook.com", "AOL", "iCloud", "Comcast"), MAILBOX_METRICS,
                                   filter_param="mailbox_providers"),
    "browsers": Dimension("browser_stats", "browser", ("Chrome", "Firefox", "Safari", "Edge", "Opera"),
                          ("clicks", "unique_clicks"), filter_param="browsers"),
    "devices": Dimension("device_stats", "device", ("Desktop", "Webmail", "Phone", "Tablet", "Other"),
                         ("opens", "unique_opens")),
    "clients": Dimension("client_stats", "client", ("Gmail", "Apple Mail", "Outlook", "Yahoo Mail", "Thunderbird"),
                         ("opens", "unique_opens")),
    "geo": Dimension("geo_stats", "province", ("TX", "CA", "NY", "FL", "WA", "IL", "ON", "QC", "BC", "AB"),
                     ("clicks", "opens", "unique_clicks", "unique_opens")),
}
CANADIAN_PROVINCES = {"ON", "QC", "BC", "AB"}
CATEGORY = Dimension("category_stats", "category", (), GLOBAL_METRICS)

routes = Routes()


def default_counts(size: int) -> Dict[str, int]:
    return {"stats_days": max(14, min(400, size)), "categories": max(3, min(30, size // 5))}


def _category_names(count: int) -> List[str]:
    # A few names with characters that must be URL-encoded in a repeated query parameter.
    special = ["weekly news & deals", "receipts/orders", "password reset"]
    return [special[i] if i < len(special) else f"category {i:02d}" for i in range(count)]


def _metrics(rng, names: tuple) -> Dict[str, int]:
    return {name: rng.randrange(0, 400) for name in names}


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    today = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc).date()
    days = [today - dt.timedelta(days=n) for n in range(account.count("stats_days", 14) - 1, -1, -1)]
    categories = _category_names(account.count("categories", 3))
    data: Dict[str, Dict[str, List[Dict[str, Any]]]] = {"global": {}, "categories": {}}
    for day in days:
        data["global"][day.isoformat()] = [{"metrics": _metrics(rng, GLOBAL_METRICS)}]
        data["categories"][day.isoformat()] = _entries(rng, CATEGORY, categories)
    for key, dimension in DIMENSIONS.items():
        data[key] = {day.isoformat(): _entries(rng, dimension, dimension.names) for day in days}
    account.data["stats"] = data
    account.data["stats:today"] = today
    account.data["stats:categories"] = categories


def _entries(rng, dimension: Dimension, names) -> List[Dict[str, Any]]:
    # Not every segment has activity every day.
    return [{"type": dimension.kind, "name": name, "metrics": _metrics(rng, dimension.metrics)}
            for name in names if rng.random() < 0.85]


# --- request parsing, like SendGrid's 400s ------------------------------------------------------

def _date_arg(request: Request, name: str, default: Optional[dt.date]) -> dt.date:
    raw = request.arg(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequest(f"{name} is required", name)
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be in format YYYY-MM-DD", name) from None


def _period_start(aggregated_by: str) -> Callable[[dt.date], dt.date]:
    if aggregated_by == "day":
        return lambda day: day
    if aggregated_by == "week":
        return lambda day: day - dt.timedelta(days=day.weekday())
    if aggregated_by == "month":
        return lambda day: day.replace(day=1)
    raise BadRequest("aggregated_by must be day, week or month", "aggregated_by")


def _select(account: Account, key: str, request: Request, keep: Callable[[Dict[str, Any]], bool] = lambda e: True,
            paged: bool = True) -> List[Dict[str, Any]]:
    """The `[{date, stats}]` body for a date range, aggregated and paged as asked."""
    today = account.data["stats:today"]
    start = _date_arg(request, "start_date", None)
    end = _date_arg(request, "end_date", today)
    if end < start:
        raise BadRequest("end_date must be after start_date", "end_date")
    period_of = _period_start(request.arg("aggregated_by") or "day")
    grouped: Dict[dt.date, Dict[Any, Dict[str, Any]]] = {}
    for date_text, entries in account.data["stats"][key].items():
        day = dt.date.fromisoformat(date_text)
        if not start <= day <= end:
            continue
        period = grouped.setdefault(max(period_of(day), start), {})
        for entry in entries:
            if not keep(entry):
                continue
            slot = period.setdefault((entry.get("type"), entry.get("name")),
                                     {**entry, "metrics": dict.fromkeys(entry["metrics"], 0)})
            for metric, value in entry["metrics"].items():
                slot["metrics"][metric] += value
    body = [{"date": day.isoformat(), "stats": list(stats.values())} for day, stats in sorted(grouped.items())]
    if not paged:
        return body
    return offset_page(request, body, default_limit=500, max_limit=None)


def _names_filter(request: Request, param: Optional[str]) -> Callable[[Dict[str, Any]], bool]:
    wanted = request.args(param) if param else []
    if len(wanted) > 10:
        raise BadRequest(f"{param}: at most 10 may be given", param)
    return (lambda entry: entry["name"] in wanted) if wanted else (lambda entry: True)


@routes.get(r"/v3/stats", scope="stats.global.read")
def global_stats(request: Request, account: Account) -> Response:
    with account.lock:
        return Response(200, _select(account, "global", request))


@routes.get(r"/v3/categories", scope="categories.read")
def categories(request: Request, account: Account) -> Response:
    prefix = request.arg("category") or ""
    with account.lock:
        names = [name for name in account.data["stats:categories"] if name.startswith(prefix)]
    return Response(200, [{"category": name} for name in offset_page(request, names, default_limit=50, max_limit=None)])


@routes.get(r"/v3/categories/stats", scope="categories.stats.read")
def category_stats(request: Request, account: Account) -> Response:
    wanted = request.query.get("categories", [])
    if not wanted:
        raise BadRequest("categories is required", "categories")
    if len(wanted) > 10:
        raise BadRequest("categories: at most 10 may be given", "categories")
    with account.lock:
        return Response(200, _select(account, "categories", request, lambda entry: entry["name"] in wanted, paged=False))


def _dimension_route(key: str, path: str, scope: str, us_only: bool = False, paged: bool = True) -> None:
    dimension = DIMENSIONS[key]

    def handler(request: Request, account: Account) -> Response:
        keep = _names_filter(request, dimension.filter_param)
        if key == "geo":
            country = request.arg("country")
            if country not in (None, "US", "CA"):
                raise BadRequest("country must be US or CA", "country")
            if country:
                in_country = (lambda e: e["name"] in CANADIAN_PROVINCES) if country == "CA" else (lambda e: e["name"] not in CANADIAN_PROVINCES)
                keep = in_country
        with account.lock:
            return Response(200, _select(account, key, request, keep, paged=paged))

    routes.get(path, scope=scope, us_only=us_only)(handler)


_dimension_route("mailbox_providers", r"/v3/mailbox_providers/stats", "mailbox_providers.stats.read")
_dimension_route("browsers", r"/v3/browsers/stats", "browsers.stats.read")
_dimension_route("devices", r"/v3/devices/stats", "devices.stats.read")
_dimension_route("clients", r"/v3/clients/stats", "clients.stats.read", paged=False)
_dimension_route("geo", r"/v3/geo/stats", "geo.stats.read", us_only=True)


# --- ground truth and mutations ----------------------------------------------------------------

def _flatten(days: Dict[str, List[Dict[str, Any]]], with_dimension: bool = True) -> List[Dict[str, Any]]:
    rows = []
    for date_text, entries in days.items():
        for entry in entries:
            dimension = {"type": entry.get("type"), "name": entry.get("name")} if with_dimension else {}
            rows.append({"date": date_text, **dimension, **entry["metrics"]})
    return rows


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    """What the connector must emit for each stream of this family, in the connector's record shape."""
    data = account.data["stats"]
    out = {
        "global_stats": _flatten(data["global"], with_dimension=False),
        "category_stats": _flatten(data["categories"]),
        "categories": [{"category": name} for name in account.data["stats:categories"]],
    }
    for key, dimension in DIMENSIONS.items():
        out[dimension.stream] = _flatten(data[key])
    return out


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """late_counts: late events add `amount` to every counter of the newest `days` days (default 2)."""
    if action == "late_counts":
        days, amount = int(params.get("days", 2)), int(params.get("amount", 5))
        today = account.data["stats:today"]
        changed = [(today - dt.timedelta(days=n)).isoformat() for n in range(days)]
        for per_day in account.data["stats"].values():
            for date_text in changed:
                for entry in per_day.get(date_text, []):
                    entry["metrics"] = {metric: value + amount for metric, value in entry["metrics"].items()}
        return {"changed_days": changed}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
