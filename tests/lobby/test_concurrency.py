"""Concurrent joins never overfill a lobby, and never put a player in two lobbies.

The must-show runs on PostgreSQL (`make test-services`), where writers really race; on SQLite
IMMEDIATE transactions serialize them, and the same test checks that nothing is lost there either.
"""

import threading
from collections import Counter

import pytest
from django.db import connection

from lobby.errors import ServiceError
from lobby.models import Lobby, Membership
from lobby.services import lobby_create, lobby_join, player_create_guest

pytestmark = pytest.mark.django_db(transaction=True)


def _race(calls):
    """Run every call at once from its own thread; return each one's outcome (or error code)."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            call()
            outcomes[index] = "joined"
        except ServiceError as exc:
            outcomes[index] = exc.code
        except Exception as exc:  # anything else is a bug the test must show
            outcomes[index] = f"error: {type(exc).__name__}: {exc}"
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_fifty_players_racing_for_a_four_seat_lobby(settings):
    host, _ = player_create_guest(display_name="host")
    lobby = lobby_create(player=host, ip="203.0.113.1", name="race", max_players=4)
    players = [player_create_guest(display_name=f"p{n}")[0] for n in range(50)]

    outcomes = _race(
        [lambda p=p: lobby_join(lobby_id=lobby.pk, player=p, ip="198.51.100.7") for p in players]
    )

    assert Counter(outcomes) == {"joined": 3, "lobby_full": 47}
    lobby.refresh_from_db()
    active = Membership.objects.filter(lobby=lobby, state=Membership.State.ACTIVE)
    assert lobby.member_count == active.count() == 4
    assert lobby.version == 1 + 3  # every successful join, and nothing else, changed it


def test_players_racing_into_two_lobbies_end_up_in_at_most_one():
    lobbies = []
    for name in ("a", "b"):
        host, _ = player_create_guest(display_name=f"host-{name}")
        lobbies.append(lobby_create(player=host, ip="203.0.113.1", name=name, max_players=32))
    players = [player_create_guest(display_name=f"p{n}")[0] for n in range(25)]

    calls = [
        lambda p=p, lobby=lobby: lobby_join(lobby_id=lobby.pk, player=p, ip="198.51.100.7")
        for p in players
        for lobby in lobbies
    ]
    outcomes = _race(calls)

    assert set(outcomes) <= {"joined", "already_in_lobby"}, outcomes
    per_player = Counter(
        Membership.objects.filter(state=Membership.State.ACTIVE, player__in=players).values_list(
            "player_id", flat=True
        )
    )
    assert set(per_player.values()) == {1}  # every player is in exactly one lobby
    assert len(per_player) == len(players)
    for lobby in Lobby.objects.all():
        assert lobby.member_count == lobby.memberships.filter(state="active").count()
