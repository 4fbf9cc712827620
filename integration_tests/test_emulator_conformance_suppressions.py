"""The emulator's suppression endpoints answer as SendGrid's OpenAPI spec says (bodies, errors, pagination limits)."""

import pytest
import requests
from openapi_core.validation.response.exceptions import ResponseValidationError

from integration_tests.conformance import fetch_and_validate, validate
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator


@pytest.fixture(scope="module")
def emulator():
    with Emulator(size=30, seed=5, families=["suppressions"]) as running:
        yield running


@pytest.mark.parametrize("name", ["bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes"])
def test_suppression_lists_conform_and_page_by_offset(emulator, name):
    first = fetch_and_validate(emulator, "GET", f"/v3/suppression/{name}", {"limit": 20, "offset": 0})
    rest = fetch_and_validate(emulator, "GET", f"/v3/suppression/{name}", {"limit": 20, "offset": 20})
    assert len(first.json()) == 20 and len(rest.json()) == 10
    emails = [r["email"] for r in first.json() + rest.json()]
    assert len(set(emails)) == 30


@pytest.mark.parametrize("name", ["bounces", "blocks"])
def test_time_filters_are_inclusive_on_created(emulator, name):
    everything = fetch_and_validate(emulator, "GET", f"/v3/suppression/{name}", {"limit": 500}).json()
    moment = everything[5]["created"]
    exact = fetch_and_validate(emulator, "GET", f"/v3/suppression/{name}",
                               {"start_time": moment, "end_time": moment, "limit": 500}).json()
    assert exact and all(r["created"] == moment for r in exact)


def test_a_limit_above_500_is_a_400_like_sendgrids(emulator):
    response = requests.get(f"{emulator.url}/v3/suppression/bounces", params={"limit": 501},
                            headers={"Authorization": f"Bearer {FULL_ACCESS_KEY}"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "limit"


def test_groups_and_members_conform(emulator):
    groups = fetch_and_validate(emulator, "GET", "/v3/asm/groups").json()
    group_id = groups[0]["id"]
    fetch_and_validate(emulator, "GET", f"/v3/asm/groups/{group_id}")
    members = fetch_and_validate(emulator, "GET", f"/v3/asm/groups/{group_id}/suppressions").json()
    everyone = fetch_and_validate(emulator, "GET", "/v3/asm/suppressions").json()
    assert set(members) == {m["email"] for m in everyone if m["group_id"] == group_id}
    assert groups[0]["unsubscribes"] == len(members)


def test_scopes_and_auth_errors_conform(emulator):
    fetch_and_validate(emulator, "GET", "/v3/scopes")
    emulator.add_key("SG.nothing", [])
    forbidden = requests.get(f"{emulator.url}/v3/suppression/bounces", headers={"Authorization": "Bearer SG.nothing"}, timeout=10)
    assert forbidden.status_code == 403 and forbidden.json()["errors"][0]["message"] == "access forbidden"
    unauthorized = requests.get(f"{emulator.url}/v3/suppression/bounces", headers={"Authorization": "Bearer SG.unknown"}, timeout=10)
    assert unauthorized.status_code == 401


def test_the_validator_rejects_a_body_that_breaks_the_spec(emulator):
    """Proves the conformance checks can fail: a group whose id is not a number must not validate."""
    response = fetch_and_validate(emulator, "GET", "/v3/asm/groups")
    response._content = b'[{"id": "not-a-number", "name": "x", "description": "y"}]'
    with pytest.raises(ResponseValidationError):
        validate(emulator, response)
