"""Benchmark: syncs under SendGrid's per-endpoint rate limits, against their lower bound.

    PYTHONPATH=$PWD .venv/bin/python bench/rate_limits.py                       # every scenario, ~6 minutes
    PYTHONPATH=$PWD .venv/bin/python bench/rate_limits.py --scenario activity --before /tmp/old

Scenarios (the emulator runs in this process; windows are scaled down so that nothing takes real minutes):
  shared    /v3/messages at 6 per 10 s, every other endpoint at 100 per 10 s (the measurement of 0.2.2 in
            issue 18): email_activity alone, five suppression streams plus legacy_contacts alone, and all of
            them together. With --before DIR, the connector in DIR (e.g. a worktree of an older commit) too.
  realistic every stream, each endpoint at SendGrid's limit (faults.REALISTIC_LIMITS) per --window seconds
            instead of 60, on a --size account or (--largest) bench/compare.py's largest one: requests per endpoint, the lower bound (the largest, over endpoints, of requests ÷
            that endpoint's limit × the window, plus the contacts export's ready time), wall time, their ratio
            and 429s per 1,000 requests.
  activity  email_activity on a 100k-message account at 6 queries per --window seconds: queries, wall time,
            and the ratio of queries to the least number that can return every message, ceil(messages / 1000).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from compare import configured_catalog, discover, emulator_counts, ours_command, sync, write_export_files  # noqa: E402
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator  # noqa: E402
from sendgrid_emulator.faults import REALISTIC_DEFAULT_LIMIT, REALISTIC_LIMITS  # noqa: E402

SUPPRESSIONS_AND_LEGACY = ["bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions", "legacy_contacts"]
START_DATE = "2009-01-01T00:00:00Z"
MESSAGES = "GET /v3/messages"


def env_for(code: Path) -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code)}


def by_endpoint(emulator: Emulator, since: float) -> Counter:
    return Counter(emulator.endpoint_of(entry["method"], entry["path"]) for entry in list(emulator.requests_log)
                   if entry["at"] >= since and entry["path"].startswith("/v3/"))


def export_ready_seconds(emulator: Emulator, since: float) -> float:
    """From the export's creation to the poll that found it ready (the last poll)."""
    log = [e for e in list(emulator.requests_log) if e["at"] >= since and e["path"].startswith("/v3/marketing/contacts/exports")]
    created = [e["at"] for e in log if e["method"] == "POST"]
    polls = [e["at"] for e in log if e["method"] == "GET"]
    return max(polls) - min(created) if created and polls else 0.0


def finished_after(run, started: float, streams: Sequence[str]) -> float:
    """Seconds from the sync's start to the last record of `streams`."""
    ends = [run.spans[s][1] / 1000.0 for s in streams if s in run.spans]
    return max(ends) - started if ends else float("nan")


def run_sync(label: str, code: Path, emulator: Emulator, config: dict, names: List[str], workdir: Path, timeout: float):
    streams = discover(ours_command(), config, env_for(code), workdir)
    catalog = configured_catalog(streams, names)
    since = time.time()
    run = sync(label, "ours", ours_command(), env_for(code), emulator, config, catalog, None, workdir, timeout)
    return run, since


def shared(args: argparse.Namespace, workdir: Path) -> None:
    counts = {"messages": args.shared_messages, "message_days": 10, "suppressions_per_list": 10_000,
              "legacy_recipients": 20_000}
    emulator = Emulator(size=100, seed=2024, counts=counts, families=["activity", "suppressions", "contactdb"]).start()
    emulator.set_rate_limit(100, 10.0, endpoint_limits={MESSAGES: 6})
    config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "start_date": START_DATE}
    versions = [("after", REPO)] + ([("before", Path(args.before))] if args.before else [])
    print("\n## /v3/messages 6 per 10 s, every other endpoint 100 per 10 s\n")
    print("| code | streams | records | requests | 429s | wall s | other streams' last record, s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for version, code in versions:
        for label, names in (("email_activity alone", ["email_activity"]),
                             ("suppressions + legacy_contacts alone", SUPPRESSIONS_AND_LEGACY),
                             ("all together", ["email_activity", *SUPPRESSIONS_AND_LEGACY])):
            time.sleep(10.5)  # every window of the run before is over
            run, since = run_sync(label, code, emulator, config, names, workdir, args.timeout)
            others = finished_after(run, since, SUPPRESSIONS_AND_LEGACY) if "legacy_contacts" in names else float("nan")
            failed = f" (exit {run.returncode})" if run.returncode else ""
            print(f"| {version}{failed} | {label} | {run.records:,} | {run.requests:,} | {run.rate_limited} | "
                  f"{run.wall:.1f} | {others:.1f} |", flush=True)
    emulator.stop()


def realistic(args: argparse.Namespace, workdir: Path) -> None:
    counts = emulator_counts(args.size, args.largest, {"messages": args.realistic_messages})
    emulator = Emulator(size=args.size, seed=2024, counts=counts).start()
    write_export_files(emulator)
    emulator.set_rate_limit(REALISTIC_DEFAULT_LIMIT, args.window, endpoint_limits=dict(REALISTIC_LIMITS))
    config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "start_date": START_DATE}
    truth = {stream: len(records) for stream, records in emulator.truth().items()}
    names = [n for n in (s["name"] for s in discover(ours_command(), config, env_for(REPO), workdir)) if n in truth]
    run, since = run_sync("every stream", REPO, emulator, config, names, workdir, args.timeout)
    requests = by_endpoint(emulator, since)
    limits = {endpoint: REALISTIC_LIMITS.get(endpoint, REALISTIC_DEFAULT_LIMIT) for endpoint in requests}
    bounds = {endpoint: requests[endpoint] / limits[endpoint] * args.window for endpoint in requests}
    ready = export_ready_seconds(emulator, since)
    bound = max(bounds.values()) + ready
    account = "the largest account of bench/compare.py" if args.largest else f"size {args.size}"
    print(f"\n## every stream, SendGrid's limits per {args.window:g} s instead of 60 s ({account}, "
          f"{sum(truth.values()):,} records, {args.realistic_messages:,} messages)\n")
    print("| endpoint | requests | limit per window | requests ÷ limit × window, s |\n|---|---:|---:|---:|")
    for endpoint, count in requests.most_common():
        print(f"| {endpoint} | {count:,} | {limits[endpoint]} | {bounds[endpoint]:.1f} |")
    total = sum(requests.values())
    mismatched = [s for s in names if run.per_stream.get(s, 0) != truth.get(s, 0)]
    print(f"\n| records | requests | 429s | 429s per 1,000 requests | export ready s | lower bound s | wall s | wall ÷ bound |\n"
          f"|---:|---:|---:|---:|---:|---:|---:|---:|\n"
          f"| {run.records:,} | {total:,} | {run.rate_limited} | {1000 * run.rate_limited / total:.2f} | {ready:.1f} | "
          f"{bound:.1f} | {run.wall:.1f} | {run.wall / bound:.2f} |")
    if run.returncode or mismatched:
        print(f"\nWARNING: exit {run.returncode}; record counts differ from the truth in {mismatched}")
    emulator.stop()


def activity(args: argparse.Namespace, workdir: Path) -> None:
    versions = [("after", REPO)] + ([("before", Path(args.before))] if args.before else [])
    print(f"\n## email_activity, {args.messages:,} messages over {args.message_days} days, 6 queries per "
          f"{args.window:g} s (SendGrid: per 60 s)\n")
    print("| code | records | queries | least queries | queries ÷ least | 429s | wall s | at 6 a minute, min |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")
    for version, code in versions:
        emulator = Emulator(size=10, seed=2024, counts={"messages": args.messages, "message_days": args.message_days},
                            families=["activity"]).start()
        emulator.set_rate_limit(0, args.window, endpoint_limits={MESSAGES: 6})
        config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "start_date": START_DATE}
        run, since = run_sync("email_activity", code, emulator, config, ["email_activity"], workdir, args.timeout)
        queries = by_endpoint(emulator, since)[MESSAGES]
        least = math.ceil(args.messages / 1000)
        failed = f" (exit {run.returncode})" if run.returncode else ""
        print(f"| {version}{failed} | {run.records:,} | {queries} | {least} | {queries / least:.2f} | {run.rate_limited} | "
              f"{run.wall:.1f} | {queries * 10 / 60:.1f} |", flush=True)
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=["shared", "realistic", "activity"],
                        help="run only these (repeatable; default: all)")
    parser.add_argument("--before", help="also run the connector whose code is in this directory (shared, activity)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds a 60-second SendGrid window lasts here")
    parser.add_argument("--size", type=int, default=2000, help="emulator size for the realistic scenario")
    parser.add_argument("--largest", action="store_true",
                        help="realistic scenario on the largest account of bench/compare.py (--size sets the rest)")
    parser.add_argument("--realistic-messages", type=int, default=20_000)
    parser.add_argument("--shared-messages", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=100_000, help="messages for the activity scenario")
    parser.add_argument("--message-days", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    scenarios = args.scenario or ["shared", "realistic", "activity"]
    with tempfile.TemporaryDirectory(prefix="sendgrid-rate-bench-") as tmp:
        for name in scenarios:
            {"shared": shared, "realistic": realistic, "activity": activity}[name](args, Path(tmp))


if __name__ == "__main__":
    main()
