"""Reading a long JSON array as it arrives, a block of items at a time, so that memory stays flat whatever
the answer's length. SendGrid answers some requests in one piece (every suppression group member at once).

Each block is parsed by `errors.parse_json`, the same parser as a whole answer, so a streamed answer reads
exactly as it would have whole: the same characters replaced, the same depth limit, the same numbers.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, List

import orjson

from .errors import parse_json

# Bytes read from the connection at a time: a block of about a thousand suppression group members.
CHUNK_BYTES = 1 << 17
# Candidate ends of a block tried in one chunk before reading more (a `},` inside a string is not one).
MAX_CUTS_TRIED = 8
# A block is cut only while it is shorter than this; a longer item is read with everything after it, at the end
# of the answer (so an answer of such items takes the memory it took before answers were streamed).
MAX_BLOCK_BYTES = 16 * CHUNK_BYTES
TAIL_SEARCHED_AGAIN = 64
_WHITESPACE = b" \t\r\n"


class BrokenAnswer(Exception):
    """The answer is empty, `null`, cut short or not JSON: asking again may bring a whole one."""


class NotAnArray(Exception):
    """The answer is JSON, complete, but not an array: `body` is what it is."""

    def __init__(self, body: Any):
        super().__init__(type(body).__name__)
        self.body = body


class ArrayBlocks:
    """The items of the top-level JSON array in `chunks` (bytes as they arrive), in blocks, in order.

    A block ends after a `}` that is followed by a `,`: an end at which `[` + the block + `]` parses, which
    only a real end between two items of the array can do (a `}` inside a string leaves the string open, one
    inside an item leaves a bracket open). The count of characters replaced (see parse_json) is `replaced`.
    """

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self.replaced = 0

    def __iter__(self) -> Iterator[List[Any]]:
        pending = self._start()
        searched = 0  # block ends before this were tried already
        for chunk in self._chunks:
            pending += chunk
            if len(pending) > MAX_BLOCK_BYTES:
                continue  # an item longer than a block (no SendGrid answer has one): read to the end
            cut = self._block_end(pending, searched)
            # A `}` at the very end may still be followed by its `,`: the tail is searched again.
            searched = max(0, len(pending) - TAIL_SEARCHED_AGAIN)
            if cut is None:
                continue
            items, after = cut
            yield items
            del pending[:after]
            searched = 0
        yield self._last(pending)

    def _start(self) -> bytearray:
        """What follows the opening `[`; raises NotAnArray or BrokenAnswer for a body that is no array."""
        head = bytearray()
        for chunk in self._chunks:
            head += chunk
            stripped = head.lstrip(_WHITESPACE)
            if stripped:
                if stripped[:1] == b"[":
                    return bytearray(stripped[1:])
                break
        for chunk in self._chunks:  # not an array: small in any answer we ask for; read as a whole answer
            head += chunk
        try:
            body, replaced = parse_json(bytes(head)) if head.strip(_WHITESPACE) else (None, 0)
        except orjson.JSONDecodeError:
            raise BrokenAnswer("not JSON, or cut short") from None
        if body is None:
            raise BrokenAnswer("empty, or null")
        self.replaced += replaced
        raise NotAnArray(body)

    def _block_end(self, pending: bytearray, searched: int) -> Any:
        """(the items before the last end of a block in `pending`, where the next block starts), or None.
        Only ends from `searched` on are looked for: earlier ones were tried already."""
        end = len(pending)
        for _ in range(MAX_CUTS_TRIED):
            brace = pending.rfind(b"}", searched, end)
            if brace < 0:
                return None
            after = brace + 1
            while after < len(pending) and pending[after] in _WHITESPACE:
                after += 1
            if after < len(pending) and pending[after] == ord(","):
                try:
                    items, replaced = parse_json(b"[" + pending[: brace + 1] + b"]")
                except orjson.JSONDecodeError:
                    pass
                else:
                    self.replaced += replaced
                    return items, after + 1
            end = brace
        return None

    def _last(self, pending: bytearray) -> List[Any]:
        """The items after the last block: what is left must end the array, and nothing may follow it."""
        try:
            items, replaced = parse_json(b"[" + pending)
        except orjson.JSONDecodeError:
            raise BrokenAnswer("cut short, or not JSON") from None
        self.replaced += replaced
        return items
