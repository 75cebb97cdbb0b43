"""The operators' overview page (admin/overview/): the state of the service on one screen.

It reads across every app (lobbies, relay sessions, queues), which only config may: each app
knows only those below it (matchmaking -> lobby -> relays).
"""

from datetime import timedelta

from django.contrib import admin
from django.db.models import Count
from django.template.response import TemplateResponse
from django.utils import timezone

from lobby.models import Lobby
from matchmaking import selectors as matchmaking_selectors
from matchmaking.models import Profile
from relays.models import RelaySession

RECENT = timedelta(hours=1)


def _counts(queryset, field: str, order) -> list[dict]:
    found = dict(queryset.values_list(field).annotate(n=Count("pk")).order_by())
    return [{"name": name, "count": found.get(name, 0)} for name in order]


def overview_data(now=None) -> dict:
    now = now or timezone.now()
    since = now - RECENT
    live_lobbies = _counts(Lobby.objects.filter(state__in=Lobby.LIVE), "state", Lobby.LIVE)
    closed_recently = Lobby.objects.filter(state=Lobby.State.CLOSED, closed_at__gte=since).count()
    unsettled = [s for s in RelaySession.Status if s not in (RelaySession.Status.CLOSED,)]
    sessions = _counts(RelaySession.objects.filter(status__in=unsettled), "status", unsettled)
    stats = matchmaking_selectors.queue_stats()
    queues = [
        {
            "profile": profile,
            "searching": stats.get(profile.pk, {}).get("searching", 0),
            "median_wait": stats.get(profile.pk, {}).get("median_wait"),
        }
        for profile in Profile.objects.order_by("-enabled", "name")
    ]
    failures = list(
        RelaySession.objects.filter(status=RelaySession.Status.FAILED, closed_at__gte=since)
        .values("last_error")
        .annotate(count=Count("pk"))
        .order_by("-count", "last_error")[:20]
    )
    return {
        "now": now,
        "lobbies": live_lobbies,
        "lobbies_live": sum(row["count"] for row in live_lobbies),
        "lobbies_closed_recently": closed_recently,
        "sessions": sessions,
        "queues": queues,
        "failures": failures,
        "failures_total": sum(row["count"] for row in failures),
        # Should stay 0: a lobby shown ready to its players whose relay session is not.
        "stuck_ready": Lobby.objects.filter(state=Lobby.State.READY)
        .exclude(relay_session__status=RelaySession.Status.READY)
        .count(),
    }


def overview(request):
    context = {
        **admin.site.each_context(request),
        "title": "Overview",
        **overview_data(),
    }
    return TemplateResponse(request, "admin/overview.html", context)
