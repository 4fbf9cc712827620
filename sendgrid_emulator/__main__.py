"""Run the emulator: `python -m sendgrid_emulator --port 8765 --size 1000`."""

from __future__ import annotations

import argparse
import json
import signal
import threading

from .faults import REALISTIC_DEFAULT_LIMIT, REALISTIC_LIMITS, REALISTIC_WINDOW_SECONDS
from .server import FULL_ACCESS_KEY, Emulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--size", type=int, default=100, help="scale of the seeded account (records per collection)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--count", action="append", default=[], metavar="NAME=N", help="override one collection's size")
    parser.add_argument("--rate-limit", type=int, default=0,
                        help="requests per window per key (0: none); with --endpoint-limits, per endpoint not listed there")
    parser.add_argument("--rate-window", type=float, help="seconds per window (default 1, or 60 with --endpoint-limits realistic)")
    parser.add_argument("--endpoint-limits", action="append", default=[], metavar="realistic|METHOD PATH=N",
                        help="limit each endpoint on its own: 'realistic' (SendGrid's, see faults.REALISTIC_LIMITS: 600 a "
                             "window, GET /v3/messages 6, POST /v3/marketing/contacts/exports 10), or one endpoint's "
                             "limit, e.g. 'GET /v3/messages=6'; repeatable")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE", help="e.g. 500=0.05")
    args = parser.parse_args()

    counts = {name: int(value) for name, value in (item.split("=", 1) for item in args.count)}
    emulator = Emulator(size=args.size, seed=args.seed, counts=counts, host=args.host, port=args.port)
    if args.endpoint_limits:
        realistic = "realistic" in args.endpoint_limits
        limits = dict(REALISTIC_LIMITS) if realistic else {}
        limits.update((name.strip(), int(value)) for name, value in
                      (item.rsplit("=", 1) for item in args.endpoint_limits if item != "realistic"))
        default = args.rate_limit or (REALISTIC_DEFAULT_LIMIT if realistic else 0)
        window = args.rate_window or (REALISTIC_WINDOW_SECONDS if realistic else 1.0)
        emulator.set_rate_limit(default, window, endpoint_limits=limits)
    elif args.rate_limit:
        emulator.set_rate_limit(args.rate_limit, args.rate_window or 1.0)
    if args.fault:
        emulator.set_faults({kind: float(rate) for kind, rate in (item.split("=", 1) for item in args.fault)})
    emulator.start()
    print(json.dumps({"url": emulator.url, "api_key": FULL_ACCESS_KEY}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emulator.stop()


if __name__ == "__main__":
    main()
