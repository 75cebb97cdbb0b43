"""The OpenAPI schema's error answers: every status an operation can return, in the error shape.

Views declare their own refusals (`409: "`lobby_full`, ..."`) next to their success answers;
`document_errors` (a drf-spectacular postprocessing hook) gives each of those the `Error` body and
adds the answers the framework gives any operation: 400 for a body or query it cannot use, 401,
403 (a browser's write without its CSRF token), 404 for a malformed id, 406, 413, 415, 429 and
503 with `Retry-After`. A client generator and a fuzzer can then rely on the schema: an answer
the schema does not list is a bug.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from config.inputs import MAX_JSON_DEPTH
from matchmaking.rules import Problem

# One attribute's problem (matchmaking.rules.Problem): its code, then that code's parameters.
_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "code": {"type": "string", "enum": [problem.value for problem in Problem]},
    },
    "additionalProperties": True,
}
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer: switch on `code`, show `message`.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable: switch on it"},
                "message": {"type": "string", "description": "for players; may change"},
                "fields": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "400 invalid: the problem of every field that failed",
                },
                "problems": {
                    "type": "object",
                    "description": "400 invalid ticket attributes: `fields`' keys again, each "
                    "with its problem as data (`code`, stable, and its parameters) where `fields` "
                    'has words: `{"attributes": {"mode": {"code": "too_long", '
                    '"max_length": 200}}}` (docs/matchmaking.md)',
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": _PROBLEM_SCHEMA,
                    },
                },
                "retry_after": {
                    "type": "number",
                    "description": "429 and 503: seconds to wait before trying again",
                },
            },
            # Some refusals carry more: already_queued names the ticket, banned its end.
            "additionalProperties": True,
        }
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "seconds to wait before trying again",
    }
}
_UNSAFE = {"post", "put", "patch", "delete"}


def errors(**by_status: str) -> dict[int, OpenApiResponse]:
    """A view's own refusals for `extend_schema(responses=...)`: `errors(e409="`lobby_full`")`."""
    return {int(key[1:]): OpenApiResponse(description=text) for key, text in by_status.items()}


def _generic(operation: dict, method: str) -> dict[str, str]:
    """The answers any operation of this kind can get from the framework, by status."""
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    has_query = any(p.get("in") == "query" for p in parameters)
    has_path = any(p.get("in") == "path" for p in parameters)
    pages = any(p.get("name") == "page" for p in parameters)
    found = {
        "401": "`not_authenticated` (no credentials), `authentication_failed` (an unknown or "
        "disabled token)",
        "406": "`not_acceptable`: the `Accept` header excludes JSON",
        "429": "`throttled`: wait `retry_after` seconds (also the `Retry-After` header)",
        "503": "`overloaded`: the server is busy and did nothing; retry after `Retry-After`",
    }
    if has_body or has_query:
        found["400"] = "`invalid`: a field or parameter breaks a rule (see `fields`)"
    if has_body:
        found["400"] += (
            "; `malformed_request`: the body is not JSON, or nests deeper than"
            f" {MAX_JSON_DEPTH} levels"
        )
        found["413"] = "`too_large`: the body is over 256 KiB"
        found["415"] = "`unsupported_media_type`: send `Content-Type: application/json`"
    if method in _UNSAFE:
        found["403"] = "`forbidden`: a browser session's request without its CSRF token"
    if has_path or pages:
        found["404"] = "`not_found`: " + (
            "a malformed id in the path" if has_path else "a page past the end"
        )
        if has_path and pages:
            found["404"] += ", or a page past the end"
    return found


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: the `Error` shape on every error answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for status, text in _generic(operation, method).items():
                if status not in responses:
                    responses[status] = {"description": text}
                elif text not in responses[status].get("description", ""):
                    own = responses[status].get("description", "")
                    responses[status]["description"] = f"{own}; {text}" if own else text
            for status, response in responses.items():
                if not status.startswith(("4", "5")):
                    continue
                response.setdefault("description", "")
                response["content"] = {"application/json": {"schema": _ERROR_REF}}
                if status in ("429", "503"):
                    response["headers"] = _RETRY_AFTER
    return result
