"""Run the built connector image as a user would, against the emulator on this host, and check its messages.

`python -m integration_tests.image_check --image source-sendgrid/source-sendgrid:dev [--engine "docker"]`

Called by `.ci/image.sh` after it builds the image. Every command runs in a fresh container with
`--network host` (the emulator listens on 127.0.0.1 here) and the config, catalog and state mounted
read-only at /secrets, the way the README tells users to run it. The checks are on the Airbyte protocol
messages the container prints, not on exit codes alone:

- spec: one SPEC message, equal to the package's spec.json;
- check: CONNECTION_STATUS SUCCEEDED with the emulator's key, FAILED with a wrong one;
- discover: one CATALOG naming every stream of `source_sendgrid.streams.ALL_STREAMS`;
- read, full: per stream, as many RECORD messages as the emulator's ground truth holds, STATE messages for
  every stream, no error trace;
- read, incremental with the state the full read emitted, after new data arrived: every new record is
  emitted, nothing that is not in the truth, full-refresh streams whole;
- Airbyte's acceptance rules (integration_tests/cat_rules.py): reads of one windowed stream resumed from
  sampled checkpoints of the full read, and a read of every incremental stream from a state in the future;
- the image runs as a non-root user and holds no pip, pytest or emulator;
- the API key appears in no output.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from integration_tests import cat_rules
from integration_tests.acceptance import FUTURE
from sendgrid_emulator import FULL_ACCESS_KEY, Emulator
from source_sendgrid import SourceSendgrid
from source_sendgrid.streams import ALL_STREAMS

SPEC_FILE = Path(__file__).resolve().parents[1] / "source_sendgrid" / "spec.json"
WRONG_KEY = "SG.image-check-wrong-key"
# The windowed stream the image is resumed from checkpoints of, as Airbyte's sequential-slices check does.
SEQUENTIAL_SLICES_STREAM = "bounces"


class ImageCheckFailed(AssertionError):
    pass


def ensure(condition: bool, message: str) -> None:
    if not condition:
        raise ImageCheckFailed(message)


class Container:
    """One engine (docker or podman, with its flags) and one image; runs a connector command per call."""

    def __init__(self, engine: Sequence[str], image: str, secrets: Path) -> None:
        self.engine, self.image, self.secrets = list(engine), image, secrets
        self.transcript: List[str] = []

    def run(self, *args: str, entrypoint: Optional[str] = None, label: Optional[str] = None, timeout: float = 900) -> "Run":
        command = [*self.engine, "run", "--rm", "--network", "host", "-v", f"{self.secrets}:/secrets:ro"]
        if entrypoint:
            command += ["--entrypoint", entrypoint]
        command += [self.image, *args]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        run = Run(label or " ".join(args), done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        # The key must never reach any output, whatever the command.
        for secret in (FULL_ACCESS_KEY, WRONG_KEY):
            ensure(secret not in done.stdout and secret not in done.stderr, f"`{run.label}` printed an API key")
        self.transcript.append(run.summary())
        print(run.summary(), flush=True)
        return run


class Run:
    def __init__(self, label: str, returncode: int, stdout: str, stderr: str, seconds: float) -> None:
        self.label, self.returncode, self.stderr, self.seconds = label, returncode, stderr, seconds
        self.messages: List[Dict[str, Any]] = []
        for line in stdout.splitlines():
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict) and "type" in message:
                self.messages.append(message)
        self.stdout = stdout

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def errors(self) -> List[str]:
        return [m["trace"]["error"]["message"] for m in self.of_type("TRACE") if m["trace"].get("type") == "ERROR"]

    def records_per_stream(self) -> Dict[str, List[Dict[str, Any]]]:
        out: Dict[str, List[Dict[str, Any]]] = {}
        for message in self.of_type("RECORD"):
            out.setdefault(message["record"]["stream"], []).append(message["record"]["data"])
        return out

    def states_per_stream(self) -> Dict[str, List[Dict[str, Any]]]:
        out: Dict[str, List[Dict[str, Any]]] = {}
        for message in self.of_type("STATE"):
            out.setdefault(message["state"]["stream"]["stream_descriptor"]["name"], []).append(message["state"])
        return out

    def summary(self) -> str:
        kinds = Counter(m["type"] for m in self.messages)
        shown = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        return f"  {self.label:<44} exit {self.returncode}  {self.seconds:5.1f}s  messages: {shown or 'none'}"

    def tail(self) -> str:
        """The end of the output, and the end of the first error's stack trace (never config values)."""
        traces = [m["trace"]["error"].get("stack_trace") or "" for m in self.of_type("TRACE") if m["trace"].get("type") == "ERROR"]
        lines = (self.stdout.splitlines() + self.stderr.splitlines())[-10:]
        if traces:
            lines += ["first error's stack trace (end):", *traces[0].splitlines()[-12:]]
        return "\n".join(line[:400] for line in lines)


def write_secret(directory: Path, name: str, content: Any) -> str:
    path = directory / name
    path.write_text(json.dumps(content))
    path.chmod(0o644)  # the image runs as uid 1000; the files are written by root
    return f"/secrets/{name}"


def configured_catalog(catalog: Mapping[str, Any]) -> Dict[str, Any]:
    """Every discovered stream, incremental where it supports it (as the Airbyte UI defaults to)."""
    streams = []
    for stream in catalog["streams"]:
        incremental = "incremental" in stream["supported_sync_modes"]
        configured: Dict[str, Any] = {
            "stream": stream,
            "sync_mode": "incremental" if incremental else "full_refresh",
            "destination_sync_mode": "append_dedup" if incremental else "overwrite",
        }
        if incremental:
            configured["cursor_field"] = stream.get("default_cursor_field", [])
        if stream.get("source_defined_primary_key"):
            configured["primary_key"] = stream["source_defined_primary_key"]
        streams.append(configured)
    return {"streams": streams}


def primary_key_of(stream: Mapping[str, Any]) -> List[str]:
    return [path[0] for path in stream.get("source_defined_primary_key") or []]


def keys(records: List[Dict[str, Any]], primary_key: List[str]) -> set:
    if not primary_key:
        return {json.dumps(record, sort_keys=True) for record in records}
    return {tuple(json.dumps(record.get(field), sort_keys=True) for field in primary_key) for record in records}


def check_image(container: Container, emulator: Emulator, secrets: Path) -> None:
    base_config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "lookback_days": 0, "window_days": 90}
    config = write_secret(secrets, "config.json", base_config)
    invalid = write_secret(secrets, "invalid_config.json", {**base_config, "api_key": WRONG_KEY})

    # Lean and unprivileged: no pip, pytest or emulator inside, and not root.
    probe = container.run(
        "-c",
        "import importlib.util as u, os, json; print(json.dumps({'uid': os.getuid(), 'present': "
        "[m for m in ('pip', 'pytest', 'integration_tests', 'source_sendgrid') if u.find_spec(m)]}))",
        entrypoint="python",
        label="python -c <probe: uid, modules>",
    )
    facts = json.loads(probe.stdout.strip().splitlines()[-1])
    ensure(facts["uid"] != 0, "the image runs as root")
    ensure(facts["present"] == ["source_sendgrid"], f"the image holds {facts['present']}, expected only source_sendgrid")

    spec = container.run("spec")
    ensure(spec.returncode == 0, f"spec exited {spec.returncode}:\n{spec.tail()}")
    specs = spec.of_type("SPEC")
    ensure(len(specs) == 1, f"spec printed {len(specs)} SPEC messages")
    expected_spec = json.loads(SPEC_FILE.read_text())["connectionSpecification"]
    ensure(specs[0]["spec"]["connectionSpecification"] == expected_spec, "the image's spec differs from spec.json")

    good = container.run("check", "--config", config)
    statuses = good.of_type("CONNECTION_STATUS")
    ensure(len(statuses) == 1, f"check printed {len(statuses)} CONNECTION_STATUS messages:\n{good.tail()}")
    ensure(statuses[0]["connectionStatus"]["status"] == "SUCCEEDED", f"check with the emulator's key: {statuses[0]}")

    bad = container.run("check", "--config", invalid)
    statuses = bad.of_type("CONNECTION_STATUS")
    ensure(len(statuses) == 1, f"check with a wrong key printed {len(statuses)} CONNECTION_STATUS messages")
    ensure(statuses[0]["connectionStatus"]["status"] == "FAILED", "check with a wrong key did not fail")

    discover = container.run("discover", "--config", config)
    catalogs = discover.of_type("CATALOG")
    ensure(discover.returncode == 0 and len(catalogs) == 1, f"discover printed {len(catalogs)} CATALOGs:\n{discover.tail()}")
    catalog = catalogs[0]["catalog"]
    discovered = [stream["name"] for stream in catalog["streams"]]
    declared = [stream.name for stream in SourceSendgrid().streams(base_config)]
    ensure(len(declared) == len(ALL_STREAMS), "the package's streams() does not build every class of ALL_STREAMS")
    ensure(sorted(discovered) == sorted(declared), f"discover lists {sorted(discovered)}, the package declares {sorted(declared)}")

    configured = configured_catalog(catalog)
    catalog_path = write_secret(secrets, "configured_catalog.json", configured)
    by_name = {c["stream"]["name"]: c for c in configured["streams"]}

    full = container.run("read", "--config", config, "--catalog", catalog_path)
    ensure(full.returncode == 0 and not full.errors(), f"full read failed: {sorted(set(full.errors()))}\n{full.tail()}")
    truth = emulator.truth()
    records, states = full.records_per_stream(), full.states_per_stream()
    for name in declared:
        got, expected = len(records.get(name, [])), len(truth.get(name, []))
        ensure(got == expected, f"full read: {name} emitted {got} records, the emulator holds {expected}")
        ensure(states.get(name), f"full read: no STATE message for {name}")
    print(f"  full read per stream (records = emulator truth): "
          + ", ".join(f"{name} {len(records.get(name, []))}" for name in declared), flush=True)

    # Before any data changes, as Airbyte's acceptance suite reads.
    check_sequential_slices(container, secrets, config, by_name[SEQUENTIAL_SLICES_STREAM], full, base_config)
    check_future_state(container, secrets, config, catalog_path, configured)

    # New data after the full read, then an incremental read from the state it emitted.
    before = truth
    emulator.mutate("suppressions", "add", count=3)
    time.sleep(1.1)  # windows end a second before the sync starts
    last_states = [states[name][-1] for name in declared]
    state_path = write_secret(secrets, "state.json", last_states)
    incremental = container.run("read", "--config", config, "--catalog", catalog_path, "--state", state_path)
    ensure(incremental.returncode == 0 and not incremental.errors(),
           f"incremental read failed: {sorted(set(incremental.errors()))}\n{incremental.tail()}")
    after = emulator.truth()
    records, states = incremental.records_per_stream(), incremental.states_per_stream()
    for name in declared:
        stream = by_name[name]
        primary_key = primary_key_of(stream["stream"])
        emitted = keys(records.get(name, []), primary_key)
        ensure(states.get(name), f"incremental read: no STATE message for {name}")
        if stream["sync_mode"] == "full_refresh":
            ensure(len(records.get(name, [])) == len(after.get(name, [])),
                   f"incremental read: full-refresh stream {name} emitted {len(records.get(name, []))}, truth {len(after.get(name, []))}")
            continue
        new = keys(after.get(name, []), primary_key) - keys(before.get(name, []), primary_key)
        ensure(new <= emitted, f"incremental read: {name} missed {len(new - emitted)} new records")
        ensure(emitted <= keys(after.get(name, []), primary_key), f"incremental read: {name} emitted records not in the truth")
    print(f"  incremental read per stream: "
          + ", ".join(f"{name} {len(records.get(name, []))}" for name in declared), flush=True)



def check_sequential_slices(container: Container, secrets: Path, config: str, configured: Mapping[str, Any],
                            first: "Run", base_config: Mapping[str, Any]) -> None:
    """Reads of one stream resumed from sampled checkpoints of the first read: each differs from it, emits at
    least what followed the checkpoint, and nothing older than it (less the stream's declared re-read)."""
    name = configured["stream"]["name"]
    records, checkpoints = cat_rules.records_and_checkpoints(first.messages, name)
    ensure(records and checkpoints, f"sequential slices: the full read emitted no {name} record or state")
    instance = next(stream for stream in SourceSendgrid().streams(base_config) if stream.name == name)
    reread = timedelta(days=base_config["lookback_days"]) + getattr(instance, "min_lookback", timedelta(0))
    catalog_path = write_secret(secrets, f"catalog_{name}.json", {"streams": [configured]})
    problems: List[str] = []
    for checkpoint in cat_rules.sampled(checkpoints):
        state_path = write_secret(secrets, f"state_{name}.json", cat_rules.state_input(name, checkpoint.state))
        run = container.run("read", "--config", config, "--catalog", catalog_path, "--state", state_path,
                            label=f"read {name} from {checkpoint.state}")
        ensure(run.returncode == 0 and not run.errors(), f"sequential slices: read failed: {sorted(set(run.errors()))}\n{run.tail()}")
        problems += cat_rules.resumed_read_problems(name, records, checkpoint, run.records_per_stream().get(name, []),
                                                    configured["cursor_field"], reread)
    ensure(not problems, "sequential slices: " + "; ".join(problems))


def check_future_state(container: Container, secrets: Path, config: str, catalog_path: str, configured: Mapping[str, Any]) -> None:
    """A read from a state in the future: no record of any incremental stream, and a state in the given format."""
    cursors = {c["stream"]["name"]: c["cursor_field"][-1] for c in configured["streams"] if c["sync_mode"] == "incremental"}
    given = {name: {cursor: FUTURE} for name, cursor in cursors.items()}
    state_path = write_secret(secrets, "future_state.json", [cat_rules.state_input(name, state)[0] for name, state in given.items()])
    run = container.run("read", "--config", config, "--catalog", catalog_path, "--state", state_path, label="read from a future state")
    ensure(run.returncode == 0 and not run.errors(), f"future state: read failed: {sorted(set(run.errors()))}\n{run.tail()}")
    records, states = run.records_per_stream(), run.states_per_stream()
    problems: List[str] = []
    for name, cursor in cursors.items():
        emitted_states = [state["stream"].get("stream_state") or {} for state in states.get(name, [])]
        problems += cat_rules.future_state_problems(name, given[name], len(records.get(name, [])), emitted_states, cursor)
    ensure(not problems, "future state: " + "; ".join(problems))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="source-sendgrid/source-sendgrid:dev")
    parser.add_argument("--engine", default="docker", help='the container CLI with its flags, e.g. "podman --root /x"')
    parser.add_argument("--size", type=int, default=300, help="emulator account size")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="source-sendgrid-secrets-") as tmp, Emulator(size=args.size, seed=5) as emulator:
        secrets = Path(tmp)
        secrets.chmod(0o755)
        container = Container(shlex.split(args.engine), args.image, secrets)
        print(f"image checks: {args.image} against the emulator at {emulator.url} (size {args.size})", flush=True)
        try:
            check_image(container, emulator, secrets)
        except ImageCheckFailed as failure:
            print(f"\nIMAGE CHECK FAILED: {failure}", file=sys.stderr, flush=True)
            return 1
    print("image checks: all passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
