"""Load benchmark (not in CI): a sync of 1M+ records under a tight rate limit, through the real CLI.

    .venv/bin/python bench/load.py                       # 1,000,000 suppressions, 25 requests/s
    .venv/bin/python bench/load.py --records 200000 --rate-limit 10

The emulator runs in this process; the connector runs as `python -m source_sendgrid read` in a child process,
so its peak RSS is measured on its own (getrusage of the children). The bench checks that every record of the
ground truth arrived exactly once, counts the 429s the emulator sent (near zero once the connector has learned
the limit from X-RateLimit-Remaining/Reset), and fails if the connector's peak RSS exceeds --max-rss-mb.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sendgrid_emulator import FULL_ACCESS_KEY, Emulator  # noqa: E402
from sendgrid_emulator.harness import catalog_for  # noqa: E402

LISTS = ["bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="total over the five suppression lists")
    parser.add_argument("--rate-limit", type=int, default=25, help="requests per window per key")
    parser.add_argument("--rate-window", type=float, default=1.0, help="seconds")
    parser.add_argument("--reset-style", choices=["epoch", "delta"], default="epoch")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-rss-mb", type=float, default=1024.0, help="fail above this connector peak RSS")
    args = parser.parse_args()

    per_list = args.records // len(LISTS)
    with Emulator(size=100, seed=5, families=["suppressions"],
                  counts={"suppressions_per_list": per_list, "group_members": 1000}) as emulator:
        config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "start_date": "2022-12-01T00:00:00Z",
                  "window_days": 3650, "lookback_days": 0, "concurrency": args.concurrency}
        catalog = catalog_for(config, LISTS, mode="full_refresh")
        truth = {name: {r["email"] for r in records} for name, records in emulator.truth().items() if name in LISTS}
        emulator.set_rate_limit(args.rate_limit, args.rate_window, reset_style=args.reset_style)

        counts: Counter = Counter()
        duplicates = 0
        seen = {name: set() for name in LISTS}
        stats_line = ""
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.json").write_text(json.dumps(config))
            (Path(tmp) / "catalog.json").write_text(json.dumps(catalog))
            started = time.monotonic()
            process = subprocess.Popen(
                [sys.executable, "-m", "source_sendgrid", "read", "--config", f"{tmp}/config.json",
                 "--catalog", f"{tmp}/catalog.json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, bufsize=1 << 20)
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith(b'{"type":"RECORD"') or b'"RECORD"' in line[:30]:
                    message = json.loads(line)
                    stream, email = message["record"]["stream"], message["record"]["data"]["email"]
                    counts[stream] += 1
                    if email in seen[stream]:
                        duplicates += 1
                    seen[stream].add(email)
                elif b"SendGrid requests:" in line:
                    stats_line = json.loads(line)["log"]["message"]
            code = process.wait()
            wall = time.monotonic() - started
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        server = emulator.stats()

    total = sum(counts.values())
    equal = all(seen[name] == truth[name] for name in LISTS) and duplicates == 0
    result = {
        "records": total, "equal_to_truth": equal, "duplicates": duplicates, "exit_code": code,
        "wall_seconds": round(wall, 1), "records_per_second": round(total / wall) if wall else None,
        "rate_limit": f"{args.rate_limit}/{args.rate_window}s ({args.reset_style})",
        "requests_served": sum(server["counters"].values()), "429s_sent": server["rate_limited"],
        "connector_stats": stats_line, "connector_peak_rss_mb": round(peak_rss_mb, 1), "rss_bound_mb": args.max_rss_mb,
    }
    print(json.dumps(result, indent=2))
    ok = code == 0 and equal and peak_rss_mb <= args.max_rss_mb
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
