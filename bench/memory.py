"""Benchmark: the peak memory of a full sync of every stream, for accounts that differ in their number of
suppression group members (by default ten times), and what an incremental sync with nothing new asks for.

    .venv/bin/python bench/memory.py                            # 100k and 1M group members; a few minutes
    .venv/bin/python bench/memory.py --members 10000 80000      # other sizes
    .venv/bin/python bench/memory.py --root /tmp/old-checkout   # another version's code (e.g. a worktree of 0.2.2)

For each size it starts the emulator in this process (every family at `--size`, with that many group members),
runs `python -m source_sendgrid read` over every stream (incremental where supported, no state) as a process,
and samples the summed proportional set size (PSS) of that process and all its children every 50 ms: pages
the forked workers share with their parent count once, split between them. Then it runs an incremental sync
with the full sync's state (nothing new) and counts the requests per endpoint in the emulator's log.
Records go to a file and are counted after the clock stops.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.compare import Run, _process_tree, _pss_kb, configured_catalog, discover, read_output, write  # noqa: E402
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator  # noqa: E402

START_DATE = "2009-01-01T00:00:00Z"
SAMPLE_SECONDS = 0.05
# The target: at most this much summed PSS for a full sync of every stream ...
TARGET_MB = 250.0
# ... and at most this ratio between an account and one 8 times its size.
TARGET_RATIO = 1.25
# Request paths with their ids replaced, so that per-template and per-single-send calls count as one endpoint.
_ID = re.compile(r"/(\d+|(?=[^/]*\d)[^/]{6,})(?=/|$)")


def run_sampled(args: Sequence[str], env: Dict[str, str], stdout_path: Path, timeout: float) -> Tuple[int, float, float]:
    """Run to completion with stdout to a file; (exit code, wall seconds, peak summed PSS of the tree in MB)."""
    started = time.monotonic()
    peak_kb = 0
    with open(stdout_path, "wb") as out:
        process = subprocess.Popen(list(args), stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=stdout_path.parent)
        while process.poll() is None:
            peak_kb = max(peak_kb, sum(_pss_kb(pid) for pid in _process_tree(process.pid)))
            if time.monotonic() - started > timeout:
                process.kill()
                process.wait()
                return -9, time.monotonic() - started, peak_kb / 1024.0
            time.sleep(SAMPLE_SECONDS)
    return process.returncode, time.monotonic() - started, peak_kb / 1024.0


def endpoint(path: str) -> str:
    return _ID.sub("/{id}", path)


def sync(command: List[str], env: Dict[str, str], emulator: Emulator, config: dict, catalog: dict,
         state: Optional[List[dict]], workdir: Path, label: str, timeout: float) -> Tuple[Run, float, Counter]:
    args = command + ["read", "--config", write(workdir / "config.json", config),
                      "--catalog", write(workdir / "catalog.json", catalog)]
    if state:
        args += ["--state", write(workdir / "state.json", state)]
    run = Run(label, "ours")
    logged = len(emulator.requests_log)
    out = workdir / "records.jsonl"
    run.returncode, run.wall, peak_mb = run_sampled(args, env, out, timeout)
    read_output(out, run)
    out.unlink()
    requests = Counter(endpoint(entry["path"]) for entry in list(emulator.requests_log)[logged:])
    run.requests = sum(requests.values())
    return run, peak_mb, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="suppression group members of each account (default: 100000 1000000)")
    parser.add_argument("--size", type=int, default=1_000, help="emulator size of every other collection (default 1000)")
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout whose source_sendgrid is run (default: this one)")
    parser.add_argument("--lookback-days", type=int,
                        help="the connector's `lookback_days` (default: the connector's default, 1 day, which re-reads "
                             "what changed in the last day)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one sync")
    args = parser.parse_args()

    root = args.root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "source_sendgrid"]
    found = subprocess.run([sys.executable, "-c", "import source_sendgrid; print(source_sendgrid.__file__)"],
                           env=env, cwd="/", capture_output=True, text=True).stdout.strip()
    print(f"connector code: {found}", flush=True)
    rows = []
    quiet: Dict[int, Counter] = {}
    with tempfile.TemporaryDirectory(prefix="sendgrid-memory-") as tmp:
        workdir = Path(tmp)
        for members in args.members:
            started = time.monotonic()
            with Emulator(size=args.size, seed=2024, counts={"group_members": members}) as emulator:
                print(f"emulator: size {args.size}, {members:,} group members, seeded in "
                      f"{time.monotonic() - started:.1f} s", flush=True)
                config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "start_date": START_DATE}
                if args.lookback_days is not None:
                    config["lookback_days"] = args.lookback_days
                streams = discover(command, config, env, workdir)
                catalog = configured_catalog(streams, [s["name"] for s in streams])
                full, peak, _ = sync(command, env, emulator, config, catalog, None, workdir, "full", args.timeout)
                if full.errors or full.returncode:
                    print(f"  full sync: exit {full.returncode}; {'; '.join(full.errors[:3])}", flush=True)
                rows.append((members, full.records, full.per_stream.get("suppression_group_members", 0), peak, full.wall))
                print(f"  full sync: {full.records:,} records, peak summed PSS {peak:.0f} MB, {full.wall:.1f} s", flush=True)
                incremental, quiet_peak, requests = sync(command, env, emulator, config, catalog, full.states, workdir,
                                                         "incremental", args.timeout)
                quiet[members] = requests
                print(f"  incremental sync, nothing new: {incremental.records:,} records, {incremental.requests} "
                      f"requests, peak summed PSS {quiet_peak:.0f} MB, {incremental.wall:.1f} s", flush=True)

    print("\n| group members | records | of which members | peak summed PSS MB | wall s |\n|---:|---:|---:|---:|---:|")
    for members, records, member_records, peak, wall in rows:
        print(f"| {members:,} | {records:,} | {member_records:,} | {peak:.0f} | {wall:.1f} |")
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        ratio = large[3] / small[3] if small[3] else float("nan")
        print(f"\npeak ratio {large[0]:,} / {small[0]:,} members: {ratio:.2f} (target: at most {TARGET_RATIO}); "
              f"largest peak {max(r[3] for r in rows):.0f} MB (target: at most {TARGET_MB:.0f} MB)")
    for members, requests in quiet.items():
        print(f"\nincremental sync with nothing new, {members:,} group members: requests per endpoint")
        print("| endpoint | requests |\n|---|---:|")
        for path, count in sorted(requests.items(), key=lambda item: (-item[1], item[0])):
            print(f"| `{path}` | {count} |")


if __name__ == "__main__":
    main()
