"""Reading contacts export files: a file's bytes in, contact records out.

Kept apart from the download and the export job because it needs neither: it works on any byte stream, so
the benchmark and the tests feed it files directly. SendGrid has served export files gzip-compressed and
plain, as CSV and as JSON (lines or one array); both are detected from the bytes and parsed as they stream
in, so memory stays flat however many contacts the account has. Values are typed here too: the reserved
list and time fields, and custom fields by their definitions (numbers as numbers, dates as date-times).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import orjson

from ..windows import normalize_time

# A line of an export file, or an item of a JSON array, longer than this once decompressed is refused: no
# contact comes near it, and reading on would hold a decompression bomb in memory. (A CSV field is also
# bounded by the csv module, at csv.field_size_limit(): 131072 characters.)
MAX_LINE_SIZE = 16 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"

# Reserved fields whose values are not plain text, by the name the connector emits.
LIST_FIELDS = frozenset({"list_ids", "segment_ids", "alternate_emails"})
TIME_FIELDS = frozenset({"created_at", "updated_at"})
# How export files name the contact's id.
ID_COLUMNS = frozenset({"contact_id", "id"})
# What identifies a contact besides its id: SendGrid needs at least one of them to store a contact.
IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")


class MalformedExport(Exception):
    """An export file that does not read as contacts: downloading it again would give the same bytes."""


# --- values --------------------------------------------------------------------------------------

def _text(value: Any) -> Any:
    return value if value != "" else None


def _time(value: Any) -> Optional[str]:
    # Fast path for the form SendGrid and our records share; anything else goes through the full parser.
    if value.__class__ is str and len(value) == 20 and value[10] == "T" and value[19] == "Z":
        return value
    return normalize_time(value)


def _number(value: Any) -> Any:
    if value is None or value == "":
        return None
    if value.__class__ is not str:
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def _string_list(value: Any) -> List[Any]:
    if value is None or value == "":
        return []
    if value.__class__ is str:
        return value.split(",")
    return list(value)


_CONVERTERS: Dict[str, Callable[[Any], Any]] = {"Number": _number, "Date": _time, "Text": _text}


@dataclass(frozen=True)
class FieldTypes:
    """Custom field definitions: a column or key (its name, any case, or its id) -> (name, converter)."""

    by_key: Mapping[str, Tuple[str, Callable[[Any], Any]]]

    @classmethod
    def of(cls, custom_fields: Iterable[Mapping[str, Any]]) -> "FieldTypes":
        by_key = {}
        for field in custom_fields:
            name = field.get("name")
            if not name:
                continue
            entry = (str(name), _CONVERTERS.get(str(field.get("field_type")), _text))
            by_key[str(name).lower()] = entry
            if field.get("id"):
                by_key[str(field["id"]).lower()] = entry
        return cls(by_key)

    def lookup(self, key: str) -> Optional[Tuple[str, Callable[[Any], Any]]]:
        return self.by_key.get(key.lower())


# --- parsing ---------------------------------------------------------------------------------------

class CsvPlan:
    """What to do with each column of one file, decided once from its header row."""

    def __init__(self, header: List[str], fields: FieldTypes):
        self.text, self.lists, self.times, self.custom = [], [], [], []
        self.id_index: Optional[int] = None
        for index, column in enumerate(header):
            key = column.strip().lower()
            if key in ID_COLUMNS:
                self.id_index = index
            elif key in LIST_FIELDS:
                self.lists.append((index, key))
            elif key in TIME_FIELDS:
                self.times.append((index, key))
            elif fields.lookup(key):
                name, convert = fields.lookup(key)
                self.custom.append((index, name, convert))
            else:
                self.text.append((index, key))
        self.columns = {key for _, key in self.text + self.lists + self.times}
        if self.id_index is None and "email" not in self.columns:
            # An error page served with a 200 (a proxy's HTML) must not become records.
            raise ValueError(f"not a contacts export: its first line has no EMAIL or CONTACT_ID column ({len(header)} columns)")

    def record(self, row: List[str]) -> Dict[str, Any]:
        record = {key: (row[i] or None) for i, key in self.text}
        record["id"] = row[self.id_index] if self.id_index is not None else None
        for i, key in self.lists:
            value = row[i]
            record[key] = value.split(",") if value else []
        for i, key in self.times:
            record[key] = _time(row[i])
        record["custom_fields"] = {name: convert(row[i]) for i, name, convert in self.custom}
        return record


class JsonPlan:
    """The same for JSON objects, whose keys may vary: each key's handling is decided once and cached."""

    def __init__(self, fields: FieldTypes):
        self._fields = fields
        self._handlers: Dict[str, Tuple[str, Any]] = {}

    def _handler(self, key: str) -> Tuple[str, Any]:
        found = self._handlers.get(key)
        if found is None:
            lowered = key.lower()
            if lowered in ID_COLUMNS:
                found = ("id", None)
            elif lowered in LIST_FIELDS:
                found = ("list", lowered)
            elif lowered in TIME_FIELDS:
                found = ("time", lowered)
            elif lowered == "custom_fields":
                found = ("custom_object", None)
            elif self._fields.lookup(lowered):
                found = ("custom", self._fields.lookup(lowered))
            else:
                found = ("text", lowered)
            self._handlers[key] = found
        return found

    def record(self, item: Mapping[str, Any]) -> Dict[str, Any]:
        record: Dict[str, Any] = {}
        custom: Dict[str, Any] = {}
        for key, value in item.items():
            kind, how = self._handler(key)
            if kind == "text":
                record[how] = _text(value)
            elif kind == "id":
                record["id"] = value
            elif kind == "list":
                record[how] = _string_list(value)
            elif kind == "time":
                record[how] = _time(value)
            elif kind == "custom":
                custom[how[0]] = how[1](value)
            elif isinstance(value, Mapping):
                for custom_key, custom_value in value.items():
                    typed = self._fields.lookup(custom_key)
                    if typed:
                        custom[typed[0]] = typed[1](custom_value)
                    else:
                        custom[custom_key] = custom_value
        record["custom_fields"] = custom
        return record


def parse_export(raw: BinaryIO, fields: FieldTypes) -> Iterator[Dict[str, Any]]:
    """Contacts of one export file, decompressed and parsed as the bytes arrive.

    gzip or plain is told by the magic bytes; CSV, JSON lines or a JSON array by the first character. A file
    that cannot be contacts raises MalformedExport (saying where); one that ends mid-row raises EOFError.
    """
    buffered = io.BufferedReader(_RawReader(raw), 1 << 20)
    stream: Any = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == _GZIP_MAGIC else buffered
    first = stream.peek(512).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"{":
        yield from _json_lines(stream, JsonPlan(fields))
    elif first == b"[":
        plan = JsonPlan(fields)
        items = _json_array_items(io.TextIOWrapper(stream, encoding="utf-8-sig"))
        for number, item in enumerate(items, 1):
            yield _json_record(plan, item, f"item {number}")
    elif first:
        yield from _csv_rows(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""), fields)


def _bounded_lines(readline: Callable[[int], Any]) -> Iterator[Any]:
    """Lines (bytes or text) as `readline` gives them, none longer than MAX_LINE_SIZE: a longer line is refused
    as soon as that much of it was read."""
    number = 0
    while True:
        line = readline(MAX_LINE_SIZE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_SIZE:
            raise MalformedExport(f"line {number} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB once decompressed")
        yield line


def _json_lines(stream: Any, plan: JsonPlan) -> Iterator[Dict[str, Any]]:
    readline, number = stream.readline, 0
    while True:  # _bounded_lines, inlined: this loop runs once per contact
        line = readline(MAX_LINE_SIZE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_SIZE:
            raise MalformedExport(f"line {number} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB once decompressed")
        if not line.strip():
            continue
        try:
            item = orjson.loads(line.lstrip(b"\xef\xbb\xbf") if line[:1] == b"\xef" else line)
        except orjson.JSONDecodeError as error:
            if not line.endswith(b"\n"):  # the last line, cut short
                raise EOFError(f"the file ended in the middle of line {number}") from None
            raise MalformedExport(f"line {number} is not JSON ({error.msg})") from None
        yield _json_record(plan, item, f"line {number}")


def _json_record(plan: JsonPlan, item: Any, where: str) -> Dict[str, Any]:
    if not isinstance(item, dict):
        raise MalformedExport(f"{where} is a JSON {type(item).__name__}, not an object")
    try:
        return plan.record(item)
    except (TypeError, ValueError, AttributeError) as error:  # e.g. "list_ids": 5
        raise MalformedExport(f"{where} has a value of the wrong type ({error})") from None


def _csv_rows(text: io.TextIOBase, fields: FieldTypes) -> Iterator[Dict[str, Any]]:
    reader = csv.reader(_bounded_lines(text.readline))
    number = 0
    try:
        header = next(reader, None)
        if not header:
            return
        record = CsvPlan(header, fields).record
        width = len(header)
        for number, row in enumerate(reader, 1):
            if len(row) != width:
                if not row:
                    continue
                if next(reader, None) is None:  # the last row, cut short
                    raise EOFError(f"the file ended in the middle of row {number}")
                raise MalformedExport(f"row {number} has {len(row)} columns, the header has {width}")
            yield record(row)
    except csv.Error as error:
        raise MalformedExport(f"row {number + 1} is not CSV ({error})") from None


class _RawReader(io.RawIOBase):
    """A byte stream over anything with `read(n)` that keeps answering b"" at the end: urllib3 closes its
    response once drained, and gzip reads once more after that."""

    def __init__(self, source: Any):
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if getattr(self._source, "closed", False):
            return 0
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _json_array_items(text: io.TextIOBase, chunk_size: int = 1 << 20) -> Iterator[Any]:
    """Items of a top-level JSON array read chunk by chunk: only one chunk and one item are held at once, and an
    item is refused once more than MAX_LINE_SIZE of it was read."""
    decoder = json.JSONDecoder()
    buffer, position, at_end = "", 0, False
    started = False
    number = 0
    while True:
        while position < len(buffer) and buffer[position] in " \t\r\n,[]\ufeff":
            if buffer[position] == "[":
                started = True
            position += 1
        if position < len(buffer):
            try:
                item, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError as error:
                if at_end:
                    if buffer.rstrip().endswith("]"):
                        raise MalformedExport(f"item {number + 1} is not JSON ({error.msg})") from None
                    raise EOFError(f"the file ended in the middle of item {number + 1}") from None
                if len(buffer) - position > MAX_LINE_SIZE:
                    raise MalformedExport(f"item {number + 1} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB "
                                          f"once decompressed, or is not JSON") from None
            else:
                if started:
                    number += 1
                    if end - position > MAX_LINE_SIZE:
                        raise MalformedExport(f"item {number} is longer than {MAX_LINE_SIZE // (1024 * 1024)} MiB")
                    yield item
                position = end
                continue
        if at_end:
            return
        chunk = text.read(chunk_size)
        at_end = not chunk
        buffer, position = buffer[position:] + chunk, 0

