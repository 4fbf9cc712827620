"""Reading streams at once gives exactly what reading them one after another gives, and stays under
the emulator's rate limit without collecting 429s."""

import sys
from collections import Counter

import orjson
import pytest
from airbyte_cdk.models import AirbyteMessageSerializer

from sendgrid_emulator.harness import (
    catalog_for,
    config_for,
    latest_states,
    read_in_process,
    read_with_command_line,
    records_of,
    request_stats,
)
from source_sendgrid.windows import utc_now

SUPPRESSION_LISTS = ["bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions"]


def multiset(records):
    return {stream: Counter(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in rows) for stream, rows in records.items()}


def freeze_now(monkeypatch):
    """Windows end at "now": reads compared must see the same now for their final states to be comparable."""
    frozen = utc_now()
    for name, module in list(sys.modules.items()):
        if name.startswith("source_sendgrid") and getattr(module, "utc_now", None) is utc_now:
            monkeypatch.setattr(module, "utc_now", lambda: frozen)


@pytest.mark.parametrize("reader", ["threads", "processes"])
def test_a_concurrent_read_equals_a_sequential_one_records_and_final_states(emulator, monkeypatch, reader):
    """Threads: any caller of SourceSendgrid.read; processes: the command line's entrypoint."""
    freeze_now(monkeypatch)
    sequential_config = config_for(emulator, concurrency=1)
    catalog = catalog_for(sequential_config)
    sequential = read_in_process(sequential_config, catalog)
    read_concurrently = read_in_process if reader == "threads" else read_with_command_line
    requests_before = emulator_requests(emulator)
    concurrent = read_concurrently(config_for(emulator, concurrency=8), catalog)

    assert not sequential.errors and not concurrent.errors
    assert multiset(records_of(concurrent)) == multiset(records_of(sequential))
    assert sum(len(rows) for rows in records_of(sequential).values()) > 0
    by_name = lambda states: {s["stream"]["stream_descriptor"]["name"]: s for s in states}  # noqa: E731
    assert by_name(latest_states(concurrent)) == by_name(latest_states(sequential))
    # Every stream ends COMPLETE in both, whatever order the streams ran in.
    assert _final_statuses(concurrent) == _final_statuses(sequential)
    # Each state counts the records of its stream since the one before, wherever they were read.
    assert_state_record_counts(concurrent)
    # The requests every worker made add up in the one count the sync reports.
    requests, _, _ = request_stats(concurrent)
    assert requests == emulator_requests(emulator) - requests_before


def emulator_requests(emulator) -> int:
    return sum(count for name, count in emulator.stats()["counters"].items() if not name.endswith(" control"))


def assert_state_record_counts(output):
    since_state: Counter = Counter()
    checked = 0
    for message in output.get_message_iterator():
        if message.record is not None:
            since_state[message.record.stream] += 1
        elif message.state is not None:
            name = message.state.stream.stream_descriptor.name
            assert message.state.sourceStats.recordCount == since_state.pop(name, 0), name
            checked += 1
    assert checked and not since_state, "every record is followed by a state of its stream"


def test_under_a_rate_limit_concurrent_streams_wait_for_the_window_instead_of_collecting_429s(emulator):
    config = config_for(emulator, concurrency=4, window_days=3650)
    catalog = catalog_for(config, SUPPRESSION_LISTS, mode="full_refresh")
    # As SendGrid does: each endpoint has its own window of 4 requests a second.
    emulator.set_rate_limit(4, window_seconds=1.0, endpoint_limits={})
    output = read_in_process(config, catalog)

    assert not output.errors
    truth = emulator.truth()
    emitted = records_of(output)
    assert {name: len(emitted.get(name, [])) for name in SUPPRESSION_LISTS} == {name: len(truth[name]) for name in SUPPRESSION_LISTS}
    # At most a stray 429 where a window turned over between two responses.
    assert emulator.limiter.rejected <= 1


def _final_statuses(output):
    final = {}
    for message in output.get_message_iterator():
        if message.trace is not None and message.trace.stream_status is not None:
            status = message.trace.stream_status
            final[status.stream_descriptor.name] = status.status
    return final


def _in_order(output):
    """Every message but logs, in order, without clock readings."""
    out = []
    for message in output.get_message_iterator():
        raw = orjson.loads(orjson.dumps(AirbyteMessageSerializer.dump(message)))
        if raw["type"] == "LOG":
            continue
        for part in ("record", "trace"):
            if part in raw:
                raw[part].pop("emitted_at", None)
        out.append(raw)
    return out


def _stream_logs(output):
    return Counter(m for m in (log.log.message for log in output.logs) if m.startswith(("Marking stream", "Read ", "Syncing stream:")))


@pytest.mark.parametrize("mode", ["full_refresh", "incremental"])
def test_reading_page_by_page_writes_exactly_what_the_cdks_record_loop_writes(emulator, monkeypatch, mode):
    """The command line hands each page over as record lines (SendgridStream.emit_pages_as_lines); the CDK's
    entrypoint reads record by record. One stream at a time, both write the same messages in the same order:
    records, states with their record counts, and statuses, for every stream, from no state and from a state."""
    freeze_now(monkeypatch)
    config = config_for(emulator, concurrency=1)
    catalog = catalog_for(config, mode=mode)
    first = read_in_process(config, catalog)
    state = latest_states(first) if mode == "incremental" else None
    by_records = read_in_process(config, catalog, state=state)
    by_pages = read_with_command_line(config, catalog, state=state)

    assert not by_records.errors and not by_pages.errors
    assert len(by_pages.records) > 100
    assert _in_order(by_pages) == _in_order(by_records)
    assert _stream_logs(by_pages) == _stream_logs(by_records)
