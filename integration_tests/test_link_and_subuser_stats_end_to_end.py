"""Link click stats and subuser streams end to end: the connector's output against the emulator's ground truth."""

import datetime as dt

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, key_of, latest_states, read_in_process, records_of

LINK_STREAMS = {
    "singlesend_link_stats": ["singlesend_id", "url", "url_location", "ab_variation", "ab_phase"],
    "automation_link_stats": ["automation_id", "step_id", "url", "url_location"],
}
SUBUSER_STREAMS = {
    "subuser_stats": ["date", "name"],
    "subuser_monthly_stats": ["date", "name"],
    "subuser_reputations": ["username"],
}
STREAMS = {**LINK_STREAMS, **SUBUSER_STREAMS}
FAMILIES = ["marketing", "account", "subuser_stats"]
# 60 links a message (pages of 50), 23 subusers (three groups of 10), 600 days (pages of 500 days), and a
# monthly endpoint that sends 4 subusers whatever `limit` asks.
LARGE = {"links_per_message": 60, "subusers": 23, "subuser_stats_days": 600, "monthly_page_cap": 4}


def days_ago(days):
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
    return moment.strftime("%Y-%m-%dT00:00:00Z")


def assert_equals_truth(emitted, truth, streams=STREAMS):
    for stream, primary_key in streams.items():
        got = sorted(emitted.get(stream, []), key=lambda r: key_of(r, primary_key))
        expected = sorted(truth[stream], key=lambda r: key_of(r, primary_key))
        assert len(got) == len(expected), f"{stream}: {len(got)} records, truth has {len(expected)}"
        assert got == expected, f"{stream}: records differ from the emulator's truth"


def merged(*outputs, streams=STREAMS):
    """What a destination holds after deduplicating on the primary key, the last row winning."""
    table = {}
    for emitted in outputs:
        for stream, primary_key in streams.items():
            for record in emitted.get(stream, []):
                table.setdefault(stream, {})[key_of(record, primary_key)] = record
    return {stream: list(rows.values()) for stream, rows in table.items()}


def requests_to(emulator, path_end):
    return [r for r in emulator.requests_log if r["path"].endswith(path_end)]


@pytest.mark.parametrize("counts", [{}, LARGE], ids=["small", "large"])
def test_full_refresh_of_the_five_streams_equals_ground_truth(counts):
    with Emulator(size=60, seed=7, counts=counts, families=FAMILIES) as emulator:
        config = config_for(emulator, start_date=days_ago(700), window_days=1000)
        output = read_in_process(config, catalog_for(config, STREAMS, mode="full_refresh"))
        assert not output.errors
        truth = emulator.truth()
        assert_equals_truth(records_of(output), truth)
        # One URL at two places in a message is two rows.
        links = truth["singlesend_link_stats"]
        assert len({(r["singlesend_id"], r["url"], r["url_location"]) for r in links}) > len({(r["singlesend_id"], r["url"]) for r in links})
        # A single send's A/B rows in singlesend_stats did not make its links be read twice.
        singlesend_ids = {r["singlesend_id"] for r in links}
        link_reads = [r for r in requests_to(emulator, "/links") if "/singlesends/" in r["path"] and "page_token" not in r["query"]]
        assert len(link_reads) == len({r["path"] for r in link_reads}) >= len(singlesend_ids)
        if counts:
            assert any("page_token" in r["query"] for r in requests_to(emulator, "/links"))
            assert any("offset=500" in r["query"] for r in requests_to(emulator, "/v3/subusers/stats"))
            assert len(requests_to(emulator, "/v3/subusers/stats")) >= 3 * 2  # three groups of subusers, two pages each
            assert any("offset=20" in r["query"] for r in requests_to(emulator, "/stats/monthly")), "the monthly cap never cut a page"


def test_incremental_rereads_the_trailing_days_and_month_and_corrects_late_counts():
    with Emulator(size=60, seed=3, families=FAMILIES) as emulator:
        config = config_for(emulator, start_date=days_ago(200))
        catalog = catalog_for(config, STREAMS)
        first = read_in_process(config, catalog)
        assert not first.errors
        changed = emulator.mutate("subuser_stats", "late_counts", days=2, amount=7)["changed_days"]

        second = read_in_process(config, catalog, state=latest_states(first))
        assert not second.errors
        emitted = records_of(second)
        today = dt.datetime.now(dt.timezone.utc).date()
        trailing = {(today - dt.timedelta(days=n)) for n in range(3)}
        assert {r["date"] for r in emitted["subuser_stats"]} == {day.isoformat() for day in trailing}
        assert {r["date"] for r in emitted["subuser_monthly_stats"]} == {day.replace(day=1).isoformat() for day in trailing}
        truth = emulator.truth()
        late = sorted((r for r in truth["subuser_stats"] if r["date"] in changed), key=lambda r: (r["date"], r["name"]))
        assert late == sorted((r for r in emitted["subuser_stats"] if r["date"] in changed), key=lambda r: (r["date"], r["name"]))
        assert_equals_truth(merged(records_of(first), emitted), truth, SUBUSER_STREAMS)


def test_ten_percent_faults_still_give_the_exact_truth():
    with Emulator(size=60, seed=4, counts=LARGE, families=FAMILIES) as emulator:
        emulator.set_faults({"500": 0.03, "503": 0.02, "429": 0.02, "drop": 0.01, "truncate": 0.01, "nonjson": 0.01}, seed=6)
        config = config_for(emulator, start_date=days_ago(700))
        output = read_in_process(config, catalog_for(config, STREAMS, mode="full_refresh"))
        assert not output.errors
        assert sum(emulator.faults.injected.values()) > 0, "no fault was injected: the test proves nothing"
        assert_equals_truth(records_of(output), emulator.truth())


def test_an_account_that_is_not_a_parent_skips_the_subuser_streams_with_a_warning_and_reads_the_others():
    with Emulator(size=40, seed=2, families=FAMILIES, products=["new_mc"]) as emulator:
        config = config_for(emulator, start_date=days_ago(100))
        output = read_in_process(config, catalog_for(config, STREAMS))
        truth = emulator.truth()
    assert not output.errors
    emitted = records_of(output)
    assert_equals_truth(emitted, truth, LINK_STREAMS)
    assert not any(stream in emitted for stream in SUBUSER_STREAMS)
    warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
    for stream in SUBUSER_STREAMS:
        assert any(w.startswith(f"Skipping stream {stream}:") for w in warnings), f"no warning for {stream}"
