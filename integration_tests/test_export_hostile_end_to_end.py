"""The contacts export against the emulator when its jobs and files are broken: an export ready without links or
short of its own count is made again and, if it stays broken, fails the sync; a malformed file is reported at
once; rows without a contact id are rejected; a contact dated in the future does not stop incremental syncs."""

import time

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import config_for, latest_states, read_in_process, records_of
from integration_tests.test_marketing_end_to_end import catalog, export_posts, warnings_of

YEAR_2099 = 4070908800  # 2099-01-01T00:00:00Z


@pytest.fixture
def emulator():
    with Emulator(size=60, seed=7, families=["marketing"]) as running:
        yield running


def contact_ids(output):
    return sorted(r["id"] for r in records_of(output).get("contacts", []))


def truth_ids(emulator):
    return sorted(r["id"] for r in emulator.truth()["contacts"])


def errors_of(output):
    return [e.trace.error.message for e in output.errors]


@pytest.mark.parametrize("broken", ["ready_without_urls_next", "short_next"])
def test_an_export_that_is_ready_without_links_or_short_of_its_count_once_is_made_again_and_gives_every_contact(emulator, broken):
    emulator.mutate("marketing", "export_settings", **{broken: 1})
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, ["contacts"], mode="full_refresh"))
    assert not output.errors
    assert sorted(set(contact_ids(output))) == truth_ids(emulator)
    assert len(export_posts(emulator)) == 2


@pytest.mark.parametrize("broken, problem", [
    ("ready_without_urls_next", "is ready but gave no download link"),
    ("short_next", "its files hold 59 of the 60 contacts it counts"),
])
def test_an_export_that_stays_broken_fails_the_sync_instead_of_passing_for_a_smaller_account(emulator, broken, problem):
    emulator.mutate("marketing", "export_settings", **{broken: 10})
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, ["contacts", "lists"], mode="full_refresh"), expecting_exception=True)
    assert any(problem in m for m in errors_of(output)), errors_of(output)
    assert len(export_posts(emulator)) == 3
    assert len(records_of(output).get("lists", [])) == len(emulator.truth()["lists"])  # other streams go on


def test_a_malformed_export_file_is_downloaded_once_and_the_error_says_which_row(emulator):
    emulator.mutate("marketing", "export_settings", malformed_row_next=1)
    config = config_for(emulator)
    started = time.monotonic()
    output = read_in_process(config, catalog(config, ["contacts"], mode="full_refresh"), expecting_exception=True)
    messages = errors_of(output)
    assert any("row 2 has 3 columns, the header has 22" in m for m in messages), messages
    assert len(emulator.account.data["mc_download_log"]) == 1
    assert time.monotonic() - started < 20  # no backoff between downloads of the same bytes


def test_rows_without_a_contact_id_are_rejected_and_warned_about_and_every_other_contact_is_emitted(emulator):
    emulator.mutate("marketing", "export_settings", rows_without_id_next=1)
    config = config_for(emulator)
    output = read_in_process(config, catalog(config, ["contacts"], mode="full_refresh"))
    assert not output.errors
    assert contact_ids(output) == sorted(r["id"] for r in emulator.truth()["contacts"][2:])  # the first two lack it
    assert any("rejected 2 of the 60 rows" in w for w in warnings_of(output)), warnings_of(output)


def test_a_contact_dated_in_the_future_does_not_stop_later_incremental_syncs(emulator):
    future = emulator.mutate("marketing", "update_contacts", count=1, updated_at=YEAR_2099)["updated"]
    config = config_for(emulator)
    streams = {"contacts": ["id"]}
    first = read_in_process(config, catalog(config, streams))
    assert not first.errors and contact_ids(first) == truth_ids(emulator)
    saved = latest_states(first)[-1]["stream"]["stream_state"]["updated_at"]
    assert saved <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert any("1 record(s) are dated after this sync started" in w for w in warnings_of(first))

    time.sleep(1.1)  # changes land in a later second than the first sync's start
    added = emulator.mutate("marketing", "add_contacts", count=2)["added"]
    second = read_in_process(config, catalog(config, streams), state=latest_states(first))
    assert not second.errors
    assert set(added) <= set(contact_ids(second))
    assert set(contact_ids(second)) <= set(added) | set(future)  # the future-dated one comes again until its date
