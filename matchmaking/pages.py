"""The queue page (issue 6): choose a queue, enter attributes, follow the ticket live, land in
the match's lobby room.

Like the lobby pages (lobby/pages.py), the view decides nothing: it hands the page who the player
is, the event sequence to follow the stream from, and the ticket the player is searching with
right now, if any (the API has no "my tickets" call, and a reload, a second tab or a game client
may have queued it). Everything else goes through the HTTP API v1 with the session cookie.

A queue that takes a number from the player's rating (docs/ratings.md, "Rated queues") asks no
input for it: the page shows the rating instead, which this view hands it for every leaderboard
an open queue rates on (a new player's where the player has none).
"""

from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from lobby import selectors as lobby_selectors
from lobby import services as lobby_services
from lobby.pages import player_required
from matchmaking.selectors import rated_leaderboards, ticket_searching_for
from matchmaking.services import ticket_snapshot
from ratings import selectors as ratings_selectors


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
        # Leaderboard name -> the player's rating there (mu, sigma, ordinal, games, title, and
        # `listed`: whether its leaderboard page exists yet).
        "ratings": ratings_selectors.player_ratings_on(
            player=player, leaderboard_names=rated_leaderboards()
        ),
        "leaderboardsUrl": reverse("pages:leaderboards"),
    }
    context = {
        "player": player,
        "page": page,
        "current_lobby": membership.lobby if membership else None,
    }
    return render(request, "matchmaking/queue.html", context)
