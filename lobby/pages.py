"""The browser pages (issue 5): server-rendered shells that the page's own JavaScript module fills
from the HTTP API v1 and the player's event socket.

The views decide nothing about lobbies: they find who the player is, hand the page what it needs
to start (the player, the event sequence to replay from), and leave every change to the API,
which the pages call with the session cookie and the CSRF token.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import ensure_csrf_cookie

from lobby import selectors, services

# Not settings.LOGIN_URL: a guest signs in by choosing a display name, on the entry page.
player_required = login_required(login_url=reverse_lazy("pages:entry"))


def _safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else reverse("pages:browser")


@ensure_csrf_cookie
def entry(request):
    """Choose a display name (a guest player), or sign in with an account."""
    if request.user.is_authenticated:
        return redirect(_safe_next(request))
    return render(request, "lobby/entry.html", {"next": _safe_next(request)})


@ensure_csrf_cookie
@player_required
def browser(request):
    """Public open lobbies (filtered, kept current), create a lobby, join one by its code."""
    player = services.player_for_user(request.user)
    membership = selectors.active_membership(player)
    context = {
        "player": player,
        "current_lobby": membership.lobby if membership else None,
        "filters": {key: request.GET.get(key, "")[:64] for key in ("mode", "region", "q")},
        "max_players": settings.LOBBY_MAX_PLAYERS,
    }
    return render(request, "lobby/browser.html", context)


@ensure_csrf_cookie
@player_required
def room(request, lobby_id):
    """One lobby: its members, their readiness, the host's controls, the relay assignment."""
    player = services.player_for_user(request.user)
    page = {
        "lobbyId": str(lobby_id),
        "me": {"id": player.pk, "displayName": player.display_name},
        # The socket and the polling fallback replay from here: whatever happens after this
        # page was made reaches it, and nothing older is replayed.
        "after": player.event_seq,
    }
    return render(request, "lobby/room.html", {"player": player, "page": page})
