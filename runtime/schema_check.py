"""A small JSON Schema checker: the subset of draft 2020-12 the manifest schema uses, no dependency.

The runtime's base install is numpy + pillow, so it cannot lean on the ``jsonschema`` package to
validate ``manifest.json``. This module checks a decoded JSON value against a schema written with
the keywords in :data:`KEYWORDS` and reports the first problem as one line naming the field
(``input.shape[2]: expected a positive integer, got -3``). The tests keep it in agreement with
``jsonschema`` on the published schema. Two deliberate, stricter differences: ``integer`` means an
integral JSON number written without a fraction (``3``, not ``3.0``), and a value checked against a
range must be finite (Python's ``json`` reads ``NaN`` and ``1e400``, which are not JSON numbers).
"""

from __future__ import annotations

import math
import re
from typing import Any

KEYWORDS = frozenset({
    "$schema", "$id", "$ref", "$defs", "$comment", "title", "description",
    "type", "enum", "minimum", "maximum", "exclusiveMinimum", "minLength", "pattern",
    "items", "minItems", "maxItems", "properties", "required", "additionalProperties", "propertyNames",
    "allOf", "if", "then",
})
_TYPE_NAMES = {
    "null": "null", "boolean": "true or false", "integer": "an integer", "number": "a number",
    "string": "a string", "array": "a list", "object": "an object",
}
_SHOW_LIMIT = 40


class SchemaViolation(Exception):
    """The first place where a value breaks its schema: ``field`` (e.g. ``input.shape[2]``) and why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def check(value: Any, schema: dict[str, Any]) -> None:
    """Raise :class:`SchemaViolation` at the first part of ``value`` that ``schema`` does not accept."""
    _check(value, schema, "", schema)


def accepts(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> bool:
    try:
        _check(value, schema, "", root or schema)
    except SchemaViolation:
        return False
    return True


def _check(value: Any, schema: dict[str, Any], path: str, root: dict[str, Any]) -> None:
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), path, root)
    if "type" in schema and not _has_type(value, schema["type"]):
        raise _expected(schema, value, path)
    if "enum" in schema and not any(_same(value, choice) for choice in schema["enum"]):
        choices = ", ".join(_show(choice) if not isinstance(choice, str) else choice for choice in schema["enum"])
        raise SchemaViolation(path, f"{path or 'value'} {_show(value)} is not one of {choices}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _in_range(value, schema):
        raise _expected(schema, value, path)
    if isinstance(value, str) and not _string_ok(value, schema):
        raise _expected(schema, value, path)
    if isinstance(value, (list, tuple)):  # a tuple: Manifest.to_dict() passed straight back to from_dict
        _check_list(value, schema, path, root)
    if isinstance(value, dict):
        _check_object(value, schema, path, root)
    for part in schema.get("allOf", ()):
        _check(value, part, path, root)
    if "if" in schema and accepts(value, schema["if"], root) and "then" in schema:
        _check(value, schema["then"], path, root)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix):] not in root.get("$defs", {}):
        raise ValueError(f"schema: unsupported $ref {ref!r}")  # a bug in the schema, not in the value
    return root["$defs"][ref[len(prefix):]]


def _has_type(value: Any, types: str | list[str]) -> bool:
    return any(_is_type(value, name) for name in ([types] if isinstance(types, str) else types))


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return name == "boolean"
    checks = {
        "null": value is None, "integer": isinstance(value, int), "number": isinstance(value, (int, float)),
        "string": isinstance(value, str), "array": isinstance(value, (list, tuple)), "object": isinstance(value, dict),
    }
    return checks.get(name, False)


def _same(value: Any, choice: Any) -> bool:
    return isinstance(value, bool) == isinstance(choice, bool) and value == choice


def _in_range(number: float, schema: dict[str, Any]) -> bool:
    bounds = [schema[key] for key in ("minimum", "maximum", "exclusiveMinimum") if key in schema]
    if not bounds:
        return True
    if isinstance(number, float) and not math.isfinite(number):
        return False
    return (
        number >= schema.get("minimum", number)
        and number <= schema.get("maximum", number)
        and ("exclusiveMinimum" not in schema or number > schema["exclusiveMinimum"])
    )


def _string_ok(text: str, schema: dict[str, Any]) -> bool:
    if len(text) < schema.get("minLength", 0):
        return False
    return "pattern" not in schema or re.search(schema["pattern"], text) is not None


def _check_list(items: list | tuple, schema: dict[str, Any], path: str, root: dict[str, Any]) -> None:
    if not schema.get("minItems", 0) <= len(items) <= schema.get("maxItems", len(items)):
        raise _expected(schema, items, path)
    if "items" in schema:
        for index, item in enumerate(items):
            _check(item, schema["items"], f"{path}[{index}]", root)


def _check_object(data: dict, schema: dict[str, Any], path: str, root: dict[str, Any]) -> None:
    for name in schema.get("required", ()):
        if name not in data:
            raise SchemaViolation(_join(path, name), f"{_join(path, name)}: missing")
    properties = schema.get("properties", {})
    for name, part in properties.items():
        if name in data:
            _check(data[name], part, _join(path, name), root)
    names = schema.get("propertyNames")
    extra = schema.get("additionalProperties", True)
    for name, value in data.items():
        if names is not None and not accepts(name, names, root):
            raise SchemaViolation(path, f"{path}: key {_show(name)} is not {names.get('description', 'allowed')}")
        if name in properties or extra is True:
            continue
        if extra is False:
            raise SchemaViolation(_join(path, name), f"{_join(path, name)}: unknown field")
        _check(value, extra, _join(path, name), root)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _expected(schema: dict[str, Any], value: Any, path: str) -> SchemaViolation:
    return SchemaViolation(path, f"{path or 'value'}: expected {_describe(schema)}, got {_show(value)}")


def _describe(schema: dict[str, Any]) -> str:
    if "description" in schema:
        return schema["description"]
    types = schema.get("type", [])
    text = " or ".join(_TYPE_NAMES[name] for name in ([types] if isinstance(types, str) else types)) or "a value"
    bounds = [f"{op} {schema[key]}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
              if key in schema]
    return f"{text} {' and '.join(bounds)}" if bounds else text


def _show(value: Any) -> str:
    """A short JSON-ish rendering of a value for an error message."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (list, tuple, dict)):
        return "an object" if isinstance(value, dict) else f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else f"{text[:_SHOW_LIMIT - 10]}… ({len(text)} characters)"
