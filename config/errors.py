from django.views import defaults

from lobby.errors import json_404, json_500


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def api_not_found(request):
    return json_404(request)


def handler404(request, exception):
    if _is_api(request):
        return json_404(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return json_500(request)
    return defaults.server_error(request)
