"""Transactional templates of both generations, and every version of each.

`/v3/templates` returns only legacy templates unless asked for `generations=legacy,dynamic`, and it
refuses a request without `page_size` (docs/endpoints.md#templates, #templates-defaults). Its times are "YYYY-MM-DD HH:MM:SS" in
UTC without a zone; records carry them as RFC 3339.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..incremental import ChangedParentsSubStream, ClientFilteredStream
from ..pagination import PageTokenPager
from ..windows import normalize_time, record_time


def _with_rfc3339_updated_at(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**record, "updated_at": normalize_time(record.get("updated_at"))} if "updated_at" in record else dict(record)


class Templates(ClientFilteredStream):
    """Templates with their lean version list; incremental on `updated_at`, filtered client-side (the
    endpoint has no time filter). A deleted template disappears only in a full refresh."""

    path_template = "/v3/templates"
    records_key = ("result",)
    pager = PageTokenPager(page_size=200)
    static_params = {"generations": "legacy,dynamic"}
    required_scopes = ("templates.read",)
    cursor_field = "updated_at"

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        shaped = _with_rfc3339_updated_at(record)
        if isinstance(shaped.get("versions"), list):
            shaped["versions"] = [_with_rfc3339_updated_at(v) if isinstance(v, Mapping) else v for v in shaped["versions"]]
        return shaped


class TemplateVersions(ChangedParentsSubStream):
    """Every version of every template with its content, from the template detail (one call per template).

    Incremental: the template list gives each template's `updated_at` and its versions' own, so an incremental
    sync asks for the detail of only the templates changed since the state and emits all their versions. A
    deleted version or template disappears only in a full refresh."""

    parent = Templates
    cursor_field = "updated_at"
    parent_keys = {"id": "template_id"}
    path_template = "/v3/templates/{template_id}"
    records_key = ("versions",)
    primary_key = ["template_id", "id"]
    # The detail is gated by templates.read; SendGrid's read-only template permission adds versions.read.
    required_scopes = ("templates.read", "templates.versions.read")

    def parent_changed_at(self, record: Mapping[str, Any]) -> Optional[str]:
        versions = record.get("versions")
        listed = [record] + [v for v in versions if isinstance(v, Mapping)] if isinstance(versions, list) else [record]
        moments = [moment for moment in (record_time(item.get("updated_at")) for item in listed) if moment is not None]
        return max(moments) if moments else None

    def transform(self, record: Any, stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return _with_rfc3339_updated_at(record)
