"""Marketing Campaigns end to end: the connector's output against the emulator's ground truth, through the
contacts export's whole life (pending, failure, expired links, gzip or plain, CSV or JSON)."""

import time

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import (
    config_for,
    configured_stream,
    key_of,
    latest_states,
    read_in_process,
    records_of,
    run_cli,
    run_cli_killed_after,
)
from source_sendgrid.config import SendgridConfig
from source_sendgrid.errors import RequestStats
from source_sendgrid.scopes import ScopeGate
from source_sendgrid.streams import ALL_STREAMS

MARKETING_STREAMS = {
    "contacts": ["id"],
    "lists": ["id"],
    "list_members": ["list_id", "contact_id"],
    "segments": ["id"],
    "segment_members": ["segment_id", "contact_id"],
    "singlesends": ["id"],
    "singlesend_stats": ["id", "ab_variation", "ab_phase", "aggregation"],
    "stats_automations": ["id", "step_id", "aggregation"],
    "field_definitions": ["id"],
    "marketing_senders": ["id"],
}
EXPORT_STREAMS = {name: MARKETING_STREAMS[name] for name in ("contacts", "list_members", "segment_members")}


@pytest.fixture
def emulator():
    with Emulator(size=60, seed=7, families=["marketing"]) as running:
        yield running


def catalog(config, streams, mode="incremental"):
    """A configured catalog of the named marketing streams, from the streams' own discover output."""
    parsed = SendgridConfig.from_mapping(config)
    configured = []
    for stream_class in ALL_STREAMS:
        stream = stream_class(parsed, ScopeGate(lambda: None), RequestStats())
        if stream.name not in streams:
            continue
        configured.append(configured_stream(stream.as_airbyte_stream(), mode))
    assert {c["stream"]["name"] for c in configured} == set(streams)
    return {"streams": configured}


def assert_equals_truth(emitted, truth, streams=MARKETING_STREAMS):
    for stream, primary_key in streams.items():
        got = sorted(emitted.get(stream, []), key=lambda r: key_of(r, primary_key))
        expected = sorted(truth[stream], key=lambda r: key_of(r, primary_key))
        assert len(got) == len(expected), f"{stream}: {len(got)} records, truth has {len(expected)}"
        for record, truth_record in zip(got, expected):
            assert record == truth_record, f"{stream}: {record} != {truth_record}"


def warnings_of(output):
    return [log.log.message for log in output.logs if log.log.level.value == "WARN"]


def export_posts(emulator):
    return [r for r in emulator.requests_log if r["method"] == "POST" and r["path"] == "/v3/marketing/contacts/exports"]


def test_full_refresh_of_every_marketing_stream_equals_ground_truth_and_shares_one_export(emulator):
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, MARKETING_STREAMS, mode="full_refresh"))
    assert not output.errors
    assert_equals_truth(records_of(output), emulator.truth())
    # contacts, list_members and segment_members were all read from one export job...
    assert len(export_posts(emulator)) == 1
    # ...whose files were fetched from the other host without our API key.
    downloads = emulator.account.data["mc_download_log"]
    assert len(downloads) == 3 and not any(d["authorized"] for d in downloads)


@pytest.mark.parametrize("settings", [
    {"gzip": False},
    {"gzip": True, "json_style": "lines"},
    {"gzip": False, "json_style": "array"},
    {"rows_per_file": 7},
], ids=["plain-csv", "gzip-json-lines", "plain-json-array", "many-files"])
def test_every_file_shape_gives_the_same_contacts(emulator, settings, monkeypatch):
    if "json_style" in settings:
        # The connector asks for CSV; make the emulator answer JSON anyway, as a format change would.
        from sendgrid_emulator.families import marketing as family
        original = family._export_file
        monkeypatch.setattr(family, "_export_file", lambda contacts, _type, *rest: original(contacts, "json", *rest))
    emulator.mutate("marketing", "export_settings", **settings)
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, EXPORT_STREAMS, mode="full_refresh"))
    assert not output.errors
    assert_equals_truth(records_of(output), emulator.truth(), EXPORT_STREAMS)


def test_a_slow_job_a_failed_job_and_an_expired_link_still_give_the_exact_truth(emulator):
    emulator.mutate("marketing", "export_settings", polls_before_ready=1, fail_next=1, failure_status="failed", expire_next=1)
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, ["contacts"], mode="full_refresh"))
    assert not output.errors
    assert_equals_truth(records_of(output), emulator.truth(), {"contacts": ["id"]})
    warnings = warnings_of(output)
    assert any("ended with status 'failed'" in w for w in warnings), warnings
    assert any("no longer works (HTTP 403)" in w for w in warnings)
    posts = [r for r in emulator.requests_log if r["method"] == "POST"]
    assert len(posts) == 3  # failed, expired, good


@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "plain"])
def test_downloads_cut_short_are_resumed_without_losing_or_repeating_contacts(emulator, gzip):
    emulator.mutate("marketing", "export_settings", gzip=gzip, truncate_next_downloads=2, rows_per_file=25)
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, ["contacts"], mode="full_refresh"))
    assert not output.errors
    assert_equals_truth(records_of(output), emulator.truth(), {"contacts": ["id"]})
    assert sum("download broke off" in w for w in warnings_of(output)) == 2


def test_an_export_that_keeps_failing_ends_the_sync_with_a_clear_error(emulator):
    emulator.mutate("marketing", "export_settings", fail_next=10, polls_before_ready=0)
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, ["contacts", "lists"], mode="full_refresh"), expecting_exception=True)
    messages = [e.trace.error.message for e in output.errors]
    assert any("SendGrid failed the contacts export 3 times" in m for m in messages), messages
    assert len(records_of(output).get("lists", [])) == len(emulator.truth()["lists"])  # other streams go on


def test_incremental_contacts_emit_exactly_the_changed_ones_and_members_follow_churn_at_equal_counts(emulator):
    config = config_for(emulator)
    streams = {**EXPORT_STREAMS, "segments": ["id"], "singlesends": ["id"]}
    first = read_in_process(config, catalog(config, streams))
    assert not first.errors
    assert_equals_truth(records_of(first), emulator.truth(), streams)

    time.sleep(1.1)  # changes land in a later second than anything the first sync saw
    added = emulator.mutate("marketing", "add_contacts", count=2)["added"]
    updated = emulator.mutate("marketing", "update_contacts", count=3)["updated"]
    counts_before = {item["id"]: item["contact_count"] for item in emulator.truth()["lists"]}
    moved = emulator.mutate("marketing", "churn_lists")["moved"]
    assert moved and {item["id"]: item["contact_count"] for item in emulator.truth()["lists"]} == counts_before

    second = read_in_process(config, catalog(config, streams), state=latest_states(first))
    assert not second.errors
    emitted = records_of(second)
    truth = emulator.truth()
    assert {r["id"] for r in emitted["contacts"]} == set(added) | set(updated)
    assert_equals_truth(emitted, truth, {"list_members": ["list_id", "contact_id"], "segment_members": ["segment_id", "contact_id"]})
    pairs = {(r["list_id"], r["contact_id"]) for r in emitted["list_members"]}
    for move in moved:
        assert (move["list_id"], move["joined"]) in pairs and (move["list_id"], move["left"]) not in pairs
    assert emitted.get("segments", []) == [] and emitted.get("singlesends", []) == []
    new_state = {s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in latest_states(second)}
    assert new_state["contacts"]["updated_at"] == max(r["updated_at"] for r in truth["contacts"])


@pytest.mark.parametrize("settings, exported", [
    ({}, False),
    ({"search_timeouts_next": 1}, True),  # the search ran out of time: export as before
    ({"search_matches_nothing": True}, True),  # a search index behind: it cannot account for every contact
], ids=["search-finds-nothing-new", "search-times-out", "search-index-behind"])
def test_an_incremental_sync_exports_contacts_only_when_the_search_cannot_show_that_none_changed(emulator, settings, exported):
    config = config_for(emulator)
    streams = {"contacts": ["id"]}
    first = read_in_process(config, catalog(config, streams))
    assert len(export_posts(emulator)) == 1
    emulator.mutate("marketing", "export_settings", **settings)

    second = read_in_process(config, catalog(config, streams), state=latest_states(first))
    assert not second.errors and records_of(second).get("contacts", []) == []
    assert latest_states(second) == latest_states(first)
    assert len(export_posts(emulator)) == 1 + exported


@pytest.mark.parametrize("changed, exported", [(3, False), (51, True)])  # the search returns the first 50 matches
def test_an_incremental_sync_reads_the_changed_contacts_from_the_search_when_it_returns_them_all(emulator, changed, exported):
    # Export files with the membership columns: the search's contact objects always carry list and segment ids.
    emulator.mutate("marketing", "export_settings", membership_columns=True)
    config = config_for(emulator)
    streams = {"contacts": ["id"]}
    first = read_in_process(config, catalog(config, streams))
    time.sleep(1.1)  # changes land in a later second than anything the first sync saw
    updated = set(emulator.mutate("marketing", "update_contacts", count=changed)["updated"])

    second = read_in_process(config, catalog(config, streams), state=latest_states(first))
    assert not second.errors
    emitted = records_of(second)["contacts"]
    # The same records an export gives: the search's contact objects are read as the export's rows are.
    assert sorted(emitted, key=lambda r: r["id"]) == sorted((r for r in emulator.truth()["contacts"] if r["id"] in updated),
                                                           key=lambda r: r["id"])
    assert len(export_posts(emulator)) == 1 + exported
    new_state = latest_states(second)[-1]["stream"]["stream_state"]
    assert new_state["updated_at"] == max(r["updated_at"] for r in emitted)


def test_a_full_refresh_after_contacts_were_removed_drops_their_memberships(emulator):
    config = config_for(emulator)
    emulator.mutate("marketing", "remove_contacts", count=5)
    output = read_in_process(config, catalog(config, EXPORT_STREAMS, mode="full_refresh"))
    assert_equals_truth(records_of(output), emulator.truth(), EXPORT_STREAMS)


def test_a_sync_killed_mid_export_resumes_without_losing_contacts():
    with Emulator(size=2500, seed=9, families=["marketing"]) as emulator:
        # Contacts come out in blocks of 1,000: with files of 1,000 rows each taking 2 s to download, the kill
        # (one stream at a time, after 150 lines) lands while the second file is on its way.
        emulator.mutate("marketing", "export_settings", rows_per_file=1000)
        emulator.set_faults({"slow": 1.0}, slow_seconds=2.0, path_regex=r"^/exports/")
        config = config_for(emulator, concurrency=1)
        streams = {"contacts": ["id"], "list_members": ["list_id", "contact_id"]}
        cat = catalog(config, streams)
        killed = run_cli_killed_after(config, cat, state=None, kill_after_lines=150)
        assert killed.returncode != 0, "the sync finished before it could be killed: raise the data size"
        assert 0 < len(killed.records().get("contacts", [])) < 2500
        emulator.set_faults({})
        # The contacts state moves only once the whole export was read: a killed sync leaves none.
        assert "contacts" not in {s["stream"]["stream_descriptor"]["name"] for s in killed.last_states()}
        resumed = run_cli("read", config, cat, state=killed.last_states())
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        truth = emulator.truth()
        for stream, primary_key in streams.items():
            assert {key_of(r, primary_key) for r in resumed.records()[stream]} == {key_of(r, primary_key) for r in truth[stream]}


def test_ten_percent_faults_still_give_the_exact_truth(emulator):
    # The API and the export file host alike.
    emulator.set_faults({"500": 0.03, "503": 0.02, "429": 0.02, "drop": 0.01, "truncate": 0.01, "nonjson": 0.01}, seed=5,
                        path_regex=r"^/(v3|exports)/")
    # Thirty files, ninety downloads: at these rates one going through unfaulted is a 1-in-10,000 chance,
    # whatever order the streams (read at once, in any order) ask for them.
    emulator.mutate("marketing", "export_settings", rows_per_file=2)
    config = config_for(emulator)
    run = run_cli("read", config, catalog(config, MARKETING_STREAMS, mode="full_refresh"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert sum(emulator.faults.injected.values()) > 0, "no fault was injected: the test proves nothing"
    downloads = [d["path"] for d in emulator.account.data["mc_download_log"]]
    # Three streams read each file once; more downloads than that are retries of faulted ones.
    assert len(downloads) > 3 * len(set(downloads)), "no download was faulted and retried: the test proves less"
    assert_equals_truth(run.records(), emulator.truth())
    assert "SG.emulator-full-access-key" not in run.stdout + run.stderr


def test_a_key_without_automation_stats_scope_skips_only_that_stream(emulator):
    emulator.add_key("SG.marketing-only", ["marketing.read"])
    config = config_for(emulator, api_key="SG.marketing-only")
    output = read_in_process(config, catalog(config, ["stats_automations", "lists", "contacts"], mode="full_refresh"))
    assert not output.errors
    assert set(records_of(output)) == {"lists", "contacts"}
    assert any("stats_automations" in w and "marketing.automation.read" in w for w in warnings_of(output))


def test_an_account_without_new_marketing_campaigns_skips_the_family():
    with Emulator(size=20, seed=3, families=["marketing"], products=[]) as emulator:
        config = config_for(emulator)
        output = read_in_process(config, catalog(config, ["lists", "contacts", "list_members"], mode="full_refresh"),
                                 expecting_exception=True)
    assert records_of(output) == {}
    assert sum("Skipping stream" in w for w in warnings_of(output)) == 3
    # Nothing selected could be read: the sync fails rather than pass for an empty account.
    assert [e.trace.error.failure_type.value for e in output.errors] == ["config_error"]
    assert "None of the selected streams could be read" in output.errors[0].trace.error.message
