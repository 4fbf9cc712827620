"""What this connector does, in a few minutes: every stream through PyAirbyte into a local DuckDB file.

Without --config it starts the bundled SendGrid emulator on a seeded account, syncs every stream in full,
adds and updates data in the emulated account, then runs an incremental sync. With --config it runs the
same two syncs against a real account (nothing is changed there: the second sync just picks up what is new).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from demo import pyairbyte

DEFAULT_OUTPUT = Path(".demo")
# Each family's first known action that grows it, then the first that updates records in place.
# A family that knows none of them is left unchanged (the demo says so).
GROW_ACTIONS = ("add", "add_contacts", "add_messages", "add_days")
UPDATE_ACTIONS = ("update", "update_contacts", "touch")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="a connector config (JSON) for a real account; no emulator then")
    parser.add_argument("--size", type=int, default=1000, help="records per collection in the emulated account (default 1000)")
    parser.add_argument("--changes", type=int, default=20, help="records each emulator family adds and updates between the syncs")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where sendgrid.duckdb and summary.json go (default .demo/)")
    args = parser.parse_args(argv)
    try:
        summary = run(config_path=args.config, size=args.size, changes=args.changes, output=args.output)
    except pyairbyte.SyncFailed as failed:
        raise SystemExit(str(failed)) from None
    print_summary(summary)


def run(config_path: Optional[Path], size: int, changes: int, output: Path) -> Dict[str, Any]:
    """Full sync, changes (emulator only), incremental sync; returns the summary it also writes to summary.json."""
    started = time.monotonic()
    output.mkdir(parents=True, exist_ok=True)
    db_path = output / "sendgrid.duckdb"
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)  # each demo starts from an empty cache, so the first sync is a true full one

    with _account(config_path, size) as (config, emulator):
        source = pyairbyte.sendgrid_source(config)
        streams = pyairbyte.all_streams(source)
        incremental = pyairbyte.incremental_streams(source)
        full_only = [s for s in streams if s not in incremental]
        cache = pyairbyte.duckdb_cache(db_path)
        print(f"{len(streams)} streams ({len(incremental)} incremental), into {db_path}", flush=True)

        print("\n1. Full sync of every stream", flush=True)
        phase_started = time.monotonic()
        full = pyairbyte.read(source, cache, streams, full_refresh=True)
        full_seconds = time.monotonic() - phase_started
        rows_after_full = pyairbyte.table_counts(cache, streams)
        truth_after_full = _truth_counts(emulator, streams)

        changed: Dict[str, List[str]] = {}
        if emulator is not None:
            changed = _change_account(emulator, changes)
            time.sleep(1.1)  # a sync reads up to one second before it starts: let the changes' second pass
        print("\n2. Incremental sync" + (f" ({len(full_only)} streams without a cursor are read in full again)" if full_only else ""),
              flush=True)
        phase_started = time.monotonic()
        second = pyairbyte.read(source, cache, incremental, full_refresh=False)
        second_full = pyairbyte.read(source, cache, full_only, full_refresh=True)
        incremental_seconds = time.monotonic() - phase_started
        rows_after_incremental = pyairbyte.table_counts(cache, streams)
        truth_after_incremental = _truth_counts(emulator, streams)
        cache.close()

    rows = []
    for stream in streams:
        again = second if stream in incremental else second_full
        rows.append({
            "stream": stream,
            "incremental": stream in incremental,
            "full_records": full.records.get(stream, 0) if full else 0,
            "full_seconds": round(full.seconds.get(stream, 0.0), 3) if full else 0.0,
            "incremental_records": again.records.get(stream, 0) if again else 0,
            "incremental_seconds": round(again.seconds.get(stream, 0.0), 3) if again else 0.0,
            "state": again.states.get(stream) if again else None,
            "rows_after_full": rows_after_full[stream],
            "rows_after_incremental": rows_after_incremental[stream],
            "truth_after_full": truth_after_full.get(stream),
            "truth_after_incremental": truth_after_incremental.get(stream),
        })
    summary = {
        "mode": "emulator" if config_path is None else "config",
        "size": size if config_path is None else None,
        "changed": changed,
        "duckdb": str(db_path),
        "seconds": round(time.monotonic() - started, 1),
        "full_sync_seconds": round(full_seconds, 1),
        "incremental_sync_seconds": round(incremental_seconds, 1),
        "streams": rows,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


@contextlib.contextmanager
def _account(config_path: Optional[Path], size: int) -> Iterator[Tuple[Dict[str, Any], Any]]:
    """The config to sync with, and the running emulator behind it (None for a real account)."""
    if config_path is not None:
        yield json.loads(config_path.read_text()), None
        return
    from sendgrid_emulator import FULL_ACCESS_KEY, Emulator

    with Emulator(size=size) as emulator:
        print(f"SendGrid emulator on {emulator.url}, a seeded account of size {size}.", flush=True)
        # lookback 0: the incremental sync reads exactly what changed, which makes its counts easy to read.
        yield {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "lookback_days": 0}, emulator


def _change_account(emulator: Any, count: int) -> Dict[str, List[str]]:
    changed: Dict[str, List[str]] = {}
    for family in emulator.families:
        for actions in (GROW_ACTIONS, UPDATE_ACTIONS):
            for action in actions:
                try:
                    emulator.mutate(family, action, count=count)
                except ValueError:  # the family has no such action
                    continue
                changed.setdefault(family, []).append(action)
                break
    described = ", ".join(f"{family}: {'+'.join(actions)}" for family, actions in changed.items()) or "nothing"
    unchanged = [family for family in emulator.families if family not in changed]
    print(f"\nChanged the emulated account ({count} records per action): {described}"
          + (f"; left unchanged: {', '.join(unchanged)}" if unchanged else ""), flush=True)
    return changed


def _truth_counts(emulator: Any, streams: List[str]) -> Dict[str, int]:
    if emulator is None:
        return {}
    truth = emulator.truth()
    return {stream: len(truth[stream]) for stream in streams if stream in truth}


def print_summary(summary: Dict[str, Any]) -> None:
    rows = summary["streams"]
    print(f"\n{'stream':30} {'full sync':>10} {'incremental':>12} {'full s':>8} {'incr. s':>8}")
    for row in rows:
        note = "" if row["incremental"] else "  (no cursor: read in full)"
        print(f"{row['stream']:30} {row['full_records']:>10,} {row['incremental_records']:>12,} "
              f"{row['full_seconds']:>8.1f} {row['incremental_seconds']:>8.1f}{note}")
    print(f"{'total':30} {sum(r['full_records'] for r in rows):>10,} {sum(r['incremental_records'] for r in rows):>12,}")
    print(f"\nFull sync {summary['full_sync_seconds']:.0f} s, incremental sync {summary['incremental_sync_seconds']:.0f} s "
          "(each includes starting the connector and writing DuckDB).")
    print(f"Done in {summary['seconds']:.0f} s. The tables are in {summary['duckdb']}; query them with:")
    print(f"  {_python()} -c \"import duckdb; duckdb.connect('{summary['duckdb']}', read_only=True)"
          f".sql('SELECT * FROM bounces LIMIT 5').show()\"")


def _python() -> str:
    """This interpreter, as a path to paste: relative when it is under the current directory."""
    relative = os.path.relpath(sys.executable)
    return sys.executable if relative.startswith("..") else relative


if __name__ == "__main__":
    main()
