"""Fault matrix, end to end: every fault kind the emulator injects, at 1 %, 10 % and 30 % of requests.

Each cell reads every discovered stream through the entrypoint (in-process) and asserts that the records
equal the emulator's ground truth exactly (same records, no loss, no duplicate), or, where the faults never
end, that the sync fails with a clear, specific error once its bounded retries are spent.

Backoff waits are real in the rate-limiter storms (the connector must wait for the window to reset) and
compressed to ~1 ms in the random-fault cells (the connector asks for the same waits; we record them),
so the whole matrix runs in CI time. Read timeouts are shortened on `SendgridStream.request_timeout`.
A request is faulted at most four times running (fewer than our retries; see `FaultPlan.max_in_a_row`), so a
cell never fails by the luck of the draw; the endless-fault tests cover retries running out.
Run with `-s` to print one `MATRIX` line per cell (kind, rate, equal, requests, retries, 429s, wall time).
"""

from __future__ import annotations

import collections

import os
import sys
import time
import types
from typing import Any, Dict, List, Mapping

import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.harness import STATS_LINE, catalog_for, config_for, key_of, read_with_command_line, records_of, request_stats, run_cli
from source_sendgrid.base import SendgridStream

RATES = [0.01, 0.10, 0.30]
# Fault kind of this matrix -> the emulator's fault kind.
KINDS = {
    "429": "429",
    "500": "500",
    "502": "502",
    "503": "503",
    "dropped connection": "drop",
    "read timeout": "slow",
    "truncated 200": "truncate",
    "non-JSON 200": "nonjson",
    "HTML error page": "html",
}
# Seeded records start on 2023-01-01; starting just before keeps the windowed streams' requests few.
START_DATE = "2022-12-01T00:00:00Z"
GENERIC_CRASH = "Something went wrong in the connector"
# The connector's command line with a 0.3 s read timeout (its worker processes are forked, so they keep it).
SHORT_READ_TIMEOUT_CLI = [sys.executable, "-c", "from source_sendgrid.base import SendgridStream; "
                          "SendgridStream.request_timeout = (10, 0.3); from source_sendgrid.run import run; run()"]


@pytest.fixture
def fast_backoff(monkeypatch):
    """Record every backoff wait the CDK (and the request budget) is asked to sleep, and sleep 1 ms instead."""
    from airbyte_cdk.sources.streams.http import rate_limiting

    waits: List[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(min(seconds, 0.001))

    shim = types.SimpleNamespace(sleep=sleep, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(rate_limiting, "time", shim)
    # The shared request budget also waits when a 429 says no request is left in the window.
    from source_sendgrid import budget

    monkeypatch.setattr(budget, "time", shim)
    return waits


def new_emulator(**kwargs: Any) -> Emulator:
    """An emulator with every family (or those named in RELIABILITY_FAMILIES, comma-separated, to debug one)."""
    families = [f for f in os.environ.get("RELIABILITY_FAMILIES", "").split(",") if f] or None
    return Emulator(families=families, **kwargs)


def covered_catalog(emulator: Emulator, config: Mapping[str, Any], mode: str) -> Dict[str, Any]:
    """Every discovered stream the emulator has a ground truth for (new families join automatically)."""
    truth = emulator.truth()
    return {"streams": [c for c in catalog_for(config, mode=mode)["streams"] if c["stream"]["name"] in truth]}


def primary_keys(catalog: Mapping[str, Any]) -> Dict[str, List[str]]:
    keys = {}
    for configured in catalog["streams"]:
        key = configured["stream"].get("source_defined_primary_key") or []
        keys[configured["stream"]["name"]] = [path[0] for path in key]
    return keys


def sort_key(primary_key: List[str]):
    return lambda record: (repr(key_of(record, primary_key)) if primary_key else "", repr(sorted(record.items())))


def assert_equals_truth(emitted: Mapping[str, List[dict]], truth: Mapping[str, List[dict]], catalog: Mapping[str, Any]) -> None:
    compared = 0
    for stream, primary_key in primary_keys(catalog).items():
        if stream not in truth:
            continue  # a stream whose family the emulator has no ground truth for
        got = sorted(emitted.get(stream, []), key=sort_key(primary_key))
        expected = sorted(truth[stream], key=sort_key(primary_key))
        assert len(got) == len(expected), f"{stream}: {len(got)} records emitted, the truth has {len(expected)}"
        assert got == expected, f"{stream}: records differ from the emulator's truth"
        compared += 1
    assert compared, "no stream had a ground truth to compare with"


def read_all(emulator: Emulator, **overrides: Any):
    config = config_for(emulator, **{"start_date": START_DATE, "window_days": 30, **overrides})
    catalog = covered_catalog(emulator, config, mode="full_refresh")
    started = time.monotonic()
    output = read_with_command_line(config, catalog, expecting_exception=True)
    return output, catalog, time.monotonic() - started


@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"{int(r * 100)}pct")
@pytest.mark.parametrize("kind", list(KINDS))
def test_fault_matrix_records_equal_the_truth(kind, rate, fast_backoff, monkeypatch):
    monkeypatch.setattr(SendgridStream, "request_timeout", (10, 0.1))
    with new_emulator(size=40, seed=5) as emulator:
        emulator.set_faults({KINDS[kind]: rate}, seed=int(rate * 1000) + len(kind), slow_seconds=0.4, max_in_a_row=4)
        output, catalog, wall = read_all(emulator)
        injected = sum(emulator.stats()["faults"].values())
        truth = emulator.truth()
    errors = [e.trace.error.message for e in output.errors]
    requests, retries, rate_limited = request_stats(output)
    print(f"\nMATRIX | {kind} | {int(rate * 100)}% | equal={not errors} | requests={requests} | retries={retries} "
          f"| 429s={rate_limited} | injected={injected} | backoff asked={sum(fast_backoff):.1f}s | wall={wall:.1f}s")
    assert not errors, errors
    assert injected > 0, "no fault was injected: this cell proves nothing"
    assert retries >= injected, f"{injected} faults injected but only {retries} retries counted"
    if kind == "429":
        assert rate_limited == injected
    assert_equals_truth(records_of(output), truth, catalog)


def test_the_fault_plan_caps_faults_in_a_row_per_request_and_counts_only_injected_ones():
    """The matrix's cap: a request is faulted at most `max_in_a_row` times running, then answered."""
    from sendgrid_emulator.faults import FaultPlan

    plan = FaultPlan(rates={"500": 1.0}, max_in_a_row=2)
    page_one = [plan.draw("/v3/bounces", "GET /v3/bounces?offset=0") for _ in range(6)]
    other = plan.draw("/v3/blocks", "GET /v3/blocks?offset=0")
    assert page_one == ["500", "500", None, "500", "500", None]
    assert other == "500"
    assert plan.injected == {"500": 5}
    assert FaultPlan(rates={"500": 1.0}).draw("/v3/bounces", "x") == "500"


@pytest.mark.parametrize("reset_style", ["epoch", "delta"])
def test_a_429_storm_from_the_rate_limiter_waits_for_the_reset_and_loses_nothing(reset_style):
    """Real waits: 10 requests a second on each endpoint (SendGrid limits each endpoint on its own),
    X-RateLimit-Reset as an epoch or as seconds until the reset."""
    limit = 10
    with new_emulator(size=40, seed=6) as emulator:
        emulator.set_rate_limit(limit, window_seconds=1.0, reset_style=reset_style, endpoint_limits={})
        output, catalog, wall = read_all(emulator, window_days=120)
        truth = emulator.truth()
        rejected = emulator.stats()["rate_limited"]
        per_endpoint = collections.Counter(emulator.endpoint_of(r["method"], r["path"]) for r in emulator.requests_log
                                           if r["path"].startswith("/v3/"))
    requests, retries, rate_limited = request_stats(output)
    busiest, busiest_requests = per_endpoint.most_common(1)[0]
    print(f"\nMATRIX | 429 storm, reset as {reset_style} | limit {limit}/s per endpoint | equal={not output.errors} "
          f"| requests={requests} | retries={retries} | 429s={rate_limited} | busiest={busiest} ({busiest_requests}) "
          f"| wall={wall:.1f}s")
    assert not output.errors, [e.trace.error.message for e in output.errors]
    assert rate_limited == rejected, "every 429 the emulator sent must be counted"
    # Never more than one 429 per window of an endpoint: after one (or once its headers say none is left), it waits.
    assert rate_limited <= sum(count / limit + 1 for count in per_endpoint.values())
    # It did keep to the limit: the emulator would have answered 429 to anything faster on the busiest endpoint.
    assert busiest_requests > 2 * limit and wall >= busiest_requests / limit - 2
    assert_equals_truth(records_of(output), truth, catalog)


@pytest.mark.parametrize("kind, expected", [
    ("500", "500"),
    ("503", "503"),
    ("drop", "Connection"),
    ("nonjson", "unreadable"),
    ("429", "rate limit"),
])
def test_endless_faults_on_one_stream_fail_it_clearly_once_retries_are_spent(kind, expected, fast_backoff):
    with new_emulator(size=40, seed=5) as emulator:
        emulator.set_faults({kind: 1.0}, path_regex=r"^/v3/suppression/blocks")
        output, catalog, _ = read_all(emulator)
        truth = emulator.truth()
        tries = sum(1 for r in emulator.requests_log if r["path"].startswith("/v3/suppression/blocks"))
    messages = [e.trace.error.message for e in output.errors] + [str(e.trace.error.internal_message) for e in output.errors]
    assert output.errors, "the stream never failed"
    assert not any(GENERIC_CRASH in m for m in messages), messages
    assert any("blocks" in m for m in messages), messages
    assert any(expected.lower() in m.lower() for m in messages), messages
    # Bounded: the first try and MAX_RETRIES retries, no more.
    from source_sendgrid.errors import MAX_RETRIES

    assert tries == MAX_RETRIES + 1
    # The request statistics are logged even though the sync failed.
    requests, retries, _ = request_stats(output)
    assert retries >= MAX_RETRIES
    # The other streams still delivered everything.
    emitted = records_of(output)
    assert "blocks" not in emitted
    assert len(emitted["bounces"]) == len(truth["bounces"])


def test_read_timeouts_through_the_cli_are_retried_and_lose_nothing():
    """The subprocess sets its own short read timeout; real backoff waits."""
    with new_emulator(size=40, seed=8) as emulator:
        emulator.set_faults({"slow": 0.08}, seed=2, slow_seconds=0.8)
        config = config_for(emulator, start_date=START_DATE, window_days=120)
        catalog = catalog_for(config, ["bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions"],
                              mode="full_refresh")
        run = run_cli("read", config, catalog, timeout=300, connector=SHORT_READ_TIMEOUT_CLI)
        truth = emulator.truth()
        injected = emulator.stats()["faults"].get("slow", 0)
    assert run.returncode == 0, run.error_messages()
    assert injected > 0
    line = next(m["log"]["message"] for m in run.of_type("LOG") if STATS_LINE.search(m["log"]["message"]))
    assert int(STATS_LINE.search(line).group(2)) >= injected
    assert_equals_truth(run.records(), truth, catalog)
