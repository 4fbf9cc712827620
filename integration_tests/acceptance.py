"""The files `acceptance-test-config.yml` points at, and the emulator they are written for.

The acceptance tests (Airbyte's classic connector-acceptance-test suite, and the CDK's standard tests in
`test_standard_suite.py`) read a config from a file, so the emulator they run against has to be on a known
address with known data: port `EMULATOR_PORT` on 127.0.0.1, seed `EMULATOR_SEED`, size `EMULATOR_SIZE`.

    .venv/bin/python -m sendgrid_emulator --port 18765 --size 20 --seed 42   # for the classic suite
    .venv/bin/python -m integration_tests.acceptance --write   # regenerate the files after adding streams

`--write` rewrites configured_catalog.json (every discovered stream, incremental where supported),
sample_state.json (the future state: a state in 2099 for every stream that advertises incremental, which
the classic suite reads all of as incremental whatever the configured catalog says) and expected_records.jsonl
(the records of the streams whose seeded data does not depend on today's date: `EXPECTED_RECORD_STREAMS`).
"""

from __future__ import annotations

import argparse
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List

from sendgrid_emulator import Emulator

HERE = Path(__file__).resolve().parent
EMULATOR_PORT = 18765
EMULATOR_SEED = 42
EMULATOR_SIZE = 20
CONFIG = HERE / "config_emulator.json"
INVALID_CONFIG = HERE / "invalid_config.json"
CATALOG = HERE / "configured_catalog.json"
FUTURE_STATE = HERE / "sample_state.json"
EXPECTED_RECORDS = HERE / "expected_records.jsonl"
# Seeded inside a fixed range of dates (emulator/account.py), so their records are the same every day.
EXPECTED_RECORD_STREAMS = (
    "bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions",
    "suppression_groups", "suppression_group_members",
)
FUTURE = "2099-12-31T00:00:00Z"
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$")


@contextmanager
def acceptance_emulator() -> Iterator[Emulator]:
    """The emulator the acceptance files are written for, on its known port."""
    with Emulator(size=EMULATOR_SIZE, seed=EMULATOR_SEED, host="127.0.0.1", port=EMULATOR_PORT) as emulator:
        yield emulator


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def expected_records() -> List[Dict[str, Any]]:
    return [json.loads(line) for line in EXPECTED_RECORDS.read_text().splitlines() if line.strip()]


def future(value: Any) -> Any:
    """The same state with every date or date-time moved to 2099 (keeping its format)."""
    if isinstance(value, dict):
        return {key: future(item) for key, item in value.items()}
    if isinstance(value, list):
        return [future(item) for item in value]
    if isinstance(value, str) and _DATE_TIME.match(value):
        return FUTURE[: len(value)] if len(value) <= len(FUTURE) else FUTURE[:-1] + value[len(FUTURE) - 1 :]
    if isinstance(value, int) and not isinstance(value, bool) and 10**9 <= value < 10**10:
        return 4102358400  # 2099-12-31T00:00:00Z in epoch seconds
    return value


def write_files() -> None:
    from sendgrid_emulator.harness import catalog_for, latest_states, read_in_process, records_of

    config = load_json(CONFIG)
    with acceptance_emulator():
        catalog = catalog_for(config)
        CATALOG.write_text(json.dumps(catalog, indent=2) + "\n")
        output = read_in_process(config, catalog)
        records = records_of(output)
        incremental = {c["stream"]["name"] for c in catalog["streams"] if c["sync_mode"] == "incremental"}
        states = [future(state) for state in latest_states(output) if state["stream"]["stream_descriptor"]["name"] in incremental]
        FUTURE_STATE.write_text(json.dumps(states, indent=2) + "\n")
        lines = [
            json.dumps({"stream": stream, "data": record, "emitted_at": 0}, sort_keys=True)
            for stream in EXPECTED_RECORD_STREAMS
            for record in records.get(stream, [])
        ]
        EXPECTED_RECORDS.write_text("\n".join(lines) + "\n")
    print(f"wrote {CATALOG.name} ({len(catalog['streams'])} streams), {FUTURE_STATE.name} ({len(states)} states), "
          f"{EXPECTED_RECORDS.name} ({len(lines)} records)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="regenerate the catalog, future state and expected records")
    if parser.parse_args().write:
        write_files()
    else:
        parser.print_help()
