"""Simulation: queries email_activity's window sizing (source_sendgrid/message_windows.py) asks on accounts of
several shapes, answered as SendGrid does (newest first, at most 1000), without HTTP or rate limits.

    PYTHONPATH=$PWD .venv/bin/python bench/activity_windows.py [--seeds 12]

For each shape, the mean and the largest over seeds of queries ÷ the least number that can return every message,
ceil(messages / 1000). A first sync reads 90 days back; the shapes say over how many of the last days the messages
lie. "since state" shapes go on from a state 2 days back. (bench/rate_limits.py --scenario activity --before DIR
compares two commits through the connector itself.)
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from source_sendgrid.message_windows import MessageWindows  # noqa: E402

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


def queries(times, start, end, after_state):
    plan = MessageWindows()
    asked = read = 0
    for window in plan.over(start, end, after_messages=after_state):
        asked += 1
        inside = times[bisect.bisect_left(times, window.first): bisect.bisect_right(times, window.last)]
        answer = inside[::-1][:1000]
        moments = [float(t) for t in answer] if len(answer) >= 1000 else []
        verdict = plan.told(window.first, window.last, len(answer), moments, window.may_read_down)
        if verdict.whole:
            read += len(answer)
        elif verdict.newer_than is not None:
            read += sum(1 for t in answer if t > verdict.newer_than)
    assert read == len(times), f"read {read} of {len(times)} messages"
    return asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12)
    args = parser.parse_args()
    print("| account | least queries | queries ÷ least, mean | largest |")
    print("|---|---:|---:|---:|")
    for name, count, days, burst, after_state in SHAPES:
        start = NOW - (2 if after_state else 90) * DAY
        ratios = []
        for seed in range(args.seeds):
            rng = random.Random(seed)
            span = days * DAY if days else rng.randrange(2 * DAY, 60 * DAY)
            times = [rng.randrange(NOW - span, NOW - 120) for _ in range(count)]
            times += [NOW - DAY + rng.randrange(600) for _ in range(5000 if burst else 0)]
            times = sorted(t for t in times if t >= start)
            least = math.ceil(len(times) / 1000)
            ratios.append(queries(times, start, NOW - 1, after_state) / least)
        print(f"| {name} | {least} | {sum(ratios) / len(ratios):.3f} | {max(ratios):.3f} |", flush=True)


if __name__ == "__main__":
    main()
