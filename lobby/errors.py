"""Errors in one shape for every API answer: `{"error": {"code": "...", "message": "..."}}`.

Services raise `ServiceError` subclasses with a stable `code` that clients can switch on and a
`message` a player can read; DRF's own exceptions (validation, auth, throttling) are mapped to
the same shape here.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response


class ServiceError(Exception):
    status = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: str, message: str, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra  # more keys of the error object, e.g. `fields`


class Invalid(ServiceError):
    status = status.HTTP_400_BAD_REQUEST


class Forbidden(ServiceError):
    status = status.HTTP_403_FORBIDDEN


class NotFound(ServiceError):
    status = status.HTTP_404_NOT_FOUND


class Conflict(ServiceError):
    """The request is valid but the lobby's state does not allow it now (full, started...)."""

    status = status.HTTP_409_CONFLICT


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
}


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            text = _first_message(value)
            return text if field == "non_field_errors" else f"{field}: {text}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def api_exception_handler(exc, context):
    # Imported here: rest_framework.views loads the permission classes, which import this app.
    from rest_framework.views import exception_handler

    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message, **exc.extra), status=exc.status)
    from config.admission import is_pool_exhausted, overload_log, overloaded_response

    if is_pool_exhausted(exc):
        # A crowd, not a bug: 503 + Retry-After and one summarised log line, no traceback.
        overload_log.note("database", f"{type(exc).__name__}: {exc}")
        return overloaded_response()
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("too_large", "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # a bug of ours: Django's 500 handler answers
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", _first_message(exc.detail), fields=exc.detail)
    else:
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        extra = {"retry_after": exc.wait} if isinstance(exc, exceptions.Throttled) else {}
        body = error_body(code, str(exc.detail), **extra)
    response.data = body
    return response


def json_404(request, exception=None):
    return JsonResponse(error_body("not_found", "There is nothing at this address."), status=404)


def json_500(request):
    return JsonResponse(
        error_body("server_error", "Something went wrong on our side; try again shortly."),
        status=500,
    )
