"""Benchmark: list_members and segment_members on an account with 2,000 lists and about 1M list memberships.

    .venv/bin/python bench/memberships.py                      # 400,000 contacts, 0-5 lists each (about 1M)
    .venv/bin/python bench/memberships.py --contacts 40000     # a tenth, to iterate

It seeds the emulator in this process, then runs the connector (`python -m source_sendgrid read`, its own
process, stdout to a file) over list_members and segment_members twice: with the emulator's default export
(as captured from a live account: no LIST_IDS/SEGMENT_IDS columns, so the memberships come from
`POST /v3/marketing/contacts/batch`, 100 contacts a request, for each stream) and with the variant whose
export carries those columns (no batch request). Requests are counted by the emulator (API and file host).
The projected time is the requests alone at SendGrid's documented default of 600 requests a minute; the
export job's own processing time at SendGrid comes on top, the same in both variants.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from compare import Run, configured_catalog, discover, read_output, run_process, write  # noqa: E402

from sendgrid_emulator import FULL_ACCESS_KEY, Emulator  # noqa: E402

STREAMS = ("list_members", "segment_members")
EXPORTS = "/v3/marketing/contacts/exports"
BATCH = "/v3/marketing/contacts/batch"
SENDGRID_REQUESTS_PER_MINUTE = 600


@dataclass
class Result:
    variant: str
    export_jobs: int
    batch_requests: int
    api_requests: int
    downloads: int
    records: int
    expected: int
    wall: float
    rss_mb: float
    returncode: int

    @property
    def projected_minutes(self) -> float:
        """The API requests at SendGrid's rate (the file downloads go to S3, outside that limit)."""
        return self.api_requests / SENDGRID_REQUESTS_PER_MINUTE


def read_once(emulator: Emulator, variant: str, membership_columns: bool, catalog: dict, config: dict, workdir: Path,
              expected: int, timeout: float) -> Result:
    emulator.mutate("marketing", "export_settings", membership_columns=membership_columns)
    log_before = len(emulator.requests_log)
    api_before = emulator.api_requests
    downloads_before = len(emulator.account.data["mc_download_log"])
    args = [sys.executable, "-m", "source_sendgrid", "read", "--config", write(workdir / "config.json", config),
            "--catalog", write(workdir / "catalog.json", catalog)]
    out = workdir / f"{variant}.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's connector, not an installed one
    code, wall, _cpu, rss = run_process(args, env, out, timeout)
    run = Run(variant, "ours")
    read_output(out, run)
    out.unlink()
    sent = list(emulator.requests_log)[log_before:]
    if run.errors:
        print(f"{variant}: errors: {run.errors[:3]}", flush=True)
    return Result(variant, sum(r["method"] == "POST" and r["path"] == EXPORTS for r in sent),
                  sum(r["method"] == "POST" and r["path"] == BATCH for r in sent), emulator.api_requests - api_before,
                  len(emulator.account.data["mc_download_log"]) - downloads_before, run.records, expected, wall, rss, code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=400_000)
    parser.add_argument("--lists", type=int, default=2_000)
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--max-lists-per-contact", type=int, default=5, help="each contact is in 0 to this many lists")
    parser.add_argument("--timeout", type=float, default=900)
    options = parser.parse_args()

    started = time.monotonic()
    counts = {"contacts": options.contacts, "marketing_lists": options.lists, "segments": options.segments,
              "max_lists_per_contact": options.max_lists_per_contact}
    with Emulator(size=20, seed=3, families=["marketing"], counts=counts) as emulator:
        contacts = emulator.account.data["mc_contacts"]
        list_memberships = sum(len(c["list_ids"]) for c in contacts)
        segment_memberships = sum(len(c["segment_ids"]) for c in contacts)
        print(f"seeded {len(contacts):,} contacts, {options.lists:,} lists ({list_memberships:,} memberships), "
              f"{options.segments} segments ({segment_memberships:,} memberships) in {time.monotonic() - started:.0f} s",
              flush=True)
        config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url}
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            catalog = configured_catalog(discover([sys.executable, "-m", "source_sendgrid"], config, env, workdir), STREAMS)
            expected = list_memberships + segment_memberships
            results = [read_once(emulator, variant, columns, catalog, config, workdir, expected, options.timeout)
                       for variant, columns in (("no columns (default)", False), ("with columns", True))]

    print()
    print("| variant | export jobs | batch requests | API requests | file downloads | records | exact | wall s | peak RSS MB | "
          "API requests at 600/min |")
    print("|---|---:|---:|---:|---:|---:|:-:|---:|---:|---:|")
    for r in results:
        exact = "yes" if r.records == r.expected and r.returncode == 0 else f"NO (exit {r.returncode})"
        print(f"| {r.variant} | {r.export_jobs} | {r.batch_requests:,} | {r.api_requests:,} | {r.downloads:,} | {r.records:,} | {exact} | "
              f"{r.wall:.1f} | {r.rss_mb:.0f} | {r.projected_minutes:.1f} min + export job |")
    slow, fast = results
    print(f"| ratio no columns / with columns | {slow.export_jobs / max(1, fast.export_jobs):.1f} | - | "
          f"{slow.api_requests / max(1, fast.api_requests):.0f}x | {slow.downloads / max(1, fast.downloads):.1f} | "
          f"{slow.records / max(1, fast.records):.2f} | | "
          f"{slow.wall / fast.wall:.1f}x | {slow.rss_mb / fast.rss_mb:.2f}x | "
          f"+{slow.projected_minutes - fast.projected_minutes:.1f} min |")
    batches = 2 * math.ceil(len(contacts) / 100)
    print(f"\nexpected batch requests: 2 streams x ceil({len(contacts):,} / 100) = {batches:,}")
    jobs = 1 + options.lists + options.segments
    print(f"0.2.2 on the same account without the columns (one export job per list and segment, not run): {jobs:,} jobs, "
          f"at least {3 * jobs:,} requests (create, poll, download each), at least {3 * jobs / SENDGRID_REQUESTS_PER_MINUTE:.0f} "
          f"min at 600 req/min before {jobs:,} export jobs' own processing time")


if __name__ == "__main__":
    main()
