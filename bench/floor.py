"""The floor: the least work a connector could do for the same pages.

Fetches a given list of URLs one after another with one `requests.Session` (the HTTP client the CDK
uses), parses each body with orjson and writes one Airbyte RECORD line per record to stdout. No retries,
no state, no schema: what is left is the cost of HTTP, JSON in and JSON out.

Input (a JSON file named on the command line): [[stream, url], ...]. The key comes from the
SENDGRID_BENCH_KEY environment variable and is never printed.
"""

from __future__ import annotations

import os
import sys
import time

import orjson
import requests


def records_of(body):
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, list) and (not value or isinstance(value[0], dict)):
                return value
    return []


def main() -> None:
    with open(sys.argv[1], "rb") as file:
        pages = orjson.loads(file.read())
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + os.environ["SENDGRID_BENCH_KEY"]
    session.headers["Accept"] = "application/json"
    out = sys.stdout.buffer
    dumps = orjson.dumps
    for stream, url in pages:
        response = session.get(url, timeout=(10, 120))
        if response.status_code >= 400 or not response.content:
            continue
        emitted_at = time.time_ns() // 1_000_000
        records = records_of(orjson.loads(response.content))
        out.write(b"".join(
            dumps({"type": "RECORD", "record": {"stream": stream, "data": record, "emitted_at": emitted_at}}) + b"\n"
            for record in records
        ))
    out.flush()


if __name__ == "__main__":
    main()
