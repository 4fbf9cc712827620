"""list_members and segment_members against the emulator: an export like the one captured from a live account
(no list or segment column) gives the contact ids, and `POST /v3/marketing/contacts/batch` their memberships."""

import json
import math

import jsonschema
import pytest
import requests

from integration_tests.conformance import SPEC_PATH, fetch_and_validate
from sendgrid_emulator import Emulator
from sendgrid_emulator.server import FULL_ACCESS_KEY
from sendgrid_emulator.harness import catalog_for, config_for, key_of, read_in_process, records_of, run_cli
from sendgrid_emulator.secrets_guard import register_config

STREAMS = {"contacts": ["id"], "list_members": ["list_id", "contact_id"], "segment_members": ["segment_id", "contact_id"]}
MEMBER_STREAMS = {name: STREAMS[name] for name in ("list_members", "segment_members")}
BATCH = "/v3/marketing/contacts/batch"
AUTH = {"Authorization": f"Bearer {FULL_ACCESS_KEY}"}


@pytest.fixture
def emulator():
    with Emulator(size=250, seed=11, families=["marketing"]) as running:
        # Some tests send the key to the emulator themselves: it stands for the API host.
        register_config({"api_base_url": running.url})
        yield running


def posts_to(emulator, path):
    return [r for r in emulator.requests_log if r["method"] == "POST" and r["path"] == path]


def assert_equals_truth(emitted, truth, streams):
    for stream, primary_key in streams.items():
        got = sorted(emitted.get(stream, []), key=lambda r: key_of(r, primary_key))
        expected = sorted(truth[stream], key=lambda r: key_of(r, primary_key))
        assert got == expected, f"{stream}: {len(got)} records, truth has {len(expected)}"


def test_one_export_and_a_batch_read_per_100_contacts_give_the_exact_memberships_and_an_export_with_the_columns_needs_no_batch_read(emulator):
    config = config_for(emulator)
    catalog = catalog_for(config, STREAMS, mode="full_refresh")
    run = run_cli("read", config, catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    truth = emulator.truth()
    assert truth["list_members"] and truth["segment_members"]
    assert_equals_truth(run.records(), truth, STREAMS)
    # The live export does not say which lists a contact is in: the contacts stream leaves them null.
    assert not any("list_ids" in c or "segment_ids" in c for c in run.records()["contacts"])
    assert len(posts_to(emulator, "/v3/marketing/contacts/exports")) == 1
    # Each membership stream reads every contact once, 100 ids a request.
    assert len(posts_to(emulator, BATCH)) == 2 * math.ceil(len(truth["contacts"]) / 100)

    emulator.mutate("marketing", "export_settings", membership_columns=True)
    run = run_cli("read", config, catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    assert_equals_truth(run.records(), emulator.truth(), STREAMS)
    assert all("list_ids" in c for c in run.records()["contacts"])
    assert len(posts_to(emulator, "/v3/marketing/contacts/exports")) == 2
    assert len(posts_to(emulator, BATCH)) == 2 * math.ceil(len(truth["contacts"]) / 100)  # none more


def test_contacts_deleted_between_the_export_and_the_batch_read_are_left_out_and_counted(emulator):
    removed = []

    def delete_five_at_the_first_batch_read(request):
        if request.path == BATCH and not removed:
            removed.extend(emulator.mutate("marketing", "remove_contacts", count=5)["removed"])

    emulator.on_request = delete_five_at_the_first_batch_read
    config = config_for(emulator, concurrency=1)
    output = read_in_process(config, catalog_for(config, MEMBER_STREAMS, mode="full_refresh"))
    assert not output.errors and len(removed) == 5
    emitted = records_of(output)
    assert_equals_truth(emitted, emulator.truth(), MEMBER_STREAMS)
    assert not {r["contact_id"] for r in emitted["list_members"] + emitted["segment_members"]} & set(removed)
    warnings = [m.log.message for m in output.logs if m.log.level.value == "WARN"]
    for stream in MEMBER_STREAMS:
        assert f"Stream {stream}: 5 of the 250 exported contacts were deleted before their memberships were read" \
            in " ".join(warnings), warnings


def test_the_batch_read_answers_full_contact_objects_as_the_spec_describes_them(emulator):
    truth = {c["id"]: c for c in emulator.truth()["contacts"]}
    members = {}
    for record in emulator.truth()["list_members"]:
        members.setdefault(record["contact_id"], []).append(record["list_id"])
    ids = list(truth)[:99]
    # The search is validated by the spec's validator; the batch path is not in the trimmed spec, so its
    # contacts are checked against the same contact schema (contact-details3, list_ids and segment_ids required).
    spec = json.loads(SPEC_PATH.read_text())
    schema = {"$ref": "#/components/schemas/ContactDetails3", "components": spec["components"]}
    fetch_and_validate(emulator, "POST", "/v3/marketing/contacts/search", body={"query": "updated_at > TIMESTAMP '2000-01-01T00:00:00Z'"})
    answer = requests.post(f"{emulator.url}{BATCH}", json={"ids": ids + ["not-a-contact"]}, headers=AUTH, timeout=10)
    assert answer.status_code == 200
    result = answer.json()["result"]
    assert [c["id"] for c in result] == ids
    for contact in result:
        jsonschema.validate(contact, schema)
        assert sorted(contact["list_ids"]) == sorted(members.get(contact["id"], []))
    # None of the ids is a contact: the 404 the spec lists.
    assert requests.post(f"{emulator.url}{BATCH}", json={"ids": ["not-a-contact"]}, headers=AUTH, timeout=10).status_code == 404


@pytest.mark.parametrize("body, key_scopes, status", [
    ({"ids": [f"id-{n}" for n in range(101)]}, None, 400),
    ({"ids": []}, None, 400),
    ({"ids": ["not-a-contact"]}, ["marketing.automation.read"], 403),
], ids=["over-100-ids", "no-ids", "no-marketing-read"])
def test_the_batch_read_refuses_what_sendgrid_refuses(emulator, body, key_scopes, status):
    headers = AUTH
    if key_scopes is not None:
        emulator.add_key("SG.automation-only", key_scopes)
        headers = {"Authorization": "Bearer SG.automation-only"}
    assert requests.post(f"{emulator.url}{BATCH}", json=body, headers=headers, timeout=10).status_code == status
