from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import JsonResponse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt

from config.admission import is_pool_exhausted, overload_log, overloaded_response
from lobby.errors import error_body, json_404, json_500


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


@csrf_exempt  # else a POST or DELETE to a typo answers Django's HTML "CSRF cookie not set"
def api_not_found(request):
    return json_404(request)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: the API's JSON 403 under /api/ (views outside DRF), Django's page
    elsewhere."""
    if _is_api(request):
        body = error_body("forbidden", f"CSRF Failed: {reason}")
        return JsonResponse(body, status=403)
    return csrf.csrf_failure(request, reason=reason)


def handler404(request, exception):
    if _is_api(request):
        return json_404(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return json_500(request)
    return defaults.server_error(request)


class OverloadMiddleware:
    """The last resort for views outside DRF (pages, probes, the events long-poll): a database
    that has no connection for us answers 503 + Retry-After with one log line, not a 500 with a
    traceback per request. DRF views get the same from the API's exception handler."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        # Only the process_exception hook matters; the request passes through untouched.
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_pool_exhausted(exception):
            return None
        overload_log.note("database", f"{type(exception).__name__}: {exception}")
        return overloaded_response()
