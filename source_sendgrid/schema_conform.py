"""Make every emitted record match its stream's JSON schema, whatever the API sent.

SendGrid is not always true to its own documentation (numbers as strings, epochs where a date is
documented, objects where a string is). Each field the schema declares is kept when it has a declared type,
converted when the conversion is lossless and obvious (an integer string to an integer, a number to a
string, an epoch or any SendGrid time format to RFC 3339 for `date-time` fields), and otherwise set to null,
so a destination never receives a value its column type rejects. Fields the schema does not declare pass
through unchanged (the schemas allow additional properties). The schema is compiled once per stream; a
record that fits already costs one type lookup per declared field and is not copied.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, List, Mapping, Tuple

from .windows import normalize_time

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_INTEGER = re.compile(r"^\s*-?\d{1,30}\s*$")
_MISSING = object()
Fitter = Callable[[Any], Any]


def _types(spec: Mapping[str, Any]) -> Tuple[str, ...]:
    declared = spec.get("type")
    if isinstance(declared, str):
        return (declared,)
    return tuple(t for t in declared if isinstance(t, str)) if isinstance(declared, list) else ()


def _has_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return True  # a type this module does not know: keep the value


def _convert(value: Any, kind: str) -> Any:
    """`value` as `kind` if the conversion is lossless and obvious, else _MISSING."""
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if kind == "string" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "integer":
        if isinstance(value, str) and _INTEGER.match(value):
            return int(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    if kind == "number" and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return _MISSING
        return number if math.isfinite(number) else _MISSING
    if kind == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return _MISSING


# Python types that already fit a JSON schema type as they are.
_FITTING_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
                  "object": (dict,), "array": (list,)}


def _fitting_types(spec: Mapping[str, Any]) -> frozenset:
    """The exact Python types a value may have to be kept without a closer look (bool is not an int here)."""
    nested = isinstance(spec.get("properties"), Mapping) or isinstance(spec.get("items"), Mapping)
    fitting = set()
    for kind in _types(spec):
        if kind == "string" and spec.get("format") == "date-time":
            continue  # a string must be checked for the format
        if kind in ("object", "array") and nested:
            continue  # its members must be fitted too
        fitting.update(_FITTING_TYPES.get(kind, ()))
    return frozenset(fitting)


def compile_fitter(spec: Mapping[str, Any]) -> Fitter:
    """A function that returns its argument made to fit `spec` (or None where it cannot); a value that
    fits already is returned as it is (the same object)."""
    kinds = _types(spec)
    is_time = spec.get("format") == "date-time" and "string" in kinds
    properties = spec.get("properties") if isinstance(spec.get("properties"), Mapping) else None
    nested = compile_record_fitter(spec) if properties else None
    items = spec.get("items") if isinstance(spec.get("items"), Mapping) else None
    item_fitter = compile_fitter(items) if items else None

    def fit(value: Any) -> Any:
        if value is None or not kinds:
            return value
        if nested is not None and type(value) is dict and "object" in kinds:
            return nested(value)
        if is_time:
            if type(value) is str and _RFC3339.match(value):
                return value
            text = normalize_time(value)  # the value itself when it is not a time
            return None if text is value else text
        for kind in kinds:
            if _has_type(value, kind):
                if kind == "object" and nested is not None:
                    return nested(value)
                if kind == "array" and item_fitter is not None:
                    return _fit_items(value, item_fitter)
                return value
        for kind in kinds:
            converted = _convert(value, kind)
            if converted is not _MISSING:
                return converted
        return None

    return fit


def _fit_items(items: List[Any], fit: Fitter) -> List[Any]:
    """The list itself when every item fits already, else a new list of fitted items."""
    for index, item in enumerate(items):
        fitted = fit(item)
        if fitted is not item:
            return items[:index] + [fitted] + [fit(rest) for rest in items[index + 1:]]
    return items


def compile_record_fitter(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """A function that returns a record made to fit `schema`: the record itself when every declared field
    fits already (the common case, decided by one type lookup per field), else a copy with fitted fields."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    fields: List[Tuple[str, frozenset, Fitter]] = []
    for name, spec in properties.items():
        if not isinstance(spec, Mapping) or not _types(spec):
            continue  # no declared type: any value is kept
        fields.append((name, _fitting_types(spec), compile_fitter(spec)))

    def fit_record(record: Mapping[str, Any]) -> Mapping[str, Any]:
        out = None
        for name, fitting, fit in fields:
            value = record.get(name)
            if value is None or type(value) in fitting:
                continue
            fitted = fit(value)
            if fitted is not value:
                if out is None:
                    out = dict(record)
                out[name] = fitted
        return record if out is None else out

    return fit_record

