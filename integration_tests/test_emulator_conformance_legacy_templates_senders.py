"""The emulator's legacy Marketing Campaigns, templates, senders and subusers endpoints answer as SendGrid's
OpenAPI spec says: bodies, pagination, limits and 400s, and 403 for an account without the product.

Spec defects met here (docs/endpoints.md#where-the-spec-is-wrong): list/segment recipients nest
`recipients` twice in the schema while the examples are flat (#legacy-recipient-envelopes: flat items still
validate, since the inner object's fields are all optional); `/v3/contactdb/recipients` items are untyped
(they are checked against the recipient schema by hand below); `/v3/templates` defaults to legacy templates
only and its times have no `T` and no zone (#templates-defaults). The spec declares no 404 for
`/v3/contactdb/recipients` although its text says to page until one: that response is checked without the
validator.
"""

import json

import pytest
import requests
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator

from sendgrid_emulator import secrets_guard
from integration_tests.conformance import SPEC_PATH, fetch_and_validate
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator


@pytest.fixture(scope="module")
def emulator():
    counts = {"legacy_recipients": 40, "legacy_empty_run": 2500, "legacy_campaigns": 23, "templates": 9,
              "verified_senders": 7, "subusers": 12}
    with Emulator(size=40, seed=3, counts=counts, families=["contactdb", "templates", "account"]) as running:
        yield running


def get(emulator, path, params=None, key=FULL_ACCESS_KEY):
    """A raw call (for answers the spec does not declare); the emulator is this test's API host."""
    secrets_guard.register_config({"api_base_url": emulator.url})
    return requests.get(emulator.url + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_recipients_page_by_number_with_an_empty_page_before_the_end_and_a_404_after_it(emulator):
    pages = []
    for page in range(1, 10):
        response = get(emulator, "/v3/contactdb/recipients", {"page": page, "page_size": 1000})
        if response.status_code == 404:
            break
        pages.append(fetch_and_validate(emulator, "GET", "/v3/contactdb/recipients", {"page": page, "page_size": 1000}).json())
    assert response.status_code == 404 and response.json()["errors"]
    assert [] in [p["recipients"] for p in pages[:-1]], "no empty page before the end"
    assert sum(len(p["recipients"]) for p in pages) == 40
    # docs/endpoints.md#legacy-recipient-envelopes: the items are untyped in this operation; hold them to the recipient schema of the list members
    # (OAS 3.0 rules, since the schema uses `nullable`, docs/endpoints.md#nullable-schemas).
    spec = json.loads(SPEC_PATH.read_text())
    recipient_schema = spec["components"]["schemas"]["ContactdbRecipient200"]["properties"]["recipients"]["items"]
    validator = OAS30Validator({**recipient_schema, "components": spec["components"]})
    for recipient in pages[0]["recipients"] + pages[-1]["recipients"]:
        validator.validate(recipient)
    with pytest.raises(ValidationError):  # the check can fail
        validator.validate({"email": "a@example.com", "created_at": "2024-01-01"})


def test_page_size_above_1000_is_a_400(emulator):
    assert get(emulator, "/v3/contactdb/recipients", {"page_size": 1001}).status_code == 400


def test_lists_segments_and_their_members_conform(emulator):
    lists = fetch_and_validate(emulator, "GET", "/v3/contactdb/lists").json()["lists"]
    first = lists[0]
    assert fetch_and_validate(emulator, "GET", f"/v3/contactdb/lists/{first['id']}").json() == first
    members = fetch_and_validate(emulator, "GET", f"/v3/contactdb/lists/{first['id']}/recipients",
                                 {"page": 1, "page_size": 1000}).json()["recipients"]
    assert len(members) == first["recipient_count"]
    assert get(emulator, "/v3/contactdb/lists/999999/recipients").status_code == 404
    segments = fetch_and_validate(emulator, "GET", "/v3/contactdb/segments").json()["segments"]
    seg_members = fetch_and_validate(emulator, "GET", f"/v3/contactdb/segments/{segments[0]['id']}/recipients",
                                     {"page": 1, "page_size": 1000}).json()["recipients"]
    assert len(seg_members) == segments[0]["recipient_count"]
    fetch_and_validate(emulator, "GET", "/v3/contactdb/custom_fields")
    fetch_and_validate(emulator, "GET", "/v3/contactdb/reserved_fields")


def test_campaigns_default_to_10_newest_first_and_page_by_offset(emulator):
    default = fetch_and_validate(emulator, "GET", "/v3/campaigns").json()["result"]
    assert len(default) == 10
    ids = [c["id"] for c in default]
    assert ids == sorted(ids, reverse=True)
    rest = fetch_and_validate(emulator, "GET", "/v3/campaigns", {"limit": 10, "offset": 20}).json()["result"]
    assert len(rest) == 3


def test_templates_need_page_size_default_to_legacy_and_page_by_token(emulator):
    missing = get(emulator, "/v3/templates")
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "page_size"
    assert get(emulator, "/v3/templates", {"page_size": 201}).status_code == 400
    legacy_only = fetch_and_validate(emulator, "GET", "/v3/templates", {"page_size": 200}).json()["result"]
    assert legacy_only and {t["generation"] for t in legacy_only} == {"legacy"}
    first = fetch_and_validate(emulator, "GET", "/v3/templates", {"page_size": 4, "generations": "legacy,dynamic"}).json()
    assert {t["generation"] for t in first["result"]} == {"legacy", "dynamic"}
    token = first["_metadata"]["next"].split("page_token=")[1]
    second = fetch_and_validate(emulator, "GET", "/v3/templates",
                                {"page_size": 4, "generations": "legacy,dynamic", "page_token": token}).json()
    assert not {t["id"] for t in first["result"]} & {t["id"] for t in second["result"]}
    detail = fetch_and_validate(emulator, "GET", f"/v3/templates/{first['result'][0]['id']}").json()
    assert detail["versions"] and "html_content" in detail["versions"][0]


def test_verified_senders_page_by_last_seen_id(emulator):
    first = fetch_and_validate(emulator, "GET", "/v3/verified_senders", {"limit": 4}).json()["results"]
    rest = fetch_and_validate(emulator, "GET", "/v3/verified_senders", {"limit": 4, "lastSeenID": first[-1]["id"]}).json()["results"]
    assert len(first) == 4 and len(rest) == 3 and rest[0]["id"] > first[-1]["id"]


def test_legacy_senders_and_subusers_conform(emulator):
    fetch_and_validate(emulator, "GET", "/v3/senders")
    with_region = fetch_and_validate(emulator, "GET", "/v3/subusers", {"limit": 5, "offset": 10, "include_region": "true"}).json()
    assert len(with_region) == 2 and all("region" in s for s in with_region)
    assert all("region" not in s for s in fetch_and_validate(emulator, "GET", "/v3/subusers").json())


def test_an_account_without_the_product_answers_403():
    with Emulator(size=10, families=["contactdb", "account"], products={"new_mc"}) as new_only:
        for path in ("/v3/contactdb/recipients", "/v3/campaigns", "/v3/senders", "/v3/subusers"):
            response = get(new_only, path)
            assert response.status_code == 403, path
        assert get(new_only, "/v3/verified_senders").status_code == 200
