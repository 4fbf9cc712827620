"""How the windows of email activity (`GET /v3/messages`) are sized under the API's 1000-message cap.

A query answers at most 1000 messages with no cursor and costs 10 s (6 a minute), so the number of queries is
the sync's time. A window that comes back full may have left messages out: it is asked again in parts, until
every window returns fewer than 1000, so none is lost to the cap. A full answer is a wasted query, so each window
is sized to hold about MESSAGES_PER_WINDOW messages at the rate of the last windows read whole (or, after a full
answer, at the rate its messages show). A window that came back full is next asked at most half at a time, and
exactly half while the windows before it were empty (a binary search for where the messages begin, e.g. in the
90 days read back on a first sync); a run of empty windows elsewhere grows the next one.

That search costs about log2(90 days / one window's length) queries, 10 at 10,000 messages a day, and no hint in
the answers shortens it: SendGrid answers the newest messages first, so a full answer's earliest time tells how
dense messages are near the window's end, not where they begin. Two facts from outside the answers do: the
add-on keeps 30 days of history, so on a first sync one window first tries whether messages begin there (an
account that has sent for longer needs no search at all); and a sync that goes on from a state read messages up
to its start, so after a full answer its next window starts there, sized at the rate the answer shows. A wrong
guess costs one query; none changes what is read.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Deque, Iterator, Optional, Sequence, Tuple

# The API's own maximum for `limit`: a response this long may have left messages out.
MESSAGES_PER_QUERY = 1000
# What a window is sized to hold at the rate seen: below the cap by about 2.5 times the spread of a count of
# 920 (30) and of the rate it was sized by, so a few windows in a hundred come back full. On a 100k-message
# account, 900 and 940 both asked more queries (bench/rate_limits.py).
MESSAGES_PER_WINDOW = 920
# The rate that sizes windows is read over this many of the last windows read whole (one is too noisy).
RATE_WINDOWS = 5


class MessageWindows:
    """The windows of one read of /v3/messages, in epoch seconds, told each window's answer (`told`): how many
    messages came and, for a full answer, their times. It says where each next window ends."""

    def __init__(self) -> None:
        self.messages_read = 0
        # (messages, seconds) of the last windows that came back whole, or of the last full answer's messages:
        # what sizes the next window.
        self._recent: Deque[Tuple[int, int]] = deque(maxlen=RATE_WINDOWS)
        # The answer to the window last yielded, as told: (messages, came back full); None until told.
        self._answer: Optional[Tuple[int, bool]] = None

    def told(self, start: int, end: int, messages: int, moments: Sequence[float]) -> bool:
        """The answer to the window [start, end]: `messages` messages, with `moments` their last event times
        (those that are times; only needed when the answer is full). True if the answer is full and the window
        must be asked again in parts; a full answer within one second cannot be split and counts as read."""
        full = messages >= MESSAGES_PER_QUERY and end > start
        if messages < MESSAGES_PER_QUERY:
            if messages:
                self._recent.append((messages, end - start + 1))
        elif full and moments:
            # How close together a full answer's messages are sizes the parts (if SendGrid sent a sample rather
            # than the newest or the oldest, this rate is too low, and halving makes progress).
            self._recent.clear()
            self._recent.append((len(moments), int(max(moments) - min(moments)) + 1))
        self._answer = (messages, full)
        return full

    def came_back_full(self) -> bool:
        """Whether the answer to the window last yielded was full (its messages were not emitted)."""
        return self._answer is not None and self._answer[1]

    def over(self, start: int, end: int, after_messages: bool = False,
             likely_start: Optional[int] = None) -> Iterator[Tuple[int, int]]:
        """Windows (first, last second) covering [start, end] in order; one told it came back full is followed
        by windows over parts of it. A window never told its answer counts as empty.

        `after_messages`: messages were read up to `start` (a sync that goes on from a state), so they most likely
        go on from there: a full answer is followed by a window from `start` sized at the rate it shows, not by a
        search. `likely_start`: where messages most likely begin (where SendGrid's history does); the first full
        answer is followed by one window from `start` that ends a window's length after it, before any search."""
        position = start
        # [position, dense_end] holds at least `dense` messages: a window over all of it would come back full.
        dense_end, dense = position - 1, 0
        empty_seconds = 0  # how long the run of empty windows just before `position` is
        # No window before `position` had messages: where they begin is not known yet.
        searching = not after_messages
        likely = likely_start if searching else None  # tried once, after the first full answer
        while position <= end:
            last = None
            if likely is not None and dense >= MESSAGES_PER_QUERY:
                last = self._end_of_window_from(max(position, likely), dense_end)
                likely = None
            if last is None:
                last = self._end_of_next_window(position, end, dense_end if dense >= MESSAGES_PER_QUERY else None,
                                                empty_seconds, searching)
            self._answer = None
            yield position, last
            read, full = self._answer or (0, False)
            if full:
                dense_end, dense, empty_seconds = last, MESSAGES_PER_QUERY, 0
                continue
            self.messages_read += read
            if searching and read and len(self._recent) > 1:
                # The first window with messages after empty ones also spans time before the first of them:
                # its rate is too low to size the next window by (the full answer's before it is not).
                self._recent.pop()
            empty_seconds = empty_seconds + (last - position + 1) if read == 0 else 0
            searching = read == 0
            dense -= read
            position = last + 1

    def _end_of_next_window(self, start: int, end: int, dense_end: Optional[int], empty_seconds: int,
                            searching: bool) -> int:
        """Where the next window from `start` ends.

        Within a range known to hold a full answer (ending at `dense_end`): at most half of it, so that asking
        again always makes progress, and exactly half while the window before was empty (a binary search for
        where the messages begin). Elsewhere: MESSAGES_PER_WINDOW at the recent rate (the whole rest while none
        is known), and at least twice a run of empty windows just read."""
        seconds = end - start + 1
        if dense_end is not None:
            half = max(1, (dense_end - start + 2) // 2)
            if searching:
                return start + half - 1
            seconds = min(seconds, half)
        rate = self.rate()
        if rate > 0:
            seconds = min(seconds, max(1, int(MESSAGES_PER_WINDOW / rate), 2 * empty_seconds))
        return start + seconds - 1

    def _end_of_window_from(self, moment: int, dense_end: int) -> Optional[int]:
        """The end of a window holding about MESSAGES_PER_WINDOW messages from `moment` at the recent rate, if it
        lies before `dense_end` (so that a full answer still shrinks the range that came back full)."""
        rate = self.rate()
        last = moment + max(1, int(MESSAGES_PER_WINDOW / rate)) - 1 if rate > 0 else dense_end
        return last if last < dense_end else None

    def rate(self) -> float:
        """Messages a second over the recent windows (0: none known)."""
        messages = sum(count for count, _ in self._recent)
        seconds = sum(span for _, span in self._recent)
        return messages / seconds if seconds else 0.0

    def queries_left(self, start: int, end: int) -> Optional[int]:
        """About how many queries [start, end] takes at the recent rate; None while no rate is known."""
        rate = self.rate()
        return math.ceil((end - start + 1) * rate / MESSAGES_PER_WINDOW) if rate else None
