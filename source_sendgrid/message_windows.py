"""How the windows of email activity (`GET /v3/messages`) are sized under the API's 1000-message cap.

A query answers at most 1000 messages with no cursor and costs 10 s (6 a minute), so the number of queries is
the sync's time. SendGrid answers the newest messages of a window first and drops the rest: a full answer in
that order holds every message newer than its oldest second, so those are kept and the window is read on below
that second ("read down"). No query is wasted, and a first sync, whose first window is all 90 days, reads its
messages from the newest down without searching for where they begin. The state moves only when a window was
read whole, so at most READ_DOWN_QUERIES full answers come between two windows read whole; past that, the rest
is read in windows that are asked at most half at a time, exactly half while the windows before were empty (a
binary search for where the messages begin).

Windows are sized to hold about READ_DOWN_MESSAGES at the rate of the last windows read whole (or, after a full
answer, at the rate its messages show): a few queries each, the last one not full. A full answer that is not
newest first (or whose messages share one second) cannot be trusted for any part: it is asked again in parts,
and windows are sized from then on to stay under the cap (MESSAGES_PER_WINDOW). A wrong size costs a query;
none changes what is read.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Deque, Iterator, List, NamedTuple, Optional, Sequence, Tuple

# The API's own maximum for `limit`: a response this long may have left messages out.
MESSAGES_PER_QUERY = 1000
# What a window is sized to hold at the rate seen: below the cap by about 2.5 times the spread of a count of
# 920 (30) and of the rate it was sized by, so a few windows in a hundred come back full. On a 100k-message
# account, 900 and 940 both asked more queries (bench/rate_limits.py).
MESSAGES_PER_WINDOW = 920
# What a window is sized to hold while full answers can be read down: about five queries, so that the last,
# partial answer is a small share of them, and the state moves every minute or so at 6 queries a minute.
READ_DOWN_MESSAGES = 4_900
# The rate that sizes windows is read over this many of the last windows read whole (one is too noisy).
RATE_WINDOWS = 5
# Full answers between two windows read whole, at most, while reading down: ten minutes at 6 queries a minute,
# the most a sync killed meanwhile repeats.
READ_DOWN_QUERIES = 60


class Window(NamedTuple):
    """A window to ask, [first, last] in epoch seconds. `may_read_down`: a full answer to it may be read down.
    `read_to`: how far every message is read once this window comes back whole (past `last` when it ends a
    read down), so how far the state may move."""

    first: int
    last: int
    may_read_down: bool
    read_to: int


class Verdict(NamedTuple):
    """What to emit of an answer: all of it (`whole`), the messages after second `newer_than` (a read down), or
    none (neither: the window is asked again in parts)."""

    whole: bool
    newer_than: Optional[int] = None


class MessageWindows:
    """The windows of one read of /v3/messages, in epoch seconds, told each window's answer (`told`): how many
    messages came and, for a full answer, their times in the order sent. It says where each next window ends
    and what of an answer to emit."""

    def __init__(self) -> None:
        self.messages_read = 0
        # (messages, seconds) of the last windows that came back whole, or of the last full answer's messages:
        # what sizes the next window.
        self._recent: Deque[Tuple[int, int]] = deque(maxlen=RATE_WINDOWS)
        # Messages a window is sized for: fewer once an answer could not be read down.
        self._per_window = READ_DOWN_MESSAGES
        # The answer to the window last yielded, as told: (messages emitted, its verdict); None until told.
        self._answer: Optional[Tuple[int, Verdict]] = None

    def told(self, start: int, end: int, messages: int, moments: Sequence[Optional[float]], may_read_down: bool) -> Verdict:
        """The answer to the window [start, end] that `over` yielded with `may_read_down`: `messages` messages and,
        when that is the cap, `moments` their last event times in the order sent (None where not a time)."""
        if messages < MESSAGES_PER_QUERY or end == start:
            # Whole; a full answer within one second cannot be split and counts as read.
            if 0 < messages < MESSAGES_PER_QUERY:
                self._recent.append((messages, end - start + 1))
            verdict = Verdict(whole=True)
            self._answer = (messages, verdict)
            return verdict
        times: List[float] = [moment for moment in moments if moment is not None]
        if times:
            # How close together a full answer's messages are sizes the windows after it.
            self._recent.clear()
            self._recent.append((len(times), int(max(times) - min(times)) + 1))
        newest_first = bool(times) and len(times) == len(moments) and all(a >= b for a, b in zip(times, times[1:]))
        oldest = math.floor(times[-1]) if newest_first else None
        if oldest is not None and start <= oldest < math.floor(times[0]) <= end:
            verdict = Verdict(whole=False, newer_than=oldest if may_read_down else None)
            kept = sum(1 for moment in times if math.floor(moment) > oldest) if may_read_down else 0
        else:
            if not newest_first:
                self._per_window = MESSAGES_PER_WINDOW  # no answer can be read down: stay under the cap
            verdict, kept = Verdict(whole=False), 0
        self._answer = (kept, verdict)
        return verdict

    def came_back_whole(self) -> bool:
        """Whether the window last yielded was read whole (only then may the state move to its end)."""
        return self._answer is None or self._answer[1].whole

    def over(self, start: int, end: int, after_messages: bool = False) -> Iterator[Window]:
        """Windows covering [start, end], oldest first; a window told it came back full is followed by windows
        over the part of it not read yet. A window never told its answer counts as empty.

        `after_messages`: messages were read up to `start` (a sync that goes on from a state), so they most likely
        go on from there: a full answer that is not read down is followed by a window from `start` sized at the
        rate it shows, not by a search."""
        position = start
        # [position, dense_end] holds at least `dense` messages: a window over all of it would come back full.
        dense_end, dense = position - 1, 0
        empty_seconds = 0  # how long the run of empty windows just before `position` is
        # No window before `position` had messages: where they begin is not known yet.
        searching = not after_messages
        # Ranges above `position` whose messages were all read by read downs, the lowest last.
        read_above: List[Tuple[int, int]] = []
        reading_down = False
        unsaved = 0  # full answers since a window was last read whole
        while position <= end:
            ceiling = read_above[-1][0] - 1 if read_above else end
            if reading_down:
                last = ceiling  # the rest of the window below what the read down emitted
            else:
                last = self._end_of_next_window(position, ceiling, dense_end if dense >= MESSAGES_PER_QUERY else None,
                                                empty_seconds, searching)
            self._answer = None
            yield Window(position, last, unsaved < READ_DOWN_QUERIES, _read_to(last, read_above))
            read, verdict = self._answer or (0, Verdict(whole=True))
            self.messages_read += read
            unsaved = 0 if verdict.whole else unsaved + 1
            reading_down = verdict.newer_than is not None
            if reading_down:
                if read_above and read_above[-1][0] == last + 1:
                    read_above[-1] = (verdict.newer_than + 1, read_above[-1][1])
                else:
                    read_above.append((verdict.newer_than + 1, last))
                continue
            if not verdict.whole:
                dense_end, dense, empty_seconds = last, MESSAGES_PER_QUERY, 0
                continue
            if searching and read and len(self._recent) > 1:
                # The first window with messages after empty ones also spans time before the first of them:
                # its rate is too low to size the next window by (the full answer's before it is not).
                self._recent.pop()
            empty_seconds = empty_seconds + (last - position + 1) if read == 0 else 0
            searching = read == 0
            dense -= read
            position = _read_to(last, read_above) + 1
            while read_above and read_above[-1][0] <= position:
                read_above.pop()

    def _end_of_next_window(self, start: int, end: int, dense_end: Optional[int], empty_seconds: int,
                            searching: bool) -> int:
        """Where the next window from `start` ends.

        Within a range known to hold a full answer (ending at `dense_end`): at most half of it, so that asking
        again always makes progress, and exactly half while the window before was empty (a binary search for
        where the messages begin). Elsewhere: the messages a window is sized for at the recent rate (the whole rest
        while none is known), and at least twice a run of empty windows just read."""
        seconds = end - start + 1
        if dense_end is not None:
            half = max(1, (dense_end - start + 2) // 2)
            if searching:
                return start + half - 1
            seconds = min(seconds, half)
        rate = self.rate()
        if rate > 0:
            seconds = min(seconds, max(1, int(self._per_window / rate), 2 * empty_seconds))
        return start + seconds - 1

    def rate(self) -> float:
        """Messages a second over the recent windows (0: none known)."""
        messages = sum(count for count, _ in self._recent)
        seconds = sum(span for _, span in self._recent)
        return messages / seconds if seconds else 0.0

    def queries_left(self, seconds: int) -> Optional[int]:
        """About how many queries `seconds` of messages take at the recent rate; None while no rate is known."""
        rate = self.rate()
        return math.ceil(seconds * rate / MESSAGES_PER_QUERY) if rate else None


def _read_to(last: int, read_above: Sequence[Tuple[int, int]]) -> int:
    """How far every message is read once the window ending at `last` is: through the read-down ranges that
    follow it without a gap."""
    for first, through in reversed(read_above):
        if first != last + 1:
            break
        last = through
    return last
