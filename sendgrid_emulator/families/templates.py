"""Transactional templates (docs/endpoints.md#templates): legacy and dynamic templates and their versions.

As the spec says, `GET /v3/templates` returns only legacy templates unless `generations` asks for more,
and answers 400 without `page_size` (1..200). Times are "YYYY-MM-DD HH:MM:SS" in UTC, without a zone.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Dict, List

from ..account import SEED_END, SEED_START, Account
from ..paging import page_token_page
from ..routing import BadRequest, Request, Response, Routes, error

FAMILY = "templates"
SCOPES = ["templates.read", "templates.versions.read"]
GENERATIONS = {"legacy": ("legacy",), "dynamic": ("dynamic",), "legacy,dynamic": ("legacy", "dynamic")}
LEAN_VERSION_FIELDS = ("id", "template_id", "active", "name", "subject", "updated_at", "generate_plain_content",
                       "editor", "thumbnail_url")

routes = Routes()


def default_counts(size: int) -> Dict[str, int]:
    return {"templates": max(4, min(40, size // 3))}


def _stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _uuid(rng) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _template(rng, index: int, moment: int, generation: str) -> Dict[str, Any]:
    template_id = _uuid(rng)
    versions = []
    for number in range(1 + rng.randrange(3)):
        version = {
            "id": _uuid(rng), "template_id": template_id, "active": 1 if number == 0 else 0,
            "name": f"Version {number}", "subject": f"Subject {index}.{number}",
            "html_content": f"<p>Hello {{{{name}}}} {index}.{number}</p>", "plain_content": f"Hello {index}.{number}",
            "generate_plain_content": rng.random() < 0.5, "editor": rng.choice(["code", "design"]),
            "updated_at": _stamp(moment - number * 3600),
            "thumbnail_url": f"https://thumbnails.example.com/{template_id}/{number}.png",
        }
        if generation == "dynamic":
            version["test_data"] = '{"name": "Ada"}'
        versions.append(version)
    return {"id": template_id, "name": f"Template {index}", "generation": generation,
            "updated_at": _stamp(moment), "versions": versions}


def seed(account: Account) -> None:
    rng = account.rng(FAMILY)
    account.data["templates"] = [
        _template(rng, i, rng.randrange(SEED_START, SEED_END), "dynamic" if i % 2 else "legacy")
        for i in range(account.count("templates", 4))
    ]


def _lean(template: Dict[str, Any]) -> Dict[str, Any]:
    versions = [{field: version[field] for field in LEAN_VERSION_FIELDS} for version in template["versions"]]
    return {**template, "versions": versions}


@routes.get(r"/v3/templates", scope="templates.read")
def list_templates(request: Request, account: Account) -> Response:
    generations = GENERATIONS.get(request.arg("generations", "legacy") or "legacy")
    if generations is None:
        raise BadRequest("generations must be legacy, dynamic or legacy,dynamic", "generations")
    with account.lock:
        selected = [_lean(t) for t in account.data["templates"] if t["generation"] in generations]
    page, metadata = page_token_page(request, selected, default_size=200, max_size=200, required=True)
    return Response(200, {"result": page, "_metadata": metadata})


@routes.get(r"/v3/templates/([0-9a-f-]{36})", scope="templates.read")
def get_template(request: Request, account: Account) -> Response:
    with account.lock:
        for template in account.data["templates"]:
            if template["id"] == request.match[0]:
                return Response(200, template)
    return error(404, "Resource not found")


def _rfc3339(stamp: str) -> str:
    return stamp.replace(" ", "T") + "Z"


def truth(account: Account) -> Dict[str, List[Dict[str, Any]]]:
    templates, versions = [], []
    for template in account.data["templates"]:
        lean = _lean(template)
        lean["updated_at"] = _rfc3339(lean["updated_at"])
        lean["versions"] = [{**v, "updated_at": _rfc3339(v["updated_at"])} for v in lean["versions"]]
        templates.append(lean)
        versions.extend({**v, "updated_at": _rfc3339(v["updated_at"])} for v in template["versions"])
    return {"templates": templates, "template_versions": versions}


def mutate(account: Account, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """add: new dynamic templates updated now; touch: bump the first templates' updated_at; delete: drop one by id."""
    count = int(params.get("count", 1))
    now = int(time.time())
    rng = account.rng(f"{FAMILY}:mutate:{now}:{count}:{action}")
    templates = account.data["templates"]
    if action == "add":
        added = [_template(rng, 10**6 + len(templates) + i, now, "dynamic") for i in range(count)]
        templates.extend(added)
        return {"added": [t["id"] for t in added]}
    if action == "touch":
        for template in templates[:count]:
            template["updated_at"] = _stamp(now)
        return {"touched": [t["id"] for t in templates[:count]]}
    if action == "delete":
        account.data["templates"] = [t for t in templates if t["id"] != params["id"]]
        return {"deleted": params["id"]}
    raise ValueError(f"unknown action {action!r} for {FAMILY}")
