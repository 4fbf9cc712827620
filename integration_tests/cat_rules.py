"""The rules Airbyte's connector acceptance test suite (CAT) applies to incremental reads, on protocol messages
as JSON objects, for the in-process checks (test_acceptance_checks.py) and the image's (image_check.py).

- Sequential slices: CAT reads once without a state, then again from a sample of the checkpoints that read
  emitted. A read from a checkpoint must differ from the first read and emit at least as many records as
  followed that checkpoint in it; we also require that it emits nothing older than the checkpoint, less the
  re-read the stream declares (CAT's older versions compared cursors so, allowing `threshold_days`).
- Future state: a read from a state far in the future emits no record and still emits a state, whose
  cursor has the future state's type and character classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

# CAT reads from 4 or 5 checkpoints of a stream; 3 cover the start, the middle and the end of a read.
MAX_CHECKPOINTS_PER_STREAM = 3


@dataclass
class Checkpoint:
    state: Dict[str, Any]
    records_after: int  # records the read emitted after this checkpoint


def records_and_checkpoints(messages: Iterable[Mapping[str, Any]], stream: str) -> Tuple[List[Dict[str, Any]], List[Checkpoint]]:
    """The stream's records and its distinct checkpoints, in order (a state repeated is one checkpoint)."""
    records: List[Dict[str, Any]] = []
    seen: List[Tuple[Dict[str, Any], int]] = []
    for message in messages:
        if message.get("type") == "RECORD" and message["record"]["stream"] == stream:
            records.append(message["record"]["data"])
        elif message.get("type") == "STATE" and message["state"]["stream"]["stream_descriptor"]["name"] == stream:
            state = dict(message["state"]["stream"].get("stream_state") or {})
            if not seen or seen[-1][0] != state:
                seen.append((state, len(records)))
    return records, [Checkpoint(state, len(records) - before) for state, before in seen]


def sampled(checkpoints: List[Checkpoint]) -> List[Checkpoint]:
    """CAT's sample: neither the first checkpoint (a source may checkpoint its empty start) nor the last (the
    read's end, after which nothing need come), spread over the read; the last alone when there is no other."""
    middle = checkpoints[1:-1]
    if not middle:
        return checkpoints[-1:]
    count = min(MAX_CHECKPOINTS_PER_STREAM, len(middle))
    if count == 1:
        return middle[:1]
    return [middle[round(i * (len(middle) - 1) / (count - 1))] for i in range(count)]


def state_input(stream: str, state: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [{"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": dict(state)}}]


def moment(value: Any) -> Optional[datetime]:
    """A cursor value (RFC 3339 date-time, plain date or epoch seconds) as a UTC moment; None if it is none."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = str(value)
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def value_at(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def as_json(records: List[Dict[str, Any]]) -> List[str]:
    return sorted(json.dumps(record, sort_keys=True) for record in records)


def resumed_read_problems(stream: str, first: List[Dict[str, Any]], checkpoint: Checkpoint, resumed: List[Dict[str, Any]],
                          cursor_path: Sequence[str], reread: timedelta) -> List[str]:
    """What is wrong with `resumed`, the stream's records read from `checkpoint` of the read that emitted `first`."""
    problems = []
    if as_json(resumed) == as_json(first):
        problems.append(f"{stream}: a read from {checkpoint.state} emitted the same records as a read without state")
    if len(resumed) < checkpoint.records_after:
        problems.append(f"{stream}: a read from {checkpoint.state} emitted {len(resumed)} records, "
                        f"{checkpoint.records_after} followed it in the first read")
    floor = moment(checkpoint.state.get(cursor_path[-1]))
    if floor is None:
        problems.append(f"{stream}: the checkpoint {checkpoint.state} has no {cursor_path[-1]}")
        return problems
    floor -= reread
    older = [value_at(r, cursor_path) for r in resumed if (moment(value_at(r, cursor_path)) or floor) < floor]
    if older:
        problems.append(f"{stream}: a read from {checkpoint.state} emitted records older than it: {older[:3]}")
    return problems


def character_classes(value: Any) -> str:
    """'2099-12-31T00:00:00Z' -> '9999-99-99a99:99:99a': how CAT compares a state's cursor format with another's."""
    return "".join("9" if c.isdigit() else "a" if c.isalpha() else c for c in str(value))


def future_state_problems(stream: str, given: Mapping[str, Any], emitted_records: int,
                          emitted_states: List[Mapping[str, Any]], cursor: str) -> List[str]:
    """What is wrong with a read of `stream` from the future state `given`."""
    problems = []
    if emitted_records:
        problems.append(f"{stream} emitted {emitted_records} records from a state in the future")
    if not emitted_states:
        return problems + [f"{stream}: no state message from a read from the future state"]
    emitted, future = emitted_states[-1].get(cursor), given.get(cursor)
    if type(emitted) is not type(future) or character_classes(emitted) != character_classes(future):
        problems.append(f"{stream}: the state {emitted_states[-1]} does not have the format of the future state {dict(given)}")
    elif (moment(emitted) or datetime.min.replace(tzinfo=timezone.utc)) < (moment(future) or datetime.min.replace(tzinfo=timezone.utc)):
        problems.append(f"{stream}: the state went back from {future} to {emitted}")
    return problems
