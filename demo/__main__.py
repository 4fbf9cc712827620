"""Start the emulator, run a full sync then an incremental one through the connector's CLI, summarise."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from integration_tests.emulator import Emulator
from integration_tests.harness import catalog_for, config_for, run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2000, help="records per collection in the emulated account")
    args = parser.parse_args()

    with Emulator(size=args.size) as emulator:
        config = config_for(emulator)
        catalog = catalog_for(config)
        print(f"Emulator on {emulator.url} with {args.size} records per collection.")

        started = time.monotonic()
        full = run_cli("read", config, catalog)
        full_seconds = time.monotonic() - started
        _fail_on_error(full)

        emulator.mutate("suppressions", "add", count=25)
        time.sleep(1.1)  # new records must be older than the next sync's last window
        started = time.monotonic()
        incremental = run_cli("read", config, catalog, state=full.last_states())
        incremental_seconds = time.monotonic() - started
        _fail_on_error(incremental)

    full_counts = Counter({s: len(r) for s, r in full.records().items()})
    incremental_counts = Counter({s: len(r) for s, r in incremental.records().items()})
    states = {m["stream"]["stream_descriptor"]["name"]: m["stream"]["stream_state"] for m in incremental.last_states()}
    print(f"\n{'stream':32} {'full sync':>10} {'incremental':>12}  state after incremental")
    for stream in [c["stream"]["name"] for c in catalog["streams"]]:
        print(f"{stream:32} {full_counts[stream]:>10} {incremental_counts[stream]:>12}  {json.dumps(states.get(stream, {}))}")
    print(f"{'total':32} {sum(full_counts.values()):>10} {sum(incremental_counts.values()):>12}")
    print(f"\nfull sync {full_seconds:.1f} s ({sum(full_counts.values()) / full_seconds:,.0f} records/s), "
          f"incremental {incremental_seconds:.1f} s")


def _fail_on_error(run) -> None:
    if run.returncode != 0:
        raise SystemExit("The sync failed:\n" + "\n".join(run.error_messages()))


if __name__ == "__main__":
    main()
