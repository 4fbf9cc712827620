"""Records and requests per stream, for a full sync and then an incremental sync, on the benchmark's largest
account (or `--size N`): what each stream costs against SendGrid's per-request limits.

    .venv/bin/python bench/streams.py                      # every stream; minutes
    .venv/bin/python bench/streams.py --streams subuser_stats,engagement_quality_scores --size 1000

Each stream is read on its own through the command line (`python -m source_sendgrid read`), so the requests
the emulator counts during that read are the stream's own (plus the one `/v3/scopes` request every read
makes, which is left out). The incremental sync starts from the state the full sync saved, with the
default `lookback_days` of 1; nothing changes in the account between the two.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.compare import START_DATE, emulator_counts, request_total, write_export_files  # noqa: E402
from sendgrid_emulator import Emulator  # noqa: E402
from sendgrid_emulator.harness import catalog_for, config_for, run_cli  # noqa: E402


def read_one(emulator: Emulator, config: Dict, catalog: Dict, stream: str, state: Optional[List[Dict]] = None):
    """(records, requests without /v3/scopes, seconds, states) of one read of one stream of `catalog`."""
    before = request_total(emulator)
    started = time.monotonic()
    one = {"streams": [c for c in catalog["streams"] if c["stream"]["name"] == stream]}
    run = run_cli("read", config, one, state=state, timeout=3600)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"{stream}: the read failed: {run.error_messages() or run.stderr[-500:]}")
    return len(run.records().get(stream, [])), request_total(emulator) - before - 1, seconds, run.last_states()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, help="emulator size (default: the largest account of bench/compare.py)")
    parser.add_argument("--streams", help="comma-separated stream names (default: every stream)")
    args = parser.parse_args()
    largest = args.size is None
    size = args.size or 100_000
    started = time.monotonic()
    emulator = Emulator(size=size, seed=2024, counts=emulator_counts(size, largest, {})).start()
    print(f"emulator: size {size}{' (largest account)' if largest else ''}, seeded in {time.monotonic() - started:.1f} s; "
          f"contacts export files written in {write_export_files(emulator):.1f} s, before the syncs")
    try:
        config = config_for(emulator, start_date=START_DATE, lookback_days=1)
        with contextlib.redirect_stdout(io.StringIO()):  # discover, in this process, logs to stdout
            catalog = catalog_for(config)
        names = args.streams.split(",") if args.streams else [c["stream"]["name"] for c in catalog["streams"]]
        truth = emulator.truth()
        print("| stream | truth | full: records | full: requests | full: s | incremental: records | incremental: requests | incremental: s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            full_records, full_requests, full_seconds, states = read_one(emulator, config, catalog, name)
            inc_records, inc_requests, inc_seconds, _ = read_one(emulator, config, catalog, name, state=states)
            expected = len(truth[name]) if name in truth else "-"
            print(f"| {name} | {expected} | {full_records:,} | {full_requests:,} | {full_seconds:.1f} | "
                  f"{inc_records:,} | {inc_requests:,} | {inc_seconds:.1f} |", flush=True)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
