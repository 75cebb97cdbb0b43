"""The queue page (issue 6): choose a queue, enter attributes, follow the ticket live, land in
the match's lobby room.

Like the lobby pages (lobby/pages.py), the view decides nothing: it hands the page who the player
is, the event sequence to follow the stream from, and the ticket the player is searching with
right now, if any (the API has no "my tickets" call, and a reload, a second tab or a game client
may have queued it). Everything else goes through the HTTP API v1 with the session cookie.
"""

from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from lobby import selectors as lobby_selectors
from lobby import services as lobby_services
from lobby.pages import player_required
from matchmaking.selectors import ticket_searching_for
from matchmaking.services import ticket_snapshot


@ensure_csrf_cookie
@player_required
def queue(request):
    """Matchmaking for people: queue in a profile and wait for a match, then go to its lobby."""
    player = lobby_services.player_for_user(request.user)
    # The sequence first: a ticket made after this read is replayed to the page by the stream.
    after = player.event_seq
    ticket = ticket_searching_for(player)
    membership = lobby_selectors.active_membership(player)
    page = {
        "me": {"id": player.pk, "displayName": player.display_name},
        "after": after,
        "ticket": ticket_snapshot(ticket) if ticket else None,
    }
    context = {
        "player": player,
        "page": page,
        "current_lobby": membership.lobby if membership else None,
    }
    return render(request, "matchmaking/queue.html", context)
