"""Simulation: queries email_activity's window sizing (source_sendgrid/message_windows.py) asks on accounts of
several shapes, answered as SendGrid does (newest first, at most 1000), without HTTP or rate limits.

    PYTHONPATH=$PWD .venv/bin/python bench/activity_windows.py [--seeds 12] [--before DIR]

For each shape, the mean over seeds of queries ÷ the least number that can return every message,
ceil(messages / 1000); with --before, the same for the message_windows.py in DIR (a checkout of another commit;
before the module existed, pass a directory holding one extracted from it). A first sync reads 90 days back; the
shapes say over how many of the last days the messages lie. "since state" shapes go on from a state 2 days back.
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
import inspect
import math
import random
from pathlib import Path

NOW = 1_800_000_000
DAY = 86400
# name, messages, over the last days (None: a random span), burst of 5,000 in ten minutes a day ago, read from a state 2 days back
SHAPES = [
    ("first sync, 100k over 10 days (bench/rate_limits.py)", 100_000, 10, False, False),
    ("first sync, 100k over 30 days (SendGrid's history)", 100_000, 30, False, False),
    ("first sync, 100k over 31 days", 100_000, 31, False, False),
    ("first sync, 20k over 10 days", 20_000, 10, False, False),
    ("first sync, 300k over 10 days", 300_000, 10, False, False),
    ("first sync, 30k over 10 days and a burst", 30_000, 10, True, False),
    ("first sync, 100k over 2 to 60 days (a different span each seed)", 100_000, None, False, False),
    ("since state, 10k a day", 400_000, 40, False, True),
]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"message_windows_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def queries(module, times, start, end, after_state):
    plan = module.MessageWindows()
    accepts = inspect.signature(plan.over).parameters
    kwargs = {}
    if "after_messages" in accepts:
        kwargs["after_messages"] = after_state
    if "likely_start" in accepts and not after_state:
        kwargs["likely_start"] = end + 1 - 30 * DAY
    asked = read = 0
    for first, last in plan.over(start, end, **kwargs):
        asked += 1
        inside = times[bisect.bisect_left(times, first): bisect.bisect_right(times, last)]
        answer = inside[::-1][:1000]
        if not plan.told(first, last, len(answer), answer):
            read += len(answer)
    assert read == len(times), f"read {read} of {len(times)} messages"
    return asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--before", help="a directory with source_sendgrid/message_windows.py to compare with")
    args = parser.parse_args()
    versions = [("after", Path(__file__).resolve().parent.parent)] + ([("before", Path(args.before))] if args.before else [])
    modules = [(label, load(root / "source_sendgrid" / "message_windows.py")) for label, root in versions]
    print("| account | least queries | " + " | ".join(f"{label} ÷ least" for label, _ in modules) + " |")
    print("|---|---:|" + "---:|" * len(modules))
    for name, count, days, burst, after_state in SHAPES:
        start = NOW - (2 if after_state else 90) * DAY
        ratios = {label: [] for label, _ in modules}
        for seed in range(args.seeds):
            rng = random.Random(seed)
            span = days * DAY if days else rng.randrange(2 * DAY, 60 * DAY)
            times = [rng.randrange(NOW - span, NOW - 120) for _ in range(count)]
            times += [NOW - DAY + rng.randrange(600) for _ in range(5000 if burst else 0)]
            times = sorted(t for t in times if t >= start)
            least = math.ceil(len(times) / 1000)
            for label, module in modules:
                ratios[label].append(queries(module, times, start, NOW - 1, after_state) / least)
        print(f"| {name} | {least} | " + " | ".join(f"{sum(r) / len(r):.3f}" for r in ratios.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
