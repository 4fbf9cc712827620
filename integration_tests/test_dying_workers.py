"""A worker process that dies mid-sync (SIGKILL, the out-of-memory killer), end to end: the connector runs as
a real process against the emulator with streams read in worker processes, and the test SIGKILLs a worker:
the one that sent a request the emulator is holding (found by the request's TCP port), the other one of two,
or one at a random request of a sync of every stream. That worker's stream must end INCOMPLETE with an error
saying how it died, the other streams must be read to the end, the sync must exit non-zero within seconds,
and no worker may be left behind.

Every wait is bounded: a connector that hangs fails the test after `HANG_SECONDS` and is killed.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import orjson
import pytest

from sendgrid_emulator import Emulator
from sendgrid_emulator.routing import Request
from sendgrid_emulator.harness import REPO, catalog_for, config_for, connector_command, key_of, run_cli, write_json

# `KILL_SEEDS=20` kills at more random points.
KILL_SEEDS = range(int(os.environ.get("KILL_SEEDS", "3")))
# A sync of these few streams takes a few seconds; one that has not ended by then hangs.
HANG_SECONDS = 60.0
# From the kill to the connector's exit, with the other streams still to finish.
EXIT_WITHIN_SECONDS = 20.0
EXPORT_PATH = "/v3/marketing/contacts/exports"
# 127.0.0.1 as /proc/net/tcp writes it.
_LOOPBACK_HEX = "0100007F"


class HeldRequest:
    """The emulator holds the first request that `matches` until released (or HANG_SECONDS), and tells the
    TCP port it came from."""

    def __init__(self, matches: Callable[[Request], bool]):
        self._matches = matches
        self._lock = threading.Lock()
        self.port: Optional[int] = None
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.seen: Dict[str, int] = {}

    def __call__(self, request: Request) -> None:
        with self._lock:
            key = f"{request.method} {request.path}"
            self.seen[key] = self.seen.get(key, 0) + 1
            first = self.port is None and self._matches(request)
            if first:
                self.port = request.client_port
        if first:
            self.arrived.set()
            self.released.wait(HANG_SECONDS)


class Connector:
    """`read` as a real process; its stdout is collected as it comes."""

    def __init__(self, config: Mapping[str, Any], catalog: Mapping[str, Any], directory: Path):
        args = connector_command() + ["read", "--config", write_json(directory, "config.json", config),
                                      "--catalog", write_json(directory, "catalog.json", catalog)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO)
        self.lines: List[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def workers(self) -> List[int]:
        """The connector's child processes, now."""
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(stat.rpartition(b")")[2].split()[1]) == self.process.pid:
                children.append(int(entry))
        return children

    def wait(self) -> Optional[int]:
        """The exit code, or None if it did not exit within HANG_SECONDS (it is killed then)."""
        try:
            return self.process.wait(timeout=HANG_SECONDS)
        except subprocess.TimeoutExpired:
            for pid in [*self.workers(), self.process.pid]:
                _kill(pid)
            self.process.wait(timeout=10)
            return None
        finally:
            self._reader.join(timeout=10)

    def messages(self) -> List[Dict[str, Any]]:
        out = []
        for line in self.lines:
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def process_with_port(port: int, candidates: List[int]) -> int:
    """Which of `candidates` owns the loopback TCP socket whose local port is `port`."""
    wanted = f"{_LOOPBACK_HEX}:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in candidates:
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if links & inodes:
            return pid
    raise AssertionError(f"no worker process owns the socket of port {port}")


def statuses(messages: List[Dict[str, Any]]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for message in messages:
        trace = message.get("trace") or {}
        if message.get("type") == "TRACE" and trace.get("type") == "STREAM_STATUS":
            status = trace["stream_status"]
            out.setdefault(status["stream_descriptor"]["name"], []).append(status["status"])
    return out


def error_messages(messages: List[Dict[str, Any]]) -> List[str]:
    return [m["trace"]["error"]["message"] for m in messages
            if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR"]


def records(messages: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = {}
    for message in messages:
        if message.get("type") == "RECORD":
            out.setdefault(message["record"]["stream"], []).append(message["record"]["data"])
    return out


def stream_read_by(pid: int, messages: List[Dict[str, Any]]) -> str:
    """The stream the connector last logged it gave to worker process `pid`."""
    given = [text[len("Stream "):].split(":")[0] for text in ((m.get("log") or {}).get("message") or "" for m in messages)
             if text.startswith("Stream ") and text.endswith(f": read by worker process {pid}")]
    assert given, f"no stream was logged as read by worker process {pid}"
    return given[-1]


def kill_the_holder(emulator: Emulator, held: HeldRequest, config: Mapping[str, Any], catalog: Mapping[str, Any],
                    before_kill: Callable[[], None] = lambda: None, kill_another: bool = False) -> Dict[str, Any]:
    """Run the sync, SIGKILL the worker whose request the emulator holds (or, `kill_another`, the other one
    of two workers), and report what happened."""
    emulator.on_request = held
    with tempfile.TemporaryDirectory() as tmp:
        connector = Connector(config, catalog, Path(tmp))
        try:
            assert held.arrived.wait(HANG_SECONDS), "the request to hold never came"
            workers = connector.workers()
            victim = process_with_port(held.port, workers)  # type: ignore[arg-type]
            if kill_another:
                assert len(workers) == 2, workers
                victim = next(pid for pid in workers if pid != victim)
            before_kill()
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
        finally:
            held.released.set()
        returncode = connector.wait()
        exited_after = time.monotonic() - killed_at
    time.sleep(0.5)  # what the connector's exit orphans would still be running now
    return {"returncode": returncode, "exited_after": exited_after, "victim": victim,
            "left_behind": [pid for pid in workers if _alive(pid)], "messages": connector.messages()}


def both_waiting_for(held: HeldRequest) -> Callable[[], None]:
    """Until both export streams asked for their field definitions, the step before the export, and a moment
    more: the one whose export request is held creates the export, the other waits for it."""

    def wait() -> None:
        deadline = time.monotonic() + HANG_SECONDS
        while held.seen.get("GET /v3/marketing/field_definitions", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)

    return wait


def assert_every_stream_ended(run: Mapping[str, Any], streams: List[str]) -> None:
    assert run["returncode"] is not None, f"the sync hung: no exit {HANG_SECONDS:.0f} s after a worker was killed"
    found = statuses(run["messages"])
    assert all(found.get(stream, [])[-1:] in (["COMPLETE"], ["INCOMPLETE"]) for stream in streams), found


def assert_only_the_victims_stream_failed(run: Mapping[str, Any], victim_stream: str, truth: Mapping[str, List[Any]],
                                          streams: List[str]) -> None:
    assert run["returncode"] is not None, f"the sync hung: no exit {HANG_SECONDS:.0f} s after a worker was killed"
    assert run["returncode"] != 0, "a sync that lost a stream must fail"
    assert run["exited_after"] < EXIT_WITHIN_SECONDS, f"exited {run['exited_after']:.1f} s after the kill"
    assert not run["left_behind"], f"worker processes left running: {run['left_behind']}"
    messages = run["messages"]
    found = statuses(messages)
    assert found.get(victim_stream, [])[-1:] == ["INCOMPLETE"], found
    errors = error_messages(messages)
    assert any(victim_stream in e and f"(pid {run['victim']}) was killed by signal 9 (SIGKILL)" in e for e in errors), errors
    emitted = records(messages)
    for stream in streams:
        if stream == victim_stream:
            continue
        assert found.get(stream, [])[:1] == ["STARTED"] and found[stream][-1] == "COMPLETE", (stream, found.get(stream))
        assert len(emitted.get(stream, [])) == len(truth[stream]), stream
    # The final error names the failed stream, and only it.
    named = {s for s in streams if re.search(rf"\b{s}\b", errors[-1])}
    assert named == {victim_stream}, errors[-1]


def test_a_worker_killed_mid_stream_fails_its_stream_and_the_streams_not_started_yet_still_run():
    """Two workers for five streams: the one reading bounces is killed inside a request; the other three
    streams (two not started then) are read to the end by the other worker or one started in its place."""
    streams = ["bounces", "blocks", "spam_reports", "invalid_emails", "global_suppressions"]
    with Emulator(size=60, seed=31, families=["suppressions"]) as emulator:
        config = config_for(emulator, start_date="2022-12-01T00:00:00Z", concurrency=2)
        catalog = catalog_for(config, streams, mode="full_refresh")
        held = HeldRequest(lambda request: request.path == "/v3/suppression/bounces")
        run = kill_the_holder(emulator, held, config, catalog)
        truth = emulator.truth()
    print(f"kill to exit: {run['exited_after']:.2f} s")
    assert_only_the_victims_stream_failed(run, "bounces", truth, streams)


def test_a_worker_killed_while_it_creates_the_shared_export_does_not_hang_the_stream_waiting_for_it():
    """contacts and list_members share one export job: the worker creating it is killed while the other
    waits for it (0.2.2 held the export lock for that whole wait, so the other waited forever). The other
    takes the job over, reads its stream to the end, and the sync fails at once for the killed stream."""
    streams = ["contacts", "list_members"]
    with Emulator(size=60, seed=32, families=["marketing"]) as emulator:
        config = config_for(emulator, concurrency=2)
        catalog = catalog_for(config, streams, mode="full_refresh")
        held = HeldRequest(lambda request: request.method == "POST" and request.path == EXPORT_PATH)
        run = kill_the_holder(emulator, held, config, catalog, before_kill=both_waiting_for(held))
        truth = emulator.truth()
        exports_started = held.seen.get(f"POST {EXPORT_PATH}", 0)
    print(f"kill to exit: {run['exited_after']:.2f} s")
    assert_every_stream_ended(run, streams)
    assert_only_the_victims_stream_failed(run, stream_read_by(run["victim"], run["messages"]), truth, streams)
    assert exports_started == 2, "the waiting stream took over with an export of its own, the only other one"


def test_a_worker_killed_while_it_waits_for_the_shared_export_leaves_the_export_to_the_stream_creating_it():
    """The other side of the test above: the worker waiting for the export is killed. The stream creating the
    export reads it to the end, with the one export job, and only the killed worker's stream fails."""
    streams = ["contacts", "list_members"]
    with Emulator(size=60, seed=34, families=["marketing"]) as emulator:
        config = config_for(emulator, concurrency=2)
        catalog = catalog_for(config, streams, mode="full_refresh")
        held = HeldRequest(lambda request: request.method == "POST" and request.path == EXPORT_PATH)
        run = kill_the_holder(emulator, held, config, catalog, before_kill=both_waiting_for(held), kill_another=True)
        truth = emulator.truth()
        exports_started = held.seen.get(f"POST {EXPORT_PATH}", 0)
    print(f"kill to exit: {run['exited_after']:.2f} s")
    assert_every_stream_ended(run, streams)
    assert_only_the_victims_stream_failed(run, stream_read_by(run["victim"], run["messages"]), truth, streams)
    assert exports_started == 1


def test_a_stream_whose_worker_was_killed_after_a_state_resumes_from_it_and_loses_nothing():
    """bounces is read window by window, a state after each: its worker is killed inside the request of its
    third window. The records and states emitted before stay valid: a sync from the last state emits the
    rest, and the two syncs together hold every bounce."""
    streams = ["bounces", "blocks", "spam_reports"]
    requests_seen = []

    def third_window_of_bounces(request: Request) -> bool:
        if request.path != "/v3/suppression/bounces":
            return False
        requests_seen.append(request)
        return len(requests_seen) == 3

    with Emulator(size=120, seed=33, families=["suppressions"]) as emulator:
        config = config_for(emulator, start_date="2022-12-01T00:00:00Z", window_days=60, concurrency=2)
        catalog = catalog_for(config, streams, mode="incremental")
        run = kill_the_holder(emulator, HeldRequest(third_window_of_bounces), config, catalog)
        truth = emulator.truth()
        print(f"kill to exit: {run['exited_after']:.2f} s")
        assert_only_the_victims_stream_failed(run, "bounces", truth, streams)
        states = [m["state"] for m in run["messages"] if m.get("type") == "STATE"
                  and m["state"]["stream"]["stream_descriptor"]["name"] == "bounces"]
        assert states, "bounces emitted no state before its worker was killed: the kill came too early"
        emulator.on_request = None
        resumed = run_cli("read", config, catalog_for(config, ["bounces"], mode="incremental"), state=[states[-1]], timeout=HANG_SECONDS)
    assert resumed.returncode == 0, resumed.error_messages()
    before = records(run["messages"]).get("bounces", [])
    assert before, "bounces emitted no record before its worker was killed"
    got = {key_of(r, ["email"]) for r in before + resumed.records().get("bounces", [])}
    assert got == {key_of(r, ["email"]) for r in truth["bounces"]}


@pytest.fixture(scope="module")
def requests_of_a_full_sync() -> int:
    """How many API requests an uninterrupted sync of every stream sends, so kill points fall inside it."""
    with Emulator(size=400, seed=35) as emulator:
        config = config_for(emulator, start_date="2022-12-01T00:00:00Z", concurrency=3)
        assert run_cli("read", config, catalog_for(config, mode="full_refresh"), timeout=HANG_SECONDS).returncode == 0
        return emulator.api_requests


@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_a_worker_killed_at_a_random_point_of_a_sync_of_every_stream_fails_at_most_its_stream(seed, requests_of_a_full_sync):
    """Every stream, three workers, one SIGKILLed when the emulator gets a random request of the sync (not
    necessarily from that worker): inside a request, a lock, an export wait, a write to the main process, or
    between streams. Every stream still ends with a status, every stream but the killed worker's is read to
    the end, and the sync fails only if that stream was lost."""
    rng = random.Random(seed)
    kill_at = rng.randint(3, int(requests_of_a_full_sync * 0.9))
    reached = threading.Event()
    with Emulator(size=400, seed=35) as emulator:
        config = config_for(emulator, start_date="2022-12-01T00:00:00Z", concurrency=3)
        catalog = catalog_for(config, mode="full_refresh")
        streams = [c["stream"]["name"] for c in catalog["streams"]]
        emulator.on_request = lambda request: reached.set() if emulator.api_requests >= kill_at else None
        with tempfile.TemporaryDirectory() as tmp:
            connector = Connector(config, catalog, Path(tmp))
            assert reached.wait(HANG_SECONDS), f"the sync sent fewer than {kill_at} requests"
            workers = connector.workers()
            assert workers, "the sync ended before the kill"
            victim = rng.choice(workers)
            _kill(victim)
            killed_at = time.monotonic()
            returncode = connector.wait()
            exited_after = time.monotonic() - killed_at
    truth = emulator.truth()
    time.sleep(0.5)
    print(f"seed {seed}: killed at request {kill_at} of {requests_of_a_full_sync}; kill to exit: {exited_after:.2f} s")
    run = {"returncode": returncode, "exited_after": exited_after, "victim": victim,
           "left_behind": [pid for pid in workers if _alive(pid)], "messages": connector.messages()}
    assert_every_stream_ended(run, streams)
    failed = [name for name, found in statuses(run["messages"]).items() if found[-1] == "INCOMPLETE"]
    if failed:
        assert failed == [stream_read_by(victim, run["messages"])], failed
        assert_only_the_victims_stream_failed(run, failed[0], truth, [s for s in streams if s in truth])
    else:  # killed between two streams, or after its last: nothing was lost
        assert returncode == 0 and not run["left_behind"], (returncode, run["left_behind"])
        emitted = records(run["messages"])
        assert all(len(emitted.get(s, [])) == len(truth[s]) for s in streams if s in truth)


@pytest.fixture(autouse=True)
def _linux_only():
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("finds worker processes through /proc")
