"""Benchmark: reading a large contacts export, for memory (peak RSS) and speed (records/s).

    .venv/bin/python bench/contacts_export.py                  # 1,000,000 contacts, gzip CSV
    .venv/bin/python bench/contacts_export.py --contacts 100000 --plain

It writes an export file like SendGrid's (upper-case reserved columns, custom fields by name, list and
segment ids) to a temporary directory and serves it, with a minimal fake of the export API, from this
process. Then, each in a fresh process so peak RSS is its own:
- `parse`: the connector's download + decompress + parse of the file alone (`parse_export` over the
  streamed response), the work that must stay flat in memory;
- `sync`: the real connector (`python -m source_sendgrid read`) syncing the `contacts` stream, stdout
  to a pipe whose lines are counted, the number a user sees.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CUSTOM_FIELDS = [
    {"id": "e1_N", "name": "num_orders", "field_type": "Number"},
    {"id": "e2_D", "name": "last_purchase", "field_type": "Date"},
    {"id": "e3_T", "name": "tier", "field_type": "Text"},
]
HEADER = ["EMAIL", "FIRST_NAME", "LAST_NAME", "ADDRESS_LINE_1", "ADDRESS_LINE_2", "CITY", "STATE_PROVINCE_REGION",
          "POSTAL_CODE", "COUNTRY", "PHONE_NUMBER", "WHATSAPP", "LINE", "FACEBOOK", "UNIQUE_NAME", "ALTERNATE_EMAILS",
          "CREATED_AT", "UPDATED_AT", "CONTACT_ID", "LIST_IDS", "SEGMENT_IDS", "num_orders", "last_purchase", "tier"]
LISTS = [f"{i:08x}-aaaa-4aaa-8aaa-{i:012x}" for i in range(8)]


def write_export(path: Path, contacts: int, compress: bool) -> None:
    rng = random.Random(1)
    opener = gzip.open if compress else open
    with opener(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(contacts):
            writer.writerow([
                f"contact{n}@example.com", "Ann", "Smith", "1 Main St", "", "Denver", "CO", "80202", "US", "", "", "", "",
                "", f"alt{n}@example.org" if n % 3 == 0 else "", "2023-01-01T00:00:00Z",
                f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z", f"{n:08x}-0000-4000-8000-{n:012x}",
                ",".join(rng.sample(LISTS, n % 3)), "", str(n % 50), "2024-05-06T00:00:00Z", "gold",
            ])


def serve(export_path: Path) -> ThreadingHTTPServer:
    """The export API and the file host in one: POST → job, GET job → ready, GET /file → the file."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # noqa: D401 - stdlib signature
            pass

        def _json(self, status, body):
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._json(202, {"id": "bench-job", "_metadata": {}})

        def do_GET(self):
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if self.path.startswith("/v3/scopes"):
                return self._json(200, {"scopes": ["marketing.read"]})
            if self.path.startswith("/v3/marketing/field_definitions"):
                return self._json(200, {"custom_fields": CUSTOM_FIELDS, "reserved_fields": []})
            if self.path.startswith("/v3/marketing/contacts/exports/"):
                return self._json(200, {"id": "bench-job", "status": "ready", "urls": [f"{base}/file"]})
            if self.path == "/file":
                size = export_path.stat().st_size
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                with open(export_path, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        self.wfile.write(chunk)
                return None
            return self._json(404, {"errors": [{"message": "not found"}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


PARSE_CHILD = """
import resource, sys, time, requests
from source_sendgrid.contacts.parse import FieldTypes, parse_export
fields = FieldTypes.of({fields})
start = time.perf_counter()
with requests.get(sys.argv[1], stream=True) as response:
    response.raw.decode_content = True
    count = sum(1 for _ in parse_export(response.raw, fields))
elapsed = time.perf_counter() - start
print(count, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_parse(url: str) -> dict:
    code = PARSE_CHILD.format(fields=repr(CUSTOM_FIELDS))
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, cwd=REPO, check=True).stdout
    count, elapsed, rss_kb = out.split()
    return {"records": int(count), "seconds": float(elapsed), "peak_rss_mb": int(rss_kb) / 1024}


def run_sync(base_url: str, directory: Path) -> dict:
    config = {"api_key": "SG.bench-key-not-secret", "api_base_url": base_url, "start_date": "2009-01-01T00:00:00Z"}
    catalog = {"streams": [{"stream": {"name": "contacts", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "catalog.json").write_text(json.dumps(catalog))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "source_sendgrid", "read", "--config", str(directory / "config.json"),
                                "--catalog", str(directory / "catalog.json")], stdout=subprocess.PIPE, cwd=REPO)
    records = sum(1 for line in process.stdout if line.startswith(b'{"type":"RECORD"'))
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    assert status == 0, f"the sync failed with status {status}"
    return {"records": records, "seconds": elapsed, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true", help="an uncompressed file instead of gzip")
    parser.add_argument("--skip-sync", action="store_true", help="measure the parser only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        export_path = directory / ("contacts.csv" if args.plain else "contacts.csv.gz")
        started = time.perf_counter()
        write_export(export_path, args.contacts, compress=not args.plain)
        print(f"export file: {args.contacts:,} contacts, {export_path.stat().st_size / 1e6:.1f} MB "
              f"({'plain' if args.plain else 'gzip'} CSV), written in {time.perf_counter() - started:.1f} s")
        server = serve(export_path)
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        results = {"parse": run_parse(f"{base_url}/file")}
        if not args.skip_sync:
            results["sync"] = run_sync(base_url, directory)
        server.shutdown()
    for name, result in results.items():
        assert result["records"] == args.contacts, f"{name}: {result['records']} records, expected {args.contacts}"
        print(f"{name:>5}: {result['records']:,} records in {result['seconds']:.1f} s = "
              f"{result['records'] / result['seconds']:,.0f} records/s, peak RSS {result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
