"""Email statistics and email activity end to end: the connector's output against the emulator's ground truth."""

import datetime as dt
import time

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, key_of, latest_states, read_in_process, records_of

STATS_STREAMS = {
    "global_stats": ["date"],
    "categories": ["category"],
    "category_stats": ["date", "type", "name"],
    "mailbox_provider_stats": ["date", "type", "name"],
    "browser_stats": ["date", "type", "name"],
    "device_stats": ["date", "type", "name"],
    "client_stats": ["date", "type", "name"],
    "geo_stats": ["date", "type", "name"],
}
ACTIVITY_STREAMS = {"email_activity": ["msg_id"]}
ALL_STREAMS = {**STATS_STREAMS, **ACTIVITY_STREAMS}
# More than 500 days, so stats pages past the first; 23 categories, so three groups per window.
COUNTS = {"stats_days": 520, "categories": 23, "messages": 300}


def days_ago(days):
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    return moment.strftime("%Y-%m-%dT00:00:00Z")


def assert_equals_truth(emitted, truth, streams):
    for stream, primary_key in streams.items():
        got = sorted(emitted.get(stream, []), key=lambda r: key_of(r, primary_key))
        expected = sorted(truth[stream], key=lambda r: key_of(r, primary_key))
        assert len(got) == len(expected), f"{stream}: {len(got)} records, truth has {len(expected)}"
        assert got == expected, f"{stream}: records differ from the emulator's truth"


def merged(*outputs, streams):
    """What a destination holds after deduplicating on the primary key, the last row winning."""
    table = {}
    for emitted in outputs:
        for stream, primary_key in streams.items():
            for record in emitted.get(stream, []):
                table.setdefault(stream, {})[key_of(record, primary_key)] = record
    return {stream: list(rows.values()) for stream, rows in table.items()}


@pytest.fixture
def emulator():
    with Emulator(size=60, seed=3, counts=COUNTS, families=["stats", "activity"]) as running:
        yield running


def test_full_refresh_equals_ground_truth(emulator):
    config = config_for(emulator, start_date=days_ago(600), window_days=1000)
    output = read_in_process(config, catalog_for(config, ALL_STREAMS, mode="full_refresh"))
    assert not output.errors
    assert_equals_truth(records_of(output), emulator.truth(), ALL_STREAMS)
    # 520 days in one window: the second page of 500 was asked for.
    assert any(r["path"] == "/v3/stats" and "offset=500" in r["query"] for r in emulator.requests_log)


def test_incremental_rereads_the_trailing_days_and_corrects_late_counts(emulator):
    config = config_for(emulator, start_date=days_ago(30))
    catalog = catalog_for(config, STATS_STREAMS)
    first = read_in_process(config, catalog)
    assert not first.errors
    changed = emulator.mutate("stats", "late_counts", days=2, amount=7)["changed_days"]

    second = read_in_process(config, catalog, state=latest_states(first))
    assert not second.errors
    emitted = records_of(second)
    today = dt.datetime.now(dt.timezone.utc).date()
    # The trailing window: today and the two days before it, though lookback_days is 0.
    assert {r["date"] for r in emitted["global_stats"]} == {(today - dt.timedelta(days=n)).isoformat() for n in range(3)}
    truth = emulator.truth()
    late = [r for r in truth["global_stats"] if r["date"] in changed]
    assert sorted(late, key=lambda r: r["date"]) == sorted([r for r in emitted["global_stats"] if r["date"] in changed], key=lambda r: r["date"])

    in_destination = merged(records_of(first), emitted, streams=STATS_STREAMS)
    recent = {stream: [r for r in rows if stream == "categories" or r["date"] >= config["start_date"][:10]]
              for stream, rows in truth.items() if stream in STATS_STREAMS}
    assert_equals_truth(in_destination, recent, STATS_STREAMS)


def test_email_activity_splits_windows_at_the_1000_cap_under_a_low_rate_limit_and_loses_nothing():
    counts = {"messages": 6000, "message_burst": 1200, "message_days": 3}
    with Emulator(size=10, seed=9, counts=counts, families=["activity"]) as emulator:
        emulator.set_rate_limit(3, window_seconds=1.0)
        config = config_for(emulator, start_date=days_ago(4))
        catalog = catalog_for(config, ACTIVITY_STREAMS)
        first = read_in_process(config, catalog)
        assert not first.errors
        assert_equals_truth(records_of(first), emulator.truth(), ACTIVITY_STREAMS)
        queries = [r for r in emulator.requests_log if r["path"] == "/v3/messages"]
        # The budget of 3 a second ran out several times (the connector waits for the reset, or retries a 429).
        assert len(queries) > 2 * 3, "no window was split, or too few to meet the rate limit: the test proves nothing"
        assert queries[-1]["at"] - queries[0]["at"] >= 1.0

        touched = emulator.mutate("activity", "touch", count=5)["touched"]
        emulator.mutate("activity", "add", count=3)
        time.sleep(1.1)  # windows end a second before "now"
        second = read_in_process(config, catalog, state=latest_states(first))
        assert not second.errors
        emitted = {r["msg_id"]: r for r in records_of(second).get("email_activity", [])}
        truth = {r["msg_id"]: r for r in emulator.truth()["email_activity"]}
        assert set(touched) <= set(emitted)
        assert all(emitted[msg_id] == truth[msg_id] for msg_id in emitted)
        assert len(emitted) == 8


def test_email_activity_sizes_its_windows_by_the_rate_it_saw_so_few_answers_come_back_full():
    # 31,200 messages over three days, 1,200 of them in ten busy minutes. Halving alone asked 97 queries here,
    # about half of them answered full and thrown away; sized by rate, 56.
    counts = {"messages": 30_000, "message_burst": 1_200, "message_days": 3}
    with Emulator(size=10, seed=5, counts=counts, families=["activity"]) as emulator:
        config = config_for(emulator, start_date=days_ago(4))
        output = read_in_process(config, catalog_for(config, ACTIVITY_STREAMS))
        assert not output.errors
        assert_equals_truth(records_of(output), emulator.truth(), ACTIVITY_STREAMS)
        queries = [r for r in emulator.requests_log if r["path"] == "/v3/messages"]
        # About one query per 750 messages, plus the halvings before a rate is known and around the burst.
        assert len(queries) <= 31_200 / 750 + 25, f"{len(queries)} queries for 31,200 messages"


def test_ten_percent_faults_still_give_the_exact_truth(emulator):
    emulator.set_faults({"500": 0.03, "503": 0.02, "429": 0.02, "drop": 0.01, "truncate": 0.01, "nonjson": 0.01}, seed=4)
    config = config_for(emulator, start_date=days_ago(600), window_days=400)
    output = read_in_process(config, catalog_for(config, ALL_STREAMS, mode="full_refresh"))
    assert not output.errors
    assert sum(emulator.faults.injected.values()) > 0, "no fault was injected: the test proves nothing"
    assert_equals_truth(records_of(output), emulator.truth(), ALL_STREAMS)


def test_without_the_activity_add_on_the_stream_is_skipped_with_a_warning_and_the_sync_succeeds():
    with Emulator(size=20, seed=2, families=["stats", "activity"], products=[]) as emulator:
        config = config_for(emulator, start_date=days_ago(20))
        output = read_in_process(config, catalog_for(config, ["email_activity", "global_stats"]))
    assert not output.errors
    emitted = records_of(output)
    assert "email_activity" not in emitted and len(emitted["global_stats"]) == 20
    warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
    assert any("email_activity" in w and "email activity history" in w for w in warnings)
