"""Benchmark: our connector against Airbyte's official airbyte-source-sendgrid 1.1.5 and, given its manifest,
Airbyte's current manifest-only release, on the same emulator data.

    .venv/bin/python bench/compare.py            # the largest account (see LARGEST below); minutes
    .venv/bin/python bench/compare.py --quick    # a small account, to iterate
    .venv/bin/python bench/compare.py --quick --manifest /work/bench-data/source-sendgrid-manifest.yaml

It starts the emulator in this process, discovers the streams of both connectors, and for each scenario
(no rate limit, then an emulator rate limit) runs a full sync and then an incremental sync (with the full
sync's state, nothing new) with each connector over the streams both have. Then it replays the pages our
full sync fetched through bench/floor.py (the least work possible) and, per emulator family, compares
our connector alone with that floor. Records go to files and are counted after the clock stops.

The official connector lives in bench/.venv-official (created on first use from PyPI) and is pointed at
the emulator by bench/sitecustomize.py. The manifest release is Airbyte's manifest.yaml (not in this repository,
see docs/performance.md) run by airbyte-cdk's `source-declarative-manifest` from bench/.venv-manifest, pointed at
the emulator the same way. Each of them is compared with a run of ours over the streams the two share.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import orjson
import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from sendgrid_emulator import FULL_ACCESS_KEY, Emulator  # noqa: E402

OFFICIAL_VENV = BENCH / ".venv-official"
OFFICIAL_PACKAGE = "airbyte-source-sendgrid==1.1.5"
START_DATE = "2009-01-01T00:00:00Z"

# The largest account: collection sizes by count name (names that no family has are ignored).
LARGEST = {
    "suppressions_per_list": 100_000,  # 500k across the five lists
    "group_members": 50_000,
    "stats_days": 1_000,  # about 10k stats rows across the dimensions
}
# Count names other families may use, matched by pattern, for the largest account.
LARGEST_PATTERNS = [
    (re.compile(r"(^|_)contacts$"), 1_000_000),
    (re.compile(r"^(marketing_)?(lists|segments)$"), 2_000),
    (re.compile(r"templates?$"), 10_000),
]
QUICK_SIZE = 3_000
# Streams whose own rate (first to last record) the report shows: the export's wait is left out.
SLOW_START_REPORTED = ("contacts",)
# Streams the official connector cannot read from the emulator. 1.1.5 pages /v3/asm/suppressions with
# limit/offset, which the endpoint ignores (it returns every member at once), so 1.1.5 asks for the
# next offset forever once there are 500 members or more.
OFFICIAL_EXCLUDED = {"suppression_group_members": "1.1.5 pages an unpaged endpoint: endless loop"}
# The manifest release (airbyte/source-sendgrid 1.3.34) runs on the image airbyte/source-declarative-manifest:7.23.1,
# i.e. this CDK's `source-declarative-manifest`.
MANIFEST_VENV = BENCH / ".venv-manifest"
MANIFEST_PACKAGE = "airbyte-cdk==7.23.1"
# /v3/asm/suppressions as for 1.1.5: the release pages it with limit/offset (OffsetIncrement, 500 a page).
MANIFEST_EXCLUDED = {"suppression_group_members": "the manifest release pages an unpaged endpoint: endless loop"}


@dataclass
class Run:
    label: str
    connector: str
    streams: List[str] = field(default_factory=list)
    records: int = 0
    per_stream: Dict[str, int] = field(default_factory=dict)
    # First and last emitted_at (ms) per stream: a stream's own rate, e.g. contacts once the export is ready.
    spans: Dict[str, List[int]] = field(default_factory=dict)
    states: List[dict] = field(default_factory=list)
    requests: int = 0
    rate_limited: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    rss_mb: float = 0.0
    emulator_cpu: float = 0.0
    returncode: int = 0
    errors: List[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.records / self.wall if self.wall else 0.0

    def stream_rate(self, stream: str) -> float:
        """Records/s of one stream between its first and its last record."""
        span = self.spans.get(stream)
        if not span or span[1] <= span[0]:
            return 0.0
        return self.per_stream.get(stream, 0) / ((span[1] - span[0]) / 1000.0)

    @property
    def steady_rps(self) -> float:
        """Records/s from the first record to the last, whatever the stream: leaves out start-up
        (importing the CDK takes seconds) and any export wait before the first record."""
        if not self.spans:
            return 0.0
        first = min(span[0] for span in self.spans.values())
        last = max(span[1] for span in self.spans.values())
        return self.records / ((last - first) / 1000.0) if last > first else 0.0

    @property
    def per_1k(self) -> float:
        return 1000.0 * self.requests / self.records if self.records else float("nan")


class Contender(NamedTuple):
    name: str
    command: List[str]
    env: Optional[Dict[str, str]]
    config: dict
    streams: List[dict]  # as discovered
    names: List[str]  # the streams it is compared on


# --- the emulator ---------------------------------------------------------------------------------

def emulator_counts(size: int, largest: bool, overrides: Dict[str, int]) -> Dict[str, int]:
    probe = Emulator(size=1, seed=1)
    names = set()
    for family in probe.families.values():
        names.update(family.default_counts(size))
    counts: Dict[str, int] = {}
    if largest:
        for name in names:
            if name in LARGEST:
                counts[name] = LARGEST[name]
                continue
            for pattern, value in LARGEST_PATTERNS:
                if pattern.search(name):
                    counts[name] = value
                    break
    counts.update(overrides)
    return counts


def write_export_files(emulator: Emulator) -> float:
    """Have the emulator write its contacts export files now, before any timed sync (it keeps the files of
    unchanged contacts), so that no connector's clock holds the emulator writing a million contacts: SendGrid
    writes exports on its own servers, and a connector only waits for them. The seconds it took."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {FULL_ACCESS_KEY}"}
    job = requests.post(f"{emulator.url}/v3/marketing/contacts/exports", json={"file_type": "csv"}, headers=headers,
                        timeout=600).json()["id"]
    while requests.get(f"{emulator.url}/v3/marketing/contacts/exports/{job}", headers=headers,
                       timeout=600).json()["status"] != "ready":
        time.sleep(0.1)
    return time.monotonic() - started


def request_total(emulator: Emulator) -> int:
    return sum(n for name, n in emulator.stats()["counters"].items() if not name.endswith(" control"))


def families_of(emulator: Emulator) -> Dict[str, List[str]]:
    with emulator.account.lock:
        return {name: sorted(module.truth(emulator.account)) for name, module in emulator.families.items()}


# --- running a connector --------------------------------------------------------------------------

def ours_command() -> List[str]:
    return [sys.executable, "-m", "source_sendgrid"]


def official_command() -> List[str]:
    # The console script, not `python -c`: the latter would put the working directory (this repo, with our
    # own `source_sendgrid` package) first on sys.path.
    return [str(OFFICIAL_VENV / "bin" / "source-sendgrid")]


def official_env(emulator: Emulator) -> Dict[str, str]:
    """Also the manifest release's: both send to https://api.sendgrid.com, which sitecustomize.py redirects."""
    return {**os.environ, "PYTHONPATH": str(BENCH), "SENDGRID_BENCH_TARGET": emulator.url}


def manifest_command() -> List[str]:
    return [str(MANIFEST_VENV / "bin" / "source-declarative-manifest")]


def manifest_config(official_config: dict, manifest_path: Path) -> dict:
    """The release's config with its manifest where `source-declarative-manifest` reads it (the Docker image
    reads the same manifest from a file baked into the image; the source built from it is the same)."""
    import yaml

    return {**official_config, "__injected_declarative_manifest": yaml.safe_load(manifest_path.read_text())}


def ensure_venv(venv: Path, package: str) -> None:
    if (venv / "bin" / "python").exists():
        return
    print(f"installing {package} into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", package], check=True)


def run_process(args: Sequence[str], env: Optional[Dict[str, str]], stdout_path: Path, timeout: float):
    """Run to completion with stdout to a file; (returncode, wall, cpu seconds, peak RSS MB)."""
    started = time.monotonic()
    with open(stdout_path, "wb") as out:
        process = subprocess.Popen(list(args), stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=stdout_path.parent)
        deadline = started + timeout
        peak_kb, samples = 0, 0
        while True:
            # VmHWM: the process's peak resident set since its exec (ru_maxrss would count the memory of
            # this process, the emulator's, at fork time). A connector that reads in worker processes is
            # measured by the proportional set sizes of all its processes together, sampled every 50 ms:
            # a page the forked workers share with their parent is counted once, split between them.
            peak_kb = max(peak_kb, _vm_hwm_kb(process.pid))
            if samples % 5 == 0:
                tree = _process_tree(process.pid)
                if len(tree) > 1:
                    peak_kb = max(peak_kb, sum(_pss_kb(pid) for pid in tree))
            samples += 1
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                status = -9
                break
            time.sleep(0.01)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status) if status != -9 else -9
    return code, wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024.0


def _vm_hwm_kb(pid: int) -> int:
    return _status_kb(pid, b"VmHWM:")


def _pss_kb(pid: int) -> int:
    return _status_kb(pid, b"Pss:", "smaps_rollup")


def _status_kb(pid: int, field: bytes, table: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{table}", "rb") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _process_tree(pid: int) -> List[int]:
    """The process and its descendants."""
    tree, index = [pid], 0
    while index < len(tree):
        try:
            with open(f"/proc/{tree[index]}/task/{tree[index]}/children", "rb") as children:
                tree.extend(int(child) for child in children.read().split())
        except OSError:
            pass
        index += 1
    return tree


def discover(command: List[str], config: dict, env: Optional[dict], workdir: Path) -> List[dict]:
    config_path = write(workdir / "discover-config.json", config)
    done = subprocess.run(command + ["discover", "--config", config_path], capture_output=True, env=env, cwd=workdir, timeout=300)
    for line in done.stdout.splitlines():
        if line.startswith(b"{") and b'"CATALOG"' in line:
            message = orjson.loads(line)
            if message.get("type") == "CATALOG":
                return message["catalog"]["streams"]
    raise SystemExit(f"discover failed for {command}: {done.stderr[-2000:].decode(errors='replace')}")


def configured_catalog(streams: List[dict], names: Sequence[str]) -> dict:
    configured = []
    for stream in streams:
        if stream["name"] not in names:
            continue
        incremental = "incremental" in stream.get("supported_sync_modes", [])
        entry = {"stream": stream, "sync_mode": "incremental" if incremental else "full_refresh",
                 "destination_sync_mode": "append" if incremental else "overwrite"}
        if incremental:
            entry["cursor_field"] = stream.get("default_cursor_field") or []
        configured.append(entry)
    return {"streams": configured}


def write(path: Path, content: Any) -> str:
    path.write_bytes(orjson.dumps(content))
    return str(path)


def read_output(path: Path, run: Run) -> None:
    states: Dict[str, dict] = {}
    with open(path, "rb") as file:
        for line in file:
            if line.startswith(b'{"type":"RECORD"') or line.startswith(b'{"type": "RECORD"'):
                start = line.find(b'"stream":')
                stream = line[start + 9:line.index(b",", start)].strip().strip(b'"').decode()
                run.per_stream[stream] = run.per_stream.get(stream, 0) + 1
                run.records += 1
                at = line.rfind(b'"emitted_at":')
                if at > 0:
                    emitted = int(line[at + 13:].lstrip().split(b"}", 1)[0].split(b",", 1)[0])
                    span = run.spans.setdefault(stream, [emitted, emitted])
                    span[0], span[1] = min(span[0], emitted), max(span[1], emitted)
            elif b'"STATE"' in line[:40] or b'"TRACE"' in line[:40]:
                message = orjson.loads(line)
                if message.get("type") == "STATE":
                    stream_state = message["state"].get("stream") or {}
                    name = stream_state.get("stream_descriptor", {}).get("name")
                    if name:
                        states[name] = {"type": "STREAM", "stream": {k: v for k, v in stream_state.items()}}
                elif message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR":
                    run.errors.append(message["trace"]["error"].get("message", "")[:200])
    run.states = list(states.values())


def sync(label: str, connector: str, command: List[str], env: Optional[dict], emulator: Emulator, config: dict,
         catalog: dict, state: Optional[List[dict]], workdir: Path, timeout: float) -> Run:
    run = Run(label, connector, [entry["stream"]["name"] for entry in catalog["streams"]])
    args = command + ["read", "--config", write(workdir / "config.json", config),
                      "--catalog", write(workdir / "catalog.json", catalog)]
    if state:
        args += ["--state", write(workdir / "state.json", state)]
    out = workdir / f"{connector}-{re.sub(r'[^a-z0-9]+', '-', label)}.jsonl"
    requests_before, limited_before = request_total(emulator), emulator.limiter.rejected
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    run.returncode, run.wall, run.cpu, run.rss_mb = run_process(args, env, out, timeout)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    run.emulator_cpu = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    run.requests = request_total(emulator) - requests_before
    run.rate_limited = emulator.limiter.rejected - limited_before
    read_output(out, run)
    out.unlink()
    return run


def floor(label: str, emulator: Emulator, since: float, workdir: Path, timeout: float) -> Run:
    """Replay what our connector fetched (after `since`) through bench/floor.py."""
    pages = [[entry["path"].rsplit("/", 1)[-1], f"{emulator.url}{entry['path']}" + (f"?{entry['query']}" if entry["query"] else "")]
             for entry in list(emulator.requests_log)
             if entry["at"] >= since and entry["path"].startswith("/v3/") and entry["path"] != "/v3/scopes"]
    run = Run(label, "floor")
    env = {**os.environ, "SENDGRID_BENCH_KEY": FULL_ACCESS_KEY}
    out = workdir / "floor.jsonl"
    requests_before = request_total(emulator)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    run.returncode, run.wall, run.cpu, run.rss_mb = run_process(
        [sys.executable, str(BENCH / "floor.py"), write(workdir / "pages.json", pages)], env, out, timeout)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    run.emulator_cpu = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    run.requests = request_total(emulator) - requests_before
    read_output(out, run)
    out.unlink()
    return run


def _stream_name(cls: type) -> str:
    """Stream.name's rule: the class name in snake case."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


# --- the report -----------------------------------------------------------------------------------

HEADER = ("| scenario | connector | records | records/s | requests | req/1k rec | wall s | CPU s | peak RSS MB | 429s | emulator CPU s |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def row(run: Run) -> str:
    failed = f" (exit {run.returncode}{', ' + run.errors[0][:60] if run.errors else ''})" if run.returncode else ""
    return (f"| {run.label} | {run.connector}{failed} | {run.records:,} | {run.rps:,.0f} | {run.requests:,} | {run.per_1k:.2f} | "
            f"{run.wall:.2f} | {run.cpu:.2f} | {run.rss_mb:.0f} | {run.rate_limited} | {run.emulator_cpu:.2f} |")


def ratio(ours: Run, other: Run) -> str:
    def safe(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "n/a"

    return (f"| {ours.label} | {safe(ours.rps, other.rps)}x | {safe(ours.requests, other.requests)}x | "
            f"{safe(ours.wall, other.wall)}x | {safe(ours.cpu, other.cpu)}x | {safe(ours.rss_mb, other.rss_mb)}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"a small account (size {QUICK_SIZE})")
    parser.add_argument("--size", type=int, help="emulator size (default: the largest account, or the quick one)")
    parser.add_argument("--count", action="append", default=[], metavar="NAME=N", help="override one emulator count")
    parser.add_argument("--rate-limit", type=int, default=200, help="requests per window for the rate-limited scenario (0: skip it)")
    parser.add_argument("--rate-window", type=float, default=2.0, help="seconds per rate-limit window")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="also run a scenario where every API response is delayed this many seconds, as over the "
                             "internet (0: skip it)")
    parser.add_argument("--concurrency", type=int, help="our connector's `concurrency` (default: the connector's default)")
    parser.add_argument("--streams", type=lambda text: [n.strip() for n in text.split(",") if n.strip()],
                        help="only these streams (comma-separated), e.g. the common ones when --skip-official")
    parser.add_argument("--lookback-days", type=int,
                        help="our connector's `lookback_days` (default: the connector's default, 1): with 0, an "
                             "incremental sync with nothing new has no contact to re-read, so it needs no export")
    parser.add_argument("--skip-official", action="store_true", help="leave out 1.1.5")
    parser.add_argument("--manifest", type=Path, metavar="PATH",
                        help="also run Airbyte's manifest-only release from this manifest.yaml (see docs/performance.md)")
    parser.add_argument("--skip-families", action="store_true", help="skip the per-family floor comparison")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one sync")
    parser.add_argument("--official-incremental-timeout", type=float,
                        help="seconds allowed for the official connector's incremental sync (it exports every contact "
                             "again: about 20 minutes for 1M); it is stopped after that and shown with its exit code")
    parser.add_argument("--manifest-incremental-timeout", type=float,
                        help="the same for the manifest release's incremental sync")
    args = parser.parse_args()

    largest = not args.quick and args.size is None
    size = args.size or (QUICK_SIZE if args.quick else 100_000)
    overrides = {name: int(value) for name, value in (item.split("=", 1) for item in args.count)}
    counts = emulator_counts(size, largest, overrides)
    started = time.monotonic()
    emulator = Emulator(size=size, seed=2024, counts=counts).start()
    truth_counts = {stream: len(records) for stream, records in emulator.truth().items()}
    print(f"emulator: size {size}, counts {counts or 'defaults'}, seeded in {time.monotonic() - started:.1f} s; "
          f"{sum(truth_counts.values()):,} records in {len(truth_counts)} streams; contacts export files written in "
          f"{write_export_files(emulator):.1f} s, before the syncs", flush=True)

    ours_config = {"api_key": FULL_ACCESS_KEY, "api_base_url": emulator.url, "start_date": START_DATE}
    if args.concurrency:
        ours_config["concurrency"] = args.concurrency
    if args.lookback_days is not None:
        ours_config["lookback_days"] = args.lookback_days
    official_config = {"api_key": FULL_ACCESS_KEY, "start_date": START_DATE}
    runs: List[Run] = []
    pairs = []
    with tempfile.TemporaryDirectory(prefix="sendgrid-bench-") as tmp:
        workdir = Path(tmp)
        ours_streams = discover(ours_command(), ours_config, None, workdir)
        ours_names = [s["name"] for s in ours_streams]
        if args.streams:
            unknown = set(args.streams) - set(ours_names)
            if unknown:
                raise SystemExit(f"--streams: no such stream {sorted(unknown)}")

        def shared(streams: List[dict], excluded: Dict[str, str], who: str) -> List[str]:
            """Our streams the other connector also has and the emulator serves, in our order."""
            theirs = {s["name"] for s in streams}
            names = [n for n in ours_names if n in theirs and n not in excluded and n in truth_counts
                     and (not args.streams or n in args.streams)]
            print(f"streams ours and {who} both have (and the emulator serves): {', '.join(names)}")
            for name, why in excluded.items():
                if name in theirs:
                    print(f"left out for {who}: {name} ({why})")
            return names

        others: List[Contender] = []
        if not args.skip_official:
            ensure_venv(OFFICIAL_VENV, OFFICIAL_PACKAGE)
            official_streams = discover(official_command(), official_config, official_env(emulator), workdir)
            others.append(Contender("official", official_command(), official_env(emulator), official_config,
                                    official_streams, shared(official_streams, OFFICIAL_EXCLUDED, "1.1.5")))
        if args.manifest:
            ensure_venv(MANIFEST_VENV, MANIFEST_PACKAGE)
            config = manifest_config(official_config, args.manifest)
            manifest_streams = discover(manifest_command(), config, official_env(emulator), workdir)
            others.append(Contender("manifest", manifest_command(), official_env(emulator), config, manifest_streams,
                                    shared(manifest_streams, MANIFEST_EXCLUDED, "the manifest release")))
        # Ours runs once per distinct stream set, so that each ratio is over the same streams for both sides.
        # The first set (1.1.5's, or else the manifest release's, or else all) also gets the page-replay floor.
        ours_sets: List[List[str]] = []
        for other in others:
            if other.names not in ours_sets:
                ours_sets.append(other.names)
        if not ours_sets:
            ours_sets.append([n for n in ours_names if n in truth_counts and (not args.streams or n in args.streams)])
        common = ours_sets[0]
        if len(ours_sets) > 1:
            print("the manifest release shares other streams with ours than 1.1.5 does: ours runs once for each "
                  "set, and each ratio is over its own set")

        def ours_label(names: List[str]) -> str:
            if names == common:
                return "ours"
            return "ours, " + " & ".join(other.name for other in others if other.names == names) + " streams"

        scenarios = [("full", 0, 0.0)]
        if args.rate_limit and others:
            scenarios.append((f"full, {args.rate_limit} req/{args.rate_window:g}s", args.rate_limit, 0.0))
        if args.latency and others:
            scenarios.append((f"full, {args.latency * 1000:g} ms latency", 0, args.latency))
        incremental_timeouts = {"official": args.official_incremental_timeout, "manifest": args.manifest_incremental_timeout}
        for scenario, limit, latency in scenarios:
            emulator.set_rate_limit(limit, args.rate_window) if limit else emulator.set_rate_limit(0)
            # Every response of the API (not the export files' host) waits `latency` seconds.
            emulator.set_faults({"slow": 1.0} if latency else {}, slow_seconds=latency)
            incremental_label = scenario.replace("full", "incremental")
            pair_runs = {}
            contenders = list(others)
            contenders += [Contender(ours_label(names), ours_command(), None, ours_config, ours_streams, names)
                           for names in ours_sets]
            for name, command, env, config, streams, names in contenders:
                catalog = configured_catalog(streams, names)
                since = time.time()
                full = sync(scenario, name, command, env, emulator, config, catalog, None, workdir, args.timeout)
                print(row(full), flush=True)
                incremental = sync(incremental_label, name, command, env, emulator, config, catalog, full.states, workdir,
                                   incremental_timeouts.get(name) or args.timeout)
                print(row(incremental), flush=True)
                runs += [full, incremental]
                pair_runs[name] = (full, incremental)
                if name == "ours" and not limit and not latency:
                    base = floor(scenario, emulator, since, workdir, args.timeout)
                    print(row(base), flush=True)
                    runs.append(base)
                    pair_runs["floor"] = (base, None)
            for other in others:
                pair_runs[f"ours for {other.name}"] = pair_runs[ours_label(other.names)]
            pairs.append(pair_runs)

        family_rows = []
        if not args.skip_families:
            emulator.set_rate_limit(0)
            emulator.set_faults({})
            from source_sendgrid.streams import ALL_STREAMS
            from source_sendgrid.streams.contacts_export import ContactsExportStream

            # Streams fed by export files (not JSON pages) have no page-replay floor.
            export_fed = {_stream_name(cls) for cls in ALL_STREAMS if issubclass(cls, ContactsExportStream)}
            for family, streams in families_of(emulator).items():
                names = [n for n in ours_names if n in streams and n not in export_fed]
                if not names:
                    continue
                since = time.time()
                ours = sync(f"family {family}", "ours", ours_command(), None, emulator, ours_config,
                            configured_catalog(ours_streams, names), None, workdir, args.timeout)
                base = floor(f"family {family}", emulator, since, workdir, args.timeout)
                print(row(ours), flush=True)
                print(row(base), flush=True)
                runs += [ours, base]
                family_rows.append((family, ours, base))

    print()
    print(f"## size {size}: {sum(truth_counts.values()):,} records in the emulator")
    for other in others:
        print(f"\nstreams ours and {other.name} both have: {', '.join(other.names)}")
    if not others:
        print(f"\nstreams: {', '.join(common)}")
    print()
    print(HEADER)
    for run in runs:
        print(row(run))
    print()
    for name, names in ((other.name, other.names) for other in others):
        title = {"official": "official (1.1.5)", "manifest": "manifest release"}[name]
        if len(ours_sets) > 1:
            print(f"over the {len(names)} streams ours and the {title} both have\n")
        print(f"| ours / {title} | records/s | requests | wall | CPU | peak RSS |\n|---|---:|---:|---:|---:|---:|")
        for pair in pairs:
            for ours, theirs in zip(pair[f"ours for {name}"], pair[name]):
                print(ratio(ours, theirs))
        print()
    # Records/s compares what each emits; the wall-time ratio (floor / ours) compares the time to go through the
    # same pages, which is the fairer measure where the two count records differently (stats rows are split
    # by us; activity windows that come back full are read again by us in halves and counted by the floor).
    # Only per family: the full sync's floor replays its JSON pages, not the contacts export.
    print("| ours / floor (same pages) | records/s | ours | floor | first-to-last-record records/s | ours | floor | wall (floor / ours) |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")
    floors = [(f"{pair['ours'][0].label}, common JSON-page streams", pair["ours"][0], pair["floor"][0]) for pair in pairs if "floor" in pair]
    floors += [(f"family {family}", ours, base) for family, ours, base in family_rows]
    for label, ours, base in floors:
        print(f"| {label} | {ours.rps / base.rps if base.rps else 0:.2f}x | {ours.rps:,.0f} | {base.rps:,.0f} | "
              f"{ours.steady_rps / base.steady_rps if base.steady_rps else 0:.2f}x | {ours.steady_rps:,.0f} | {base.steady_rps:,.0f} | "
              f"{f'{base.wall / ours.wall:.2f}x' if label.startswith('family') and ours.wall else 'n/a'} |")
    for pair in pairs:
        for name in (other.name for other in others):
            ours, theirs = pair[f"ours for {name}"][0], pair[name][0]
            for stream in sorted(set(ours.spans) & set(theirs.spans)):
                if stream in SLOW_START_REPORTED:
                    mine, their_rate = ours.stream_rate(stream), theirs.stream_rate(stream)
                    print(f"\n{ours.label}: {stream} once the export is ready: ours {mine:,.0f} records/s, "
                          f"{name} {their_rate:,.0f} records/s: {mine / their_rate if their_rate else 0:.1f}x")
    # Per stream, each full sync's records against ours over the same streams (a connector that reads less
    # than we do is not doing the same work), and ours against the emulator's truth.
    for pair in pairs:
        for name, names in ((other.name, other.names) for other in others):
            ours, theirs = pair[f"ours for {name}"][0], pair[name][0]
            differing = [f"{s} (ours {ours.per_stream.get(s, 0):,}, {name} {theirs.per_stream.get(s, 0):,}, "
                         f"emulator {truth_counts.get(s, 0):,})" for s in names if ours.per_stream.get(s, 0) != theirs.per_stream.get(s, 0)]
            if differing:
                print(f"\n{ours.label}: records per stream differ between ours and {name}: {'; '.join(differing)}")
    mismatched = [(r.connector, r.label) for r in runs if r.connector.startswith("ours") and r.label.startswith("full")
                  and any(r.per_stream.get(s, 0) != truth_counts.get(s, 0) for s in r.streams)]
    if mismatched:
        print(f"\nWARNING: record counts differ from the emulator's truth in {mismatched}")
    emulator.stop()


if __name__ == "__main__":
    main()
