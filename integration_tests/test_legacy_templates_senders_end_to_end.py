"""Legacy Marketing Campaigns, templates, senders and subusers end to end: the connector's records against
the emulator's ground truth, record by record; incremental reads, a killed sync, faults, accounts of
either Marketing Campaigns vintage, and the `on-behalf-of` header only where the spec declares it."""

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.families import FAMILIES
from sendgrid_emulator.harness import (
    catalog_for,
    config_for,
    key_of,
    latest_states,
    read_in_process,
    records_of,
    run_cli,
    run_cli_killed_after,
    union_of,
)

MY_FAMILIES = ["contactdb", "templates", "account"]
LEGACY_STREAMS = {
    "legacy_contacts": ["id"],
    "legacy_lists": ["id"],
    "legacy_list_members": ["list_id", "id"],
    "legacy_segments": ["id"],
    "legacy_segment_members": ["segment_id", "id"],
    "legacy_custom_fields": ["id"],
    "legacy_reserved_fields": ["name"],
    "legacy_campaigns": ["id"],
}
OTHER_STREAMS = {
    "templates": ["id"],
    "template_versions": ["template_id", "id"],
    "verified_senders": ["id"],
    "legacy_senders": ["id"],
    "subusers": ["id"],
}
STREAMS = {**LEGACY_STREAMS, **OTHER_STREAMS}
# More than one page everywhere a stream pages: 3 campaign pages of 100, 2 template pages of 200, 2 keyset
# pages of verified senders, 2 subuser pages, and a run of deleted recipients that empties whole pages.
PAGED_COUNTS = {"legacy_empty_run": 2500, "legacy_campaigns": 230, "templates": 210, "verified_senders": 130,
                "subusers": 130}


def assert_equals_truth(emitted, truth, streams=STREAMS):
    for stream, primary_key in streams.items():
        got = sorted(emitted.get(stream, []), key=lambda r: key_of(r, primary_key))
        expected = sorted(truth[stream], key=lambda r: key_of(r, primary_key))
        assert len(got) == len(expected), f"{stream}: {len(got)} records, truth has {len(expected)}"
        assert got == expected, f"{stream}: records differ from the emulator's truth"


def recipient_requests(emulator):
    return [r for r in emulator.requests_log if r["path"] == "/v3/contactdb/recipients"]


@pytest.fixture
def paged_emulator():
    with Emulator(size=60, seed=13, counts=PAGED_COUNTS, families=MY_FAMILIES) as running:
        yield running


@pytest.fixture
def small_emulator():
    with Emulator(size=60, seed=17, families=MY_FAMILIES) as running:
        yield running


def test_full_refresh_over_many_pages_equals_ground_truth(paged_emulator):
    config = config_for(paged_emulator)
    output = read_in_process(config, catalog_for(config, STREAMS, mode="full_refresh"))
    assert not output.errors
    truth = paged_emulator.truth()
    assert len(truth["legacy_campaigns"]) > 200 and len(truth["templates"]) > 200
    assert_equals_truth(records_of(output), truth)


def test_an_empty_recipient_page_before_the_end_does_not_stop_the_read(paged_emulator):
    config = config_for(paged_emulator)
    output = read_in_process(config, catalog_for(config, ["legacy_contacts"], mode="full_refresh"))
    slots = paged_emulator.account.data["legacy_slots"]
    pages = [slots[start:start + 1000] for start in range(0, len(slots), 1000)]
    empty_before_the_end = [n for n, page in enumerate(pages[:-1], 1) if not any(page)]
    assert empty_before_the_end, "the emulator has no empty page before the end: the test proves nothing"
    assert any(pages[-1]), "the last page must hold recipients after the empty ones"
    # Every page was asked for, then one more that answered 404.
    assert len(recipient_requests(paged_emulator)) == len(pages) + 1
    assert_equals_truth(records_of(output), paged_emulator.truth(), {"legacy_contacts": ["id"]})


def test_incremental_reads_emit_exactly_the_new_and_updated_records(small_emulator):
    config = config_for(small_emulator)
    catalog = catalog_for(config, STREAMS)
    first = read_in_process(config, catalog)
    assert_equals_truth(records_of(first), small_emulator.truth())

    added = small_emulator.mutate("contactdb", "add", count=3)["added"]
    updated = small_emulator.mutate("contactdb", "update", count=2)["updated"]
    touched = small_emulator.mutate("templates", "touch", count=2)["touched"]
    new_templates = small_emulator.mutate("templates", "add", count=1)["added"]
    small_emulator.mutate("account", "touch_legacy_sender", count=1)
    second = read_in_process(config, catalog, state=latest_states(first))

    assert not second.errors
    emitted = records_of(second)
    truth = small_emulator.truth()
    assert {r["id"] for r in emitted["legacy_contacts"]} == set(added) | set(updated)
    assert {r["id"] for r in emitted["templates"]} == set(touched) | set(new_templates)
    assert [r["id"] for r in emitted["legacy_senders"]] == [truth["legacy_senders"][0]["id"]]
    # Only the changed templates' details are asked for, and all their versions emitted.
    changed_versions = [v for v in truth["template_versions"] if v["template_id"] in set(touched) | set(new_templates)]
    assert sorted(emitted["template_versions"], key=lambda r: key_of(r, STREAMS["template_versions"])) == \
        sorted(changed_versions, key=lambda r: key_of(r, STREAMS["template_versions"]))
    by_id = {r["id"]: r for r in truth["legacy_contacts"]}
    assert all(r == by_id[r["id"]] for r in emitted["legacy_contacts"])
    # Full-refresh-only streams are read whole each time, the members with the new recipients included.
    assert_equals_truth(emitted, truth, {s: k for s, k in STREAMS.items()
                                         if s not in ("legacy_contacts", "templates", "template_versions", "legacy_senders")})


@pytest.mark.parametrize("kill_after_lines", [25, 150])
def test_a_killed_legacy_sync_resumes_without_losing_records(kill_after_lines):
    with Emulator(size=400, seed=19, families=["contactdb"]) as emulator:
        config = config_for(emulator)
        catalog = catalog_for(config, LEGACY_STREAMS)
        killed = run_cli_killed_after(config, catalog, state=None, kill_after_lines=kill_after_lines)
        assert killed.returncode != 0, "the sync finished before it could be killed: raise the data size"
        resumed = run_cli("read", config, catalog, state=killed.last_states())
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        union = union_of(killed.records(), resumed.records())
        truth = emulator.truth()
        for stream, primary_key in LEGACY_STREAMS.items():
            assert {key_of(r, primary_key) for r in union.get(stream, [])} == {key_of(r, primary_key) for r in truth[stream]}, stream


def test_ten_percent_faults_still_give_the_exact_truth(small_emulator):
    small_emulator.set_faults({"500": 0.03, "503": 0.02, "429": 0.02, "drop": 0.01, "truncate": 0.01, "nonjson": 0.01}, seed=5)
    config = config_for(small_emulator)
    output = read_in_process(config, catalog_for(config, STREAMS, mode="full_refresh"))
    assert not output.errors
    assert sum(small_emulator.faults.injected.values()) > 0, "no fault was injected: the test proves nothing"
    assert_equals_truth(records_of(output), small_emulator.truth())


def test_on_behalf_of_is_sent_only_where_the_spec_declares_it(small_emulator):
    config = config_for(small_emulator, subuser="shop-us")
    output = read_in_process(config, catalog_for(config, STREAMS, mode="full_refresh"))
    assert not output.errors
    sent = {}
    for request in small_emulator.requests_log:
        sent.setdefault(request["path"].rsplit("/", 1)[0] if request["path"].startswith("/v3/templates/") else request["path"],
                        set()).add(request["on_behalf_of"])
    for path in ("/v3/contactdb/recipients", "/v3/contactdb/lists", "/v3/campaigns", "/v3/templates", "/v3/senders"):
        assert sent[path] == {"shop-us"}, path
    for path in ("/v3/verified_senders", "/v3/subusers"):
        assert sent[path] == {None}, path


def account_sync(products):
    """A full sync of every stream the account's families serve, on an account with only `products`."""
    families = ["suppressions", *MY_FAMILIES, *(["marketing"] if "marketing" in FAMILIES else [])]
    with Emulator(size=30, seed=23, families=families, products=products) as emulator:
        config = config_for(emulator)
        discovered = {s["stream"]["name"] for s in catalog_for(config)["streams"]}
        truth = emulator.truth()
        streams = sorted(discovered & set(truth))
        output = read_in_process(config, catalog_for(config, streams, mode="full_refresh"))
        warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
        return output, records_of(output), truth, streams, warnings


def test_a_legacy_only_account_syncs_without_errors_and_skips_what_it_does_not_have():
    output, emitted, truth, streams, warnings = account_sync({"legacy_mc"})
    assert not output.errors
    assert_equals_truth(emitted, truth, LEGACY_STREAMS)
    assert_equals_truth(emitted, truth, {"bounces": ["email"], "templates": ["id"], "verified_senders": ["id"]})
    not_had = [s for s in streams if s not in STREAMS and s not in ("bounces", "blocks", "spam_reports", "invalid_emails",
                                                                    "global_suppressions", "suppression_groups",
                                                                    "suppression_group_members")] + ["subusers"]
    for stream in not_had:
        assert not emitted.get(stream), stream
        assert any(w.startswith(f"Skipping stream {stream}:") for w in warnings), stream


def test_a_new_marketing_campaigns_only_account_syncs_without_errors_and_skips_the_legacy_streams():
    output, emitted, truth, streams, warnings = account_sync({"new_mc", "parent_account"})
    assert not output.errors
    for stream in [*LEGACY_STREAMS, "legacy_senders"]:
        assert not emitted.get(stream), stream
    for stream in ("legacy_contacts", "legacy_lists", "legacy_campaigns", "legacy_senders", "legacy_list_members"):
        assert any(w.startswith(f"Skipping stream {stream}:") for w in warnings), stream
    assert_equals_truth(emitted, truth, {"subusers": ["id"], "templates": ["id"], "global_suppressions": ["email"]})
    new_mc_streams = [s for s in streams if s not in STREAMS and not s.startswith(("suppression", "bounces", "blocks",
                                                                                    "spam", "invalid", "global"))]
    for stream in new_mc_streams:
        assert len(emitted.get(stream, [])) == len(truth[stream]), stream
