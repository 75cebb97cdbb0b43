"""The input policy: one set of rules for every piece of client text the service reads.

Whatever a client sends ends up in PostgreSQL, in Python's number tower or in a recursive walk,
and each of those has an edge that turns a bad input into a 500: PostgreSQL refuses NUL
characters in text and in `jsonb` ("unsupported Unicode escape sequence"); a lone UTF-16
surrogate (`"\\ud800"`, legal JSON) cannot be encoded to UTF-8 at all; JSON nested a few
thousand deep exhausts the parser's recursion (RecursionError); an integer of 4,000 digits
overflows the first float it meets. So the rules are applied once, where the text comes in,
not per field:

- text: no NUL and no lone surrogate, in keys as in values;
- JSON: at most `MAX_JSON_DEPTH` levels of arrays and objects;
- numbers: integers within a signed 64-bit range, floats finite (no NaN, no Infinity, no 1e400).

`PolicyJSONParser` applies them to every JSON request body (it is the API's only parser); the
query parameters and fields go through DRF serializers, whose `CharField` refuses NUL and
surrogates already; the WebSocket's frames are parsed by `loads` below. The body size is bounded
by DATA_UPLOAD_MAX_MEMORY_SIZE (413). The limits are tabled in docs/api.md ("Limits").
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from django.conf import settings
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser

# Deeper than anything the API takes (a ticket's `latencies` is 3 levels into its body), far
# shallower than the recursion the JSON decoder and our walks could survive.
MAX_JSON_DEPTH = 16
MAX_INT = 2**63 - 1  # a signed 64-bit integer: what PostgreSQL's bigint and every client hold
_MAX_INT_DIGITS = len(str(MAX_INT))

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# Counting nesting skips strings (a "[" in one is text): escapes go first, then whole strings,
# then everything but brackets. Each step is one linear regex pass (a single regex that matched
# strings with their escapes backtracks quadratically on a body of escaped quotes).
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class InputRejected(ValueError):
    """A client input breaks the policy; `path` names where (`metadata.map`, `attributes.0`)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def text_problem(value: str) -> str | None:
    """Why this text is refused, or None."""
    found = _BAD_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "NUL characters are not allowed."
    return "Unpaired surrogate characters are not allowed."


class _Refused:
    """A number the decoder met that the policy refuses; reported with its path by `check`."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def _parse_int(raw: str):
    # Refused before int() runs: converting a huge digit string is quadratic in Python.
    if len(raw.lstrip("-")) > _MAX_INT_DIGITS or abs(int(raw)) > MAX_INT:
        return _Refused(f"Integers must be between -{MAX_INT} and {MAX_INT}.")
    return int(raw)


def _parse_float(raw: str):
    value = float(raw)
    if not math.isfinite(value):
        return _Refused("Numbers must be finite.")
    return value


def _parse_constant(raw: str):
    return _Refused(f"{raw} is not a number JSON allows.")


def _depth_problem(text: str) -> str | None:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return None  # the usual body: too few brackets to nest too deep
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text)))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH:
        return f"JSON may nest at most {MAX_JSON_DEPTH} levels of arrays and objects."
    return None


def check(value: Any, path: str = "") -> Any:
    """Raise `InputRejected` if anything in this decoded JSON value breaks the policy."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise InputRejected(path, problem)
    elif isinstance(value, _Refused):
        raise InputRejected(path, value.message)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            problem = text_problem(key)
            if problem:
                # The key itself is the bad text: name its parent and show it escaped.
                raise InputRejected(path, f"key {key!r}: {problem}")
            check(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check(item, f"{path}.{index}" if path else str(index))
    return value


def loads(text: str) -> Any:
    """Decode client JSON under the policy: `ValueError` (JSONDecodeError or `InputRejected`)
    for anything refused. The depth is checked before decoding, so the decoder never recurses
    deeper than MAX_JSON_DEPTH."""
    problem = _depth_problem(text)
    if problem:
        raise InputRejected("", problem)
    value = json.loads(
        text,
        parse_int=_parse_int,
        parse_float=_parse_float,
        parse_constant=_parse_constant,
    )
    return check(value)


class PolicyJSONParser(JSONParser):
    """DRF's JSON parser under the input policy: malformed or too deep -> 400
    `malformed_request`; well-formed but refused text or numbers -> 400 `invalid`, with `fields`
    naming where."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise exceptions.ParseError(f"The body is not valid {encoding} text.") from None
        try:
            return loads(text)
        except InputRejected as exc:
            if not exc.path:  # the shape of the whole document (its depth)
                raise exceptions.ParseError(exc.message) from None
            raise exceptions.ValidationError({exc.path: [exc.message]}) from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


class TextField(serializers.CharField):
    """A string field that takes strings only: DRF's CharField turns `0` or `false` into "0" and
    "False", which is never what a client meant by a name."""

    default_error_messages = {"not_text": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text")
        return super().to_internal_value(data)


# For a DictField: the message clients already know (DRF's names a Python type).
OBJECT_ONLY = {"not_a_dict": "Must be a JSON object."}


class JsonBooleanField(serializers.BooleanField):
    """`true` or `false` only: DRF's BooleanField also takes 0, 1, "yes", "on"... which the
    schema (a JSON boolean) does not promise."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class JsonIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField also takes "12", 12.0 and true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictPageNumberPagination(PageNumberPagination):
    """`page_size` must be a whole number from 1 (larger asks get `max_page_size`): DRF ignores
    a malformed one, which hides a client's bug. A `page` past the end stays DRF's 404."""

    page_size_query_param = "page_size"

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or int(raw) < 1:
            raise exceptions.ValidationError({"page_size": ["Must be a whole number from 1."]})
        return min(int(raw), self.max_page_size or int(raw))

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters
