"""Campaigns, lists' self links and advanced statistics end to end, as a real account answers them: the
connector's output against the emulator's ground truth (docs/sendgrid-behaviour.md)."""

import datetime as dt

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, key_of, read_in_process, records_of, run_cli


def sorted_by_key(rows, primary_key):
    return sorted(rows, key=lambda row: key_of(row, primary_key))


def days_ago(days):
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).strftime("%Y-%m-%dT00:00:00Z")


@pytest.fixture
def marketing():
    # 130 single sends, so 130 campaigns: two pages of 100.
    with Emulator(size=60, seed=11, counts={"singlesends": 130}, families=["marketing"]) as running:
        yield running


def test_a_sync_of_campaigns_through_the_command_line_emits_every_campaign_across_pages(marketing):
    config = config_for(marketing)
    run = run_cli("read", config, catalog_for(config, ["campaigns"], mode="full_refresh"))
    assert run.returncode == 0 and not run.error_messages()
    truth = marketing.truth()["campaigns"]
    assert len(truth) == 130
    assert sorted_by_key(run.records()["campaigns"], ["id"]) == sorted_by_key(truth, ["id"])
    pages = [r for r in marketing.requests_log if r["path"] == "/v3/marketing/campaigns"]
    assert len(pages) == 2 and all("page_size=100" in page["query"] for page in pages)


def test_an_account_without_marketing_campaigns_skips_campaigns_with_a_warning_and_the_sync_succeeds():
    # Another stream is selected too: a read whose every selected stream is skipped fails on purpose.
    with Emulator(size=20, seed=11, families=["marketing", "suppressions"], products=[]) as emulator:
        config = config_for(emulator)
        run = run_cli("read", config, catalog_for(config, ["campaigns", "bounces"], mode="full_refresh"))
    assert run.returncode == 0 and not run.error_messages()
    assert "campaigns" not in run.records() and run.records()["bounces"]
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
    assert any(w.startswith("Skipping stream campaigns: SendGrid answered 403") for w in warnings)


def test_every_list_keeps_its_self_link_as_sendgrid_sends_it(marketing):
    config = config_for(marketing)
    output = read_in_process(config, catalog_for(config, ["lists"], mode="full_refresh"))
    assert not output.errors
    emitted = sorted_by_key(records_of(output)["lists"], ["id"])
    assert emitted == sorted_by_key(marketing.truth()["lists"], ["id"])
    assert all(r["_metadata"]["self"] == f"{marketing.url}/v3/marketing/lists/{r['id']}" for r in emitted)


def test_a_first_sync_of_device_stats_brings_every_day_since_the_start_date_not_only_the_last_week():
    with Emulator(size=60, seed=3, counts={"stats_days": 40}, families=["stats"]) as emulator:
        config = config_for(emulator, start_date=days_ago(60), window_days=1000)
        output = read_in_process(config, catalog_for(config, ["device_stats"], mode="incremental"))
        truth = emulator.truth()["device_stats"]
    assert not output.errors
    primary_key = ["date", "type", "name"]
    assert sorted_by_key(records_of(output)["device_stats"], primary_key) == sorted_by_key(truth, primary_key)
    assert len({row["date"] for row in truth}) == 40
