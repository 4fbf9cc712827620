"""Engagement Quality scores and bounce classification totals end to end: the connector's output against the
emulator's ground truth, with days SendGrid has not computed yet."""

import datetime as dt
from urllib.parse import parse_qs

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, key_of, latest_states, read_in_process, records_of

STREAMS = {
    "engagement_quality_scores": ["date"],
    "subuser_engagement_quality_scores": ["date", "user_id"],
    "bounce_classifications": ["date", "classification"],
}
SEQ_STREAMS = ("engagement_quality_scores", "subuser_engagement_quality_scores")
COUNTS = {"seq_subusers": 1200, "seq_pending_days": 3, "bounce_classification_days": 400}


def assert_equals_truth(emitted, truth, streams=STREAMS):
    for stream, primary_key in streams.items():
        got = sorted(emitted.get(stream, []), key=lambda r: key_of(r, primary_key))
        expected = sorted(truth[stream], key=lambda r: key_of(r, primary_key))
        assert len(got) == len(expected), f"{stream}: {len(got)} records, truth has {len(expected)}"
        assert got == expected, f"{stream}: records differ from the emulator's truth"


def merged(*outputs):
    """What a destination holds after deduplicating on the primary key, the last row winning."""
    table = {}
    for emitted in outputs:
        for stream, primary_key in STREAMS.items():
            for record in emitted.get(stream, []):
                table.setdefault(stream, {})[key_of(record, primary_key)] = record
    return {stream: list(rows.values()) for stream, rows in table.items()}


def state_day(states, stream):
    return next(s["stream"]["stream_state"]["date"] for s in states if s["stream"]["stream_descriptor"]["name"] == stream)


def days_ago(days):
    return (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)).isoformat()


def asked(emulator, path, param):
    return [parse_qs(r["query"])[param][0] for r in emulator.requests_log if r["path"] == path]


@pytest.fixture
def emulator():
    with Emulator(size=40, seed=8, counts=COUNTS, families=["engagement"]) as running:
        yield running


def test_a_start_date_years_back_reads_the_last_89_days_of_scores_and_equals_ground_truth(emulator):
    config = config_for(emulator, start_date="2015-01-01T00:00:00Z")
    output = read_in_process(config, catalog_for(config, STREAMS))
    assert not output.errors
    assert_equals_truth(records_of(output), emulator.truth())
    # Asking further back than 90 days would be a 400 ("cannot be more than 90 days in the past").
    assert asked(emulator, "/v3/engagementquality/scores", "from") == [days_ago(89)]
    subuser_days = asked(emulator, "/v3/engagementquality/subusers/scores", "date")
    assert min(subuser_days) == days_ago(89)
    # 1200 subusers: two keyset pages for each day computed, one 202 for each of the three that are not.
    assert len(subuser_days) == 2 * 87 + 3
    states = latest_states(output)
    for stream in SEQ_STREAMS:
        assert state_day(states, stream) == f"{days_ago(3)}T00:00:00Z", f"{stream}: the state passed a day not computed"


def test_days_not_computed_are_read_by_a_later_sync_once_computed_and_late_bounces_are_corrected(emulator):
    config = config_for(emulator, start_date="2015-01-01T00:00:00Z")
    catalog = catalog_for(config, STREAMS)
    first = read_in_process(config, catalog)
    assert not first.errors
    pending = [days_ago(n) for n in (2, 1, 0)]
    assert not any(r["date"] in pending for stream in SEQ_STREAMS for r in records_of(first)[stream])

    # Nothing new is computed yet: the next sync asks for those days again, and its state stays.
    second = read_in_process(config, catalog, state=latest_states(first))
    assert not second.errors
    assert {state_day(latest_states(second), stream) for stream in SEQ_STREAMS} == {f"{days_ago(3)}T00:00:00Z"}

    emulator.mutate("engagement", "compute")
    changed = emulator.mutate("engagement", "late_bounces", days=2, amount=9)["changed_days"]
    third = read_in_process(config, catalog, state=latest_states(second))
    assert not third.errors
    emitted = records_of(third)
    assert {r["date"] for r in emitted["subuser_engagement_quality_scores"]} == set(pending)
    assert set(pending) <= {r["date"] for r in emitted["engagement_quality_scores"]}
    assert set(changed) <= {r["date"] for r in emitted["bounce_classifications"]}
    for stream in SEQ_STREAMS:
        assert state_day(latest_states(third), stream) == f"{days_ago(0)}T00:00:00Z"

    # Deduplicated on the key, the three syncs hold exactly what SendGrid holds now, late bounces included.
    assert_equals_truth(merged(records_of(first), records_of(second), emitted), emulator.truth())


def test_an_account_that_is_not_a_parent_skips_subusers_scores_with_a_warning_and_reads_the_rest():
    with Emulator(size=20, seed=2, families=["engagement"], products=[]) as emulator:
        config = config_for(emulator, start_date="2024-01-01T00:00:00Z")
        output = read_in_process(config, catalog_for(config, STREAMS))
        truth = emulator.truth()
    assert not output.errors
    emitted = records_of(output)
    assert "subuser_engagement_quality_scores" not in emitted
    assert_equals_truth(emitted, truth, {s: k for s, k in STREAMS.items() if s != "subuser_engagement_quality_scores"})
    warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
    assert any("subuser_engagement_quality_scores" in w and "parent account" in w for w in warnings)


def test_ten_percent_faults_still_give_the_exact_truth():
    with Emulator(size=40, seed=8, counts={"seq_pending_days": 1}, families=["engagement"]) as emulator:
        # At most two faults running per request, so the retries' backoff stays short.
        emulator.set_faults({"500": 0.03, "503": 0.02, "429": 0.02, "drop": 0.01, "truncate": 0.01, "nonjson": 0.01},
                            seed=4, max_in_a_row=2)
        config = config_for(emulator, start_date="2015-01-01T00:00:00Z")
        output = read_in_process(config, catalog_for(config, STREAMS, mode="full_refresh"))
        assert not output.errors
        assert sum(emulator.faults.injected.values()) > 0, "no fault was injected: the test proves nothing"
        assert_equals_truth(records_of(output), emulator.truth())
