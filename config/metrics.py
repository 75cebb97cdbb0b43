"""`GET /metrics`: Prometheus text exposition of the service's state.

Gauges read from the database at scrape time, so every web process reports the same numbers.
Aggregate counts only; METRICS_TOKEN requires `Authorization: Bearer <token>`, and with DEBUG
off /metrics answers only that (403 while no token is set).
"""

import hmac

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from lobby.models import Lobby, Player
from lobby.realtime import metrics_lines as realtime_metrics_lines
from relays.models import RelaySession


def _gauge(name, help_text, samples):
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        label_text = ",".join(f'{key}="{val}"' for key, val in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return lines


def _by(model, field, choices):
    counts = dict(model.objects.values_list(field).annotate(n=Count("pk")).order_by())
    return [({field: value}, counts.get(value, 0)) for value, _ in choices]


def collect() -> str:
    lines = []
    lines += _gauge(
        "relaylobby_lobbies", "Lobbies by state.", _by(Lobby, "state", Lobby.State.choices)
    )
    lines += _gauge(
        "relaylobby_relay_sessions",
        "Relay sessions by status (ours; Edgegap bills the live ones).",
        _by(RelaySession, "status", RelaySession.Status.choices),
    )
    lines += _gauge("relaylobby_players", "Players ever created.", [({}, Player.objects.count())])
    lines += realtime_metrics_lines()  # pushes dropped by the channel layer, sockets repaired
    for extra in getattr(settings, "METRICS_COLLECTORS", ()):
        from django.utils.module_loading import import_string

        lines += import_string(extra)()
    return "\n".join(lines) + "\n"


@require_GET
def metrics(request):
    token = settings.METRICS_TOKEN
    if not token and settings.METRICS_REQUIRE_TOKEN:
        # Production without a token: the counts are nobody's business until one is set.
        return HttpResponse(
            "forbidden: set METRICS_TOKEN to scrape\n", status=403, content_type="text/plain"
        )
    if token:
        header = request.headers.get("Authorization", "")
        if not hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(collect(), content_type="text/plain; version=0.0.4; charset=utf-8")
