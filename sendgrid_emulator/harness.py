"""Running the connector against the emulator, in-process or as a real process, and reading its output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, discover, read

from sendgrid_emulator.server import FULL_ACCESS_KEY, Emulator
from source_sendgrid import SourceSendgrid

REPO = Path(__file__).resolve().parents[1]
# The line every read logs at its end.
STATS_LINE = re.compile(r"SendGrid requests: (\d+), retried: (\d+), of which rate-limited \(429\): (\d+)")


def config_for(emulator: Emulator, **overrides: Any) -> Dict[str, Any]:
    """A config pointed at the emulator; lookback 0 so incremental reads are exact unless a test says otherwise."""
    return {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "lookback_days": 0, **overrides}


def configured_stream(stream: Any, mode: str = "incremental") -> Dict[str, Any]:
    """One configured-catalog entry for a discovered stream (an AirbyteStream), incremental where it may be."""
    incremental = mode == "incremental" and SyncMode.incremental in stream.supported_sync_modes
    return {
        "stream": {"name": stream.name, "json_schema": stream.json_schema,
                   "supported_sync_modes": [m.value for m in stream.supported_sync_modes],
                   "source_defined_cursor": stream.source_defined_cursor,
                   "default_cursor_field": stream.default_cursor_field,
                   "source_defined_primary_key": stream.source_defined_primary_key},
        "sync_mode": "incremental" if incremental else "full_refresh",
        "destination_sync_mode": "append_dedup" if incremental else "overwrite",
        **({"cursor_field": stream.default_cursor_field} if incremental else {}),
        **({"primary_key": stream.source_defined_primary_key} if stream.source_defined_primary_key else {}),
    }


def catalog_for(config: Mapping[str, Any], streams: Optional[Iterable[str]] = None, mode: str = "incremental") -> Dict[str, Any]:
    """A configured catalog from discover: every stream (or the named ones), incremental where supported."""
    found = discover(SourceSendgrid(), dict(config)).catalog.catalog.streams
    wanted = set(streams) if streams is not None else None
    configured = [configured_stream(stream, mode) for stream in found if wanted is None or stream.name in wanted]
    if wanted is not None and len(configured) != len(wanted):
        raise AssertionError(f"streams not in discover: {wanted - {c['stream']['name'] for c in configured}}")
    return {"streams": configured}


def read_in_process(config: Mapping[str, Any], catalog: Mapping[str, Any], state: Optional[List[Dict[str, Any]]] = None,
                    expecting_exception: bool = False) -> EntrypointOutput:
    from airbyte_cdk.test.state_builder import StateBuilder  # noqa: F401 - documents where state shapes come from

    parsed = ConfiguredAirbyteCatalogSerializer.load(dict(catalog))
    return read(SourceSendgrid(), dict(config), parsed, state=_state_messages(state), expecting_exception=expecting_exception)


def read_with_command_line(config: Mapping[str, Any], catalog: Mapping[str, Any], state: Optional[List[Dict[str, Any]]] = None,
                           expecting_exception: bool = False) -> EntrypointOutput:
    """As read_in_process, through the command line's entrypoint (source_sendgrid/run.py) instead of the
    CDK's: with several streams and concurrency > 1, streams are read in worker processes."""
    import logging
    import traceback
    from io import StringIO

    from airbyte_cdk.logger import AirbyteLogFormatter

    from source_sendgrid.run import SendgridEntrypoint

    with tempfile.TemporaryDirectory() as directory:
        paths = {name: Path(directory) / f"{name}.json" for name in ("config", "catalog", "state")}
        paths["config"].write_text(json.dumps(config))
        paths["catalog"].write_text(json.dumps(catalog))
        args = ["read", "--config", str(paths["config"]), "--catalog", str(paths["catalog"])]
        if state:
            paths["state"].write_text(json.dumps(state))
            args += ["--state", str(paths["state"])]
        logs = StringIO()
        handler = logging.StreamHandler(logs)
        handler.setLevel(logging.INFO)
        handler.setFormatter(AirbyteLogFormatter())
        logging.getLogger().addHandler(handler)
        entrypoint = SendgridEntrypoint(SourceSendgrid())
        lines: List[str] = []
        uncaught = None
        try:
            for text in entrypoint.run(entrypoint.parse_args(args)):
                lines.extend(text.split("\n"))  # a worker's batch of lines arrives as one text
        except Exception as error:
            if not expecting_exception:
                traceback.print_exc()
            uncaught = error
        finally:
            logging.getLogger().removeHandler(handler)
    return EntrypointOutput(messages=lines + logs.getvalue().split("\n")[:-1], uncaught_exception=uncaught)


def request_stats(output: EntrypointOutput) -> tuple:
    """(requests, retries, 429s) as the read logged them."""
    for message in output.logs:
        found = STATS_LINE.search(message.log.message)
        if found:
            return tuple(int(group) for group in found.groups())
    raise AssertionError("the read did not log its request statistics")


def _state_messages(state: Optional[List[Dict[str, Any]]]) -> Optional[list]:
    if not state:
        return None
    from airbyte_cdk.models import AirbyteStateMessageSerializer

    return [AirbyteStateMessageSerializer.load(message) for message in state]


def records_of(output: EntrypointOutput) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = {}
    for message in output.records:
        out.setdefault(message.record.stream, []).append(message.record.data)
    return out


def latest_states(output: EntrypointOutput) -> List[Dict[str, Any]]:
    """The last state message of each stream, in the shape `--state` takes."""
    latest: Dict[str, Dict[str, Any]] = {}
    for message in output.state_messages:
        state = message.state
        latest[state.stream.stream_descriptor.name] = {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": state.stream.stream_descriptor.name},
                       "stream_state": dict(state.stream.stream_state.__dict__)},
        }
    return list(latest.values())


def union_of(*runs: Mapping[str, List[Dict[str, Any]]]) -> Dict[str, List[Dict[str, Any]]]:
    """The records of several runs per stream: what a destination holds after all of them, before dedup."""
    union: Dict[str, List[Dict[str, Any]]] = {}
    for records_by_stream in runs:
        for stream, records in records_by_stream.items():
            union.setdefault(stream, []).extend(records)
    return union


def key_of(record: Mapping[str, Any], primary_key: Sequence[str]) -> tuple:
    return tuple(record.get(k) for k in primary_key)


# --- the real entrypoint, as a process ---------------------------------------------------------

@dataclass
class CliRun:
    returncode: int
    messages: List[Dict[str, Any]] = field(default_factory=list)
    stderr: str = ""
    stdout: str = ""

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def records(self) -> Dict[str, List[Dict[str, Any]]]:
        out: Dict[str, List[Dict[str, Any]]] = {}
        for message in self.of_type("RECORD"):
            out.setdefault(message["record"]["stream"], []).append(message["record"]["data"])
        return out

    def last_states(self) -> List[Dict[str, Any]]:
        latest: Dict[str, Dict[str, Any]] = {}
        for message in self.of_type("STATE"):
            latest[message["state"]["stream"]["stream_descriptor"]["name"]] = {
                "type": "STREAM", "stream": message["state"]["stream"]}
        return list(latest.values())

    def error_messages(self) -> List[str]:
        return [m["trace"]["error"]["message"] for m in self.of_type("TRACE") if m["trace"].get("type") == "ERROR"]


def connector_command() -> List[str]:
    return [sys.executable, "-m", "source_sendgrid"]


def write_json(directory: Path, name: str, content: Any) -> str:
    path = directory / name
    path.write_text(json.dumps(content))
    return str(path)


def run_cli(command: str, config: Optional[Mapping[str, Any]] = None, catalog: Optional[Mapping[str, Any]] = None,
            state: Optional[List[Dict[str, Any]]] = None, timeout: float = 600,
            connector: Optional[List[str]] = None) -> CliRun:
    """`connector`: the command that starts the connector, if not connector_command()."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        args = (connector or connector_command()) + [command]
        if config is not None:
            args += ["--config", write_json(directory, "config.json", config)]
        if catalog is not None:
            args += ["--catalog", write_json(directory, "catalog.json", catalog)]
        if state:
            args += ["--state", write_json(directory, "state.json", state)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return CliRun(done.returncode, _parse_messages(done.stdout), done.stderr, done.stdout)


def _parse_messages(stdout: str) -> List[Dict[str, Any]]:
    messages = []
    for line in stdout.splitlines():
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by SIGKILL
    return messages


def run_cli_killed_after(config: Mapping[str, Any], catalog: Mapping[str, Any], state: Optional[List[Dict[str, Any]]],
                         kill_after_lines: int, timeout: float = 600) -> CliRun:
    """Start a read and SIGKILL it once it has printed `kill_after_lines` lines (or let it finish)."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        args = connector_command() + ["read", "--config", write_json(directory, "config.json", config),
                                      "--catalog", write_json(directory, "catalog.json", catalog)]
        if state:
            args += ["--state", write_json(directory, "state.json", state)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        lines: List[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if len(lines) >= kill_after_lines:
                os.kill(process.pid, signal.SIGKILL)
                break
        rest = process.stdout.read() if process.poll() is None or True else ""
        lines.append(rest)
        process.wait(timeout=timeout)
    return CliRun(process.returncode, _parse_messages("".join(lines)))
