"""Run the emulator: `python -m integration_tests.emulator --port 8765 --size 1000`."""

from __future__ import annotations

import argparse
import json
import signal
import threading

from .server import FULL_ACCESS_KEY, Emulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--size", type=int, default=100, help="scale of the seeded account (records per collection)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--count", action="append", default=[], metavar="NAME=N", help="override one collection's size")
    parser.add_argument("--rate-limit", type=int, default=0, help="requests per window per key (0: none)")
    parser.add_argument("--rate-window", type=float, default=1.0)
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE", help="e.g. 500=0.05")
    args = parser.parse_args()

    counts = {name: int(value) for name, value in (item.split("=", 1) for item in args.count)}
    emulator = Emulator(size=args.size, seed=args.seed, counts=counts, host=args.host, port=args.port)
    if args.rate_limit:
        emulator.set_rate_limit(args.rate_limit, args.rate_window)
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
