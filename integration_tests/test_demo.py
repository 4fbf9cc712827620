"""bin/demo end to end: PyAirbyte syncs every stream into DuckDB, and the tables match the emulator's truth."""

import contextlib
import json
import subprocess
import sys

import pytest

from sendgrid_emulator import FULL_ACCESS_KEY, Emulator
from sendgrid_emulator.harness import REPO, catalog_for, config_for

try:
    import airbyte  # noqa: F401 - the demo's dependency, from the `demo` extra
    import duckdb
except ImportError:
    pytest.skip("the `demo` extra is not installed (bin/test installs it: pip install -e '.[dev,demo]')",
                allow_module_level=True)

pytestmark = pytest.mark.slow
SIZE = 30


def run_demo(output, *args, timeout=600):
    """The demo as a user runs it (bin/demo is this command after the venv set-up)."""
    return subprocess.run([sys.executable, "-m", "demo", "--output", str(output), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def discovered_streams():
    with Emulator(size=5) as emulator:
        return [c["stream"]["name"] for c in catalog_for(config_for(emulator))["streams"]]


def duckdb_counts(path, streams):
    """Rows per stream table, read from the file the demo left behind."""
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as connection:
        return {s: connection.execute(f'SELECT count(*) FROM main."{s}"').fetchone()[0] for s in streams}


@pytest.fixture(scope="module")
def emulator_demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    done = run_demo(output, "--size", str(SIZE), "--changes", "4")
    assert done.returncode == 0, f"the demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done, json.loads((output / "summary.json").read_text()), output


def test_demo_syncs_every_discovered_stream_and_matches_the_emulator_truth_after_both_syncs(emulator_demo):
    _, summary, output = emulator_demo
    rows = {row["stream"]: row for row in summary["streams"]}
    assert sorted(rows) == sorted(discovered_streams())

    missing_truth = [s for s, row in rows.items() if row["truth_after_full"] is None]
    assert not missing_truth, f"the emulator has no ground truth for {missing_truth}"
    for stream, row in rows.items():
        assert row["rows_after_full"] == row["truth_after_full"], f"{stream} after the full sync"
        assert row["rows_after_incremental"] == row["truth_after_incremental"], f"{stream} after the incremental sync"
    # Checked again from the file itself, as a user would query it.
    assert duckdb_counts(output / "sendgrid.duckdb", list(rows)) == {s: r["truth_after_incremental"] for s, r in rows.items()}


def test_demo_changes_the_account_and_the_second_sync_is_incremental(emulator_demo):
    _, summary, _ = emulator_demo
    rows = summary["streams"]
    assert summary["changed"].get("suppressions") == ["add"]
    grown = [r["stream"] for r in rows if r["truth_after_incremental"] > r["truth_after_full"]]
    assert "bounces" in grown
    incremental = [r for r in rows if r["incremental"]]
    assert incremental, "no stream is incremental"
    # New bounces only: the 4 added, not the whole list again.
    bounces = next(r for r in rows if r["stream"] == "bounces")
    assert bounces["incremental_records"] == 4 < bounces["full_records"]
    assert sum(r["incremental_records"] for r in incremental) < sum(r["full_records"] for r in incremental)
    for row in rows:
        if not row["incremental"]:  # no cursor: the second sync reads these in full again
            assert row["incremental_records"] == row["truth_after_incremental"], row["stream"]


def test_demo_prints_progress_a_summary_table_and_a_query_hint_but_never_the_key(emulator_demo):
    done, summary, output = emulator_demo
    assert "1. Full sync of every stream" in done.stdout and "2. Incremental sync" in done.stdout
    assert "done    bounces" in done.stdout
    table = done.stdout[done.stdout.index("\nstream "):]
    for row in summary["streams"]:
        assert f"\n{row['stream']} " in table
    assert f"duckdb.connect('{output / 'sendgrid.duckdb'}'" in done.stdout
    assert FULL_ACCESS_KEY not in done.stdout + done.stderr


def test_demo_with_a_config_file_syncs_that_account_twice_without_changing_it(tmp_path):
    with Emulator(size=10, seed=3) as emulator:
        config = tmp_path / "config.json"
        config.write_text(json.dumps(config_for(emulator)))
        done = run_demo(tmp_path / "out", "--config", str(config))
        truth = {stream: len(records) for stream, records in emulator.truth().items()}
    assert done.returncode == 0, f"the demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "config" and summary["changed"] == {}
    assert "emulator on" not in done.stdout
    rows = {row["stream"]: row for row in summary["streams"]}
    assert duckdb_counts(tmp_path / "out" / "sendgrid.duckdb", list(rows)) == {s: truth[s] for s in rows}
    assert rows["bounces"]["full_records"] == truth["bounces"] and rows["bounces"]["incremental_records"] == 0
    assert FULL_ACCESS_KEY not in done.stdout + done.stderr
