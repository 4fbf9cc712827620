"""Subuser statistics and reputations (docs/endpoints.md#senders-and-subusers): daily counters per subuser for the last
`subuser_stats_days` days, their monthly sums, and each subuser's sender reputation. Parent accounts only.

The subusers are the `account` family's, so that family must be seeded first (listed before this one).
Days are counted back from the UTC date the emulator was seeded on, as in the `stats` family;
`mutate("subuser_stats", "late_counts")` adds late events to the newest days.

The monthly endpoint lists the subusers with activity in the month, sorted by `sort_by_metric`, `limit` of
them from `offset`. `monthly_page_cap` (a count; 0: none) makes it send at most that many whatever `limit`
asks, as a server with an undocumented largest page would.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Dict, List

from ..account import Account
from ..paging import int_arg
from ..routing import BadRequest, Request, Response, Routes
from .stats import GLOBAL_METRICS, _date_arg, _period_start

FAMILY = "subuser_stats"
PRODUCT = "parent_account"
SCOPES = ["subusers.stats.read", "subusers.stats.monthly.read", "subusers.reputations.read"]
# The metrics `sort_by_metric` may name (the spec's list).
SORTABLE = ("blocks", "bounces", "clicks", "delivered", "opens", "requests", "unique_clicks", "unique_opens", "unsubscribes")

routes = Routes()


def default_counts(size: int) -> Dict[str, int]:
    return {"subuser_stats_days": max(14, min(120, size)), "monthly_page_cap": 0}


def seed(account: Account) -> None:
    if "subusers" not in account.data:
        raise ValueError("the subuser_stats family needs the account family's subusers: list 'account' before it")
    rng = account.rng(FAMILY)
    today = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc).date()
    days = [today - dt.timedelta(days=n) for n in range(account.count("subuser_stats_days", 14) - 1, -1, -1)]
    names = [subuser["username"] for subuser in account.data["subusers"]]
    people = {name: {"first_name": rng.choice(["Ann", "Bo", "Chen", "Dana"]), "last_name": rng.choice(["Doe", "Smith", "Lee"])}
              for name in names}
    daily = {day.isoformat(): [{"type": "subuser", "name": name,
                                "metrics": {metric: rng.randrange(0, 300) for metric in GLOBAL_METRICS}}
                               for name in names if rng.random() < 0.85]
             for day in days}
    reputations = [{"username": name, "reputation": round(rng.uniform(40, 100), 1)} for name in names]
    account.data.update({"sub_stats": daily, "sub_stats:today": today, "sub_people": people, "sub_reputations": reputations})


def _daily(account: Account, names: List[str], start: dt.date, end: dt.date, aggregated_by: str) -> List[Dict[str, Any]]:
    """`[{date, stats}]`, every day (or week, month) of the range listed, with the named subusers' entries."""
    period_of = _period_start(aggregated_by)
    grouped: Dict[dt.date, Dict[str, Dict[str, Any]]] = {}
    day = start
    while day <= end:
        grouped.setdefault(max(period_of(day), start), {})
        day += dt.timedelta(days=1)
    for date_text, entries in account.data["sub_stats"].items():
        day = dt.date.fromisoformat(date_text)
        if not start <= day <= end:
            continue
        period = grouped[max(period_of(day), start)]
        for entry in entries:
            if entry["name"] not in names:
                continue
            slot = period.setdefault(entry["name"], {**entry, "metrics": dict.fromkeys(entry["metrics"], 0)})
            for metric, value in entry["metrics"].items():
                slot["metrics"][metric] += value
    return [{"date": day.isoformat(), "stats": list(stats.values())} for day, stats in sorted(grouped.items())]


def _month(account: Account, month: dt.date) -> List[Dict[str, Any]]:
    """The month's sums per subuser with activity in it, in the monthly endpoint's shape."""
    sums: Dict[str, Dict[str, int]] = {}
    for date_text, entries in account.data["sub_stats"].items():
        if dt.date.fromisoformat(date_text).replace(day=1) != month:
            continue
        for entry in entries:
            slot = sums.setdefault(entry["name"], dict.fromkeys(GLOBAL_METRICS, 0))
            for metric, value in entry["metrics"].items():
                slot[metric] += value
    return [{**account.data["sub_people"][name], "metrics": metrics, "name": name, "type": "subuser"}
            for name, metrics in sums.items()]


@routes.get(r"/v3/subusers/stats", scope="subusers.stats.read", product=PRODUCT)
def subuser_stats(request: Request, account: Account) -> Response:
    names = request.query.get("subusers", [])
    if not names:
        raise BadRequest("subusers is required", "subusers")
    if len(names) > 10:
        raise BadRequest("subusers: at most 10 may be given", "subusers")
    limit = int_arg(request, "limit", 500, 1)
    offset = int_arg(request, "offset", 0, 0)
    with account.lock:
        start = _date_arg(request, "start_date", None)
        end = _date_arg(request, "end_date", account.data["sub_stats:today"])
        if end < start:
            raise BadRequest("end_date must be after start_date", "end_date")
        body = _daily(account, names, start, end, request.arg("aggregated_by") or "day")
    return Response(200, body[offset : offset + limit])


@routes.get(r"/v3/subusers/stats/monthly", scope="subusers.stats.monthly.read", product=PRODUCT)
def subuser_monthly_stats(request: Request, account: Account) -> Response:
    month = _date_arg(request, "date", None).replace(day=1)
    metric = request.arg("sort_by_metric") or "delivered"
    if metric not in SORTABLE:
        raise BadRequest(f"sort_by_metric must be one of {', '.join(SORTABLE)}", "sort_by_metric")
    direction = request.arg("sort_by_direction") or "desc"
    if direction not in ("asc", "desc"):
        raise BadRequest("sort_by_direction must be asc or desc", "sort_by_direction")
    limit = int_arg(request, "limit", 5, 1)
    offset = int_arg(request, "offset", 0, 0)
    cap = account.count("monthly_page_cap", 0)
    if cap:
        limit = min(limit, cap)
    wanted = request.arg("subuser") or ""
    with account.lock:
        rows = [row for row in _month(account, month) if wanted in row["name"]]
    rows.sort(key=lambda row: row["name"])
    rows.sort(key=lambda row: row["metrics"][metric], reverse=direction == "desc")
    return Response(200, {"date": month.isoformat(), "stats": rows[offset : offset + limit]})


@routes.get(r"/v3/subusers/reputations", scope="subusers.reputations.read", product=PRODUCT)
def subuser_reputations(request: Request, account: Account) -> Response:
    wanted = set(request.args("usernames"))
    with account.lock:
        return Response(200, [dict(r) for r in account.data["sub_reputations"] if not wanted or r["username"] in wanted])


# --- ground truth and mutations ----------------------------------------------------------------

def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    """What the connector must emit for each stream of this family, in the connector's record shape."""
    daily = account.data["sub_stats"]
    months = sorted({dt.date.fromisoformat(date_text).replace(day=1) for date_text in daily})
    return {
        "subuser_stats": [{"date": date_text, "name": entry["name"], **entry["metrics"]}
                          for date_text, entries in daily.items() for entry in entries],
        "subuser_monthly_stats": [{"date": month.isoformat(), "name": row["name"], "first_name": row["first_name"],
                                   "last_name": row["last_name"], **row["metrics"]}
                                  for month in months for row in _month(account, month)],
        "subuser_reputations": [dict(r) for r in account.data["sub_reputations"]],
    }


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """late_counts: late events add `amount` to every counter of the newest `days` days (default 2)."""
    if action == "late_counts":
        days, amount = int(params.get("days", 2)), int(params.get("amount", 5))
        today = account.data["sub_stats:today"]
        changed = [(today - dt.timedelta(days=n)).isoformat() for n in range(days)]
        for date_text in changed:
            for entry in account.data["sub_stats"].get(date_text, []):
                entry["metrics"] = {metric: value + amount for metric, value in entry["metrics"].items()}
        return {"changed_days": changed}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
