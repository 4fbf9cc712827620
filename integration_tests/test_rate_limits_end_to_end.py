"""SendGrid's per-endpoint rate limits, end to end against the emulator: a spent `/v3/messages` window holds
back only `/v3/messages`; every other stream goes on, in the worker processes of a concurrent read, without
a 429."""

from __future__ import annotations

import datetime as dt

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import catalog_for, config_for, read_with_command_line, records_of

SUPPRESSION_STREAMS = ["bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions",
                       "suppression_groups", "suppression_group_members"]
WINDOW_SECONDS = 5.0


def days_ago(days: int) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).strftime("%Y-%m-%dT00:00:00Z")


def test_given_email_activity_at_two_queries_a_window_when_every_stream_is_read_then_suppressions_finish_before_its_first_reset():
    counts = {"messages": 4500, "message_days": 3, "suppressions_per_list": 6000}
    with Emulator(size=40, seed=11, counts=counts, families=["activity", "suppressions"]) as emulator:
        emulator.set_rate_limit(1000, WINDOW_SECONDS, endpoint_limits={"GET /v3/messages": 2})
        config = config_for(emulator, start_date="2022-12-01T00:00:00Z", window_days=30, concurrency=4)
        # email_activity first, so that it spends its window before the others start.
        output = read_with_command_line(config, catalog_for(config, ["email_activity", *SUPPRESSION_STREAMS]))
        assert not output.errors
        emitted = records_of(output)
        truth = emulator.truth()
        for stream in ["email_activity", *SUPPRESSION_STREAMS]:
            assert len(emitted.get(stream, [])) == len(truth[stream]), stream

        log = list(emulator.requests_log)
        queries = [r["at"] for r in log if r["path"] == "/v3/messages"]
        others = [r["at"] for r in log if r["path"].startswith(("/v3/suppression/", "/v3/asm/"))]
        assert len(queries) >= 5, "email_activity never waited for its window: the test proves nothing"
        first_reset = queries[0] + WINDOW_SECONDS
        assert max(others) < first_reset, (
            f"the last suppression request went out {max(others) - queries[0]:.1f} s after the first /v3/messages "
            f"query, after its window of {WINDOW_SECONDS:g} s reset: it waited on email_activity's budget")
        assert emulator.limiter.rejected == 0, emulator.limiter.rejected_by_endpoint
