"""Engagement Quality (SEQ, `original/tsg_seq_v3.json`) and bounce classification totals (docs/endpoints.md#suppressions).

SEQ scores exist for the last `seq_days` days, counted back from the UTC date the emulator was seeded on;
the newest `seq_pending_days` of them are not computed yet, and answer 202 as SendGrid does until
`mutate("engagement", "compute")`. Asked for a range, `/v3/engagementquality/scores` answers 200 with the
days it has computed (leaving the others out) and 202 when it has none of them. Dates further back than 90
days, or in the future, are a 400 with the spec's messages. Subusers' scores are for parent accounts only
(product "parent_account"; others answer 403). SendGrid documents no scope for these three endpoints: any
key may call them here.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Dict, List, Optional

from ..account import Account
from ..paging import int_arg
from ..routing import BadRequest, Request, Response, Routes

FAMILY = "engagement"
SCOPES: List[str] = []
METRICS = ("engagement_recency", "open_rate", "bounce_classification", "bounce_rate", "spam_rate")
CLASSIFICATIONS = ("Content", "Frequency or Volume Too High", "Invalid Address", "Mailbox Unavailable", "Reputation",
                   "Technical Failure", "Unclassified")
ACCOUNT_USER_ID, ACCOUNT_USERNAME = "7000", "emulated-parent"
# The spec's limit: "cannot be more than 90 days in the past".
SEQ_DAYS_KEPT = 90

routes = Routes()


def default_counts(size: int) -> Dict[str, int]:
    return {"seq_days": SEQ_DAYS_KEPT, "seq_pending_days": 2, "seq_subusers": max(3, min(40, size // 4)),
            "bounce_classification_days": max(14, min(400, size))}


def _today() -> dt.date:
    return dt.datetime.fromtimestamp(time.time(), dt.timezone.utc).date()


def _score(rng, user_id: str, username: str, day: str) -> Dict[str, Any]:
    """A score as SendGrid sends it; about one day in seven the user was not eligible (no score, no metrics)."""
    if rng.random() < 0.15:
        return {"date": day, "user_id": user_id}
    return {"date": day, "user_id": user_id, "username": username, "score": rng.randint(1, 5),
            "metrics": {name: rng.randint(1, 5) for name in METRICS}}


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    today = _today()
    seq_days = [(today - dt.timedelta(days=n)).isoformat() for n in range(account.count("seq_days", SEQ_DAYS_KEPT) - 1, -1, -1)]
    subusers = [(str(5000 + i), f"subuser{i}") for i in range(account.count("seq_subusers", 3))]
    bounce_days = [(today - dt.timedelta(days=n)).isoformat()
                   for n in range(account.count("bounce_classification_days", 14) - 1, -1, -1)]
    classifications: Dict[str, List[Dict[str, Any]]] = {}
    for day in bounce_days:
        if rng.random() < 0.1:
            continue  # a day without bounces is not in the answer
        counts = [{"classification": name, "count": rng.randrange(1, 200)} for name in CLASSIFICATIONS if rng.random() < 0.6]
        classifications[day] = counts
    pending = account.count("seq_pending_days", 2)
    account.data["seq"] = {
        "today": today,
        "account": {day: _score(rng, ACCOUNT_USER_ID, ACCOUNT_USERNAME, day) for day in seq_days},
        "subusers": {day: [_score(rng, user_id, username, day) for user_id, username in subusers] for day in seq_days},
        "pending": set(seq_days[len(seq_days) - pending:]) if pending else set(),
        "bounce_classifications": classifications,
    }


# --- request parsing, with the spec's 400 messages ---------------------------------------------

def _seq_day(request: Request, name: str) -> dt.date:
    raw = request.arg(name)
    if raw is None or raw == "":
        raise BadRequest(f'failed to parse request: "{name}" must be provided', name)
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f'failed to parse request: "{name}" invalid', name) from None
    today = _today()
    if day < today - dt.timedelta(days=SEQ_DAYS_KEPT):
        raise BadRequest(f'failed to parse request: "{name}" cannot be more than 90 days in the past', name)
    if day > today:
        raise BadRequest(f'failed to parse request: "{name}" cannot be in the future', name)
    return day


def _optional_day(request: Request, name: str) -> Optional[dt.date]:
    raw = request.arg(name)
    if raw is None or raw == "":
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be in format YYYY-MM-DD", name) from None


def _not_computed(with_body: bool) -> Response:
    """The spec gives the range's 202 a JSON content with no schema, and the subusers' 202 no content."""
    return Response(202, {} if with_body else None)


@routes.get(r"/v3/engagementquality/scores", scope=None)
def scores(request: Request, account: Account) -> Response:
    """The account's scores from `from` to `to`: the days computed, or a 202 when none of them is."""
    start, end = _seq_day(request, "from"), _seq_day(request, "to")
    if start > end:
        raise BadRequest('failed to parse request: "from" cannot come after "to"', "to")
    asked = {(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)}
    with account.lock:
        seq = account.data["seq"]
        if asked <= seq["pending"]:
            return _not_computed(with_body=True)
        days = sorted(day for day in asked if day in seq["account"] and day not in seq["pending"])
        return Response(200, {"result": [_copy(seq["account"][day]) for day in days]})


@routes.get(r"/v3/engagementquality/subusers/scores", scope=None, product="parent_account")
def subuser_scores(request: Request, account: Account) -> Response:
    """Every subuser's score for `date`, `limit` at a time in user id order after `after_key`."""
    day = _seq_day(request, "date").isoformat()
    try:
        limit = int_arg(request, "limit", 1000, 1, 1000)
    except BadRequest:
        raise BadRequest('failed to parse request: "limit" must be a positive integer', "limit") from None
    try:
        after = int_arg(request, "after_key", None)
    except BadRequest:
        raise BadRequest('failed to parse request: "after_key" invalid', "after_key") from None
    with account.lock:
        seq = account.data["seq"]
        if day in seq["pending"]:
            return _not_computed(with_body=False)
        selected = [s for s in seq["subusers"].get(day, []) if after is None or int(s["user_id"]) > after]
    page = selected[:limit]
    metadata: Dict[str, Any] = {}
    if len(selected) > limit:
        metadata["next_params"] = {"after_key": page[-1]["user_id"]}
    return Response(200, {"result": [_copy(score) for score in page], "_metadata": metadata})


@routes.get(r"/v3/suppression/bounces/classifications", scope=None)
def bounce_classifications(request: Request, account: Account) -> Response:
    """Per day from `start_date` to `end_date` (both optional, inclusive), the bounce totals per
    classification, largest first; days without bounces are left out."""
    start, end = _optional_day(request, "start_date"), _optional_day(request, "end_date")
    if start and end and end < start:
        raise BadRequest("end_date must be after start_date", "end_date")
    with account.lock:
        days = account.data["seq"]["bounce_classifications"]
        result = [{"date": day, "stats": sorted((dict(c) for c in counts), key=lambda c: -c["count"])}
                  for day, counts in sorted(days.items())
                  if (start is None or day >= start.isoformat()) and (end is None or day <= end.isoformat())]
    return Response(200, {"result": result})


def _copy(score: Dict[str, Any]) -> Dict[str, Any]:
    return {**score, **({"metrics": dict(score["metrics"])} if "metrics" in score else {})}


# --- ground truth and mutations ----------------------------------------------------------------

def _flat(score: Dict[str, Any]) -> Dict[str, Any]:
    """A score in the connector's record shape: metrics as columns."""
    return {**score.get("metrics", {}), **{key: value for key, value in score.items() if key != "metrics"}}


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    """What the connector must emit: the scores of every day computed so far, and every classification total."""
    seq = account.data["seq"]
    return {
        "engagement_quality_scores": [_flat(score) for day, score in seq["account"].items() if day not in seq["pending"]],
        "subuser_engagement_quality_scores": [_flat(score) for day, scores in seq["subusers"].items()
                                              if day not in seq["pending"] for score in scores],
        "bounce_classifications": [{"date": day, **count} for day, counts in seq["bounce_classifications"].items()
                                   for count in counts],
    }


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """compute: SendGrid computes the scores of the oldest `days` pending days (default all).
    late_bounces: `amount` more bounces (default 5) of every classification counted on the newest `days` days (default 1)."""
    seq = account.data["seq"]
    if action == "compute":
        pending = sorted(seq["pending"])
        computed = pending[: int(params.get("days", len(pending)))]
        seq["pending"] -= set(computed)
        return {"computed": computed}
    if action == "late_bounces":
        days, amount = int(params.get("days", 1)), int(params.get("amount", 5))
        changed = [(seq["today"] - dt.timedelta(days=n)).isoformat() for n in range(days)]
        for day in changed:
            counts = seq["bounce_classifications"].setdefault(day, [])
            present = {c["classification"] for c in counts}
            for count in counts:
                count["count"] += amount
            counts.extend({"classification": name, "count": amount} for name in CLASSIFICATIONS if name not in present)
        return {"changed_days": changed}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
