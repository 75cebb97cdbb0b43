"""A ban racing the player's own join never leaves a banned player in a lobby (PostgreSQL, where
writers really race; on SQLite the writers serialize and the same invariant is checked)."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from lobby.errors import ServiceError
from lobby.models import Membership
from lobby.services import lobby_create, lobby_join, player_create_guest
from moderation.services import ban_create

pytestmark = pytest.mark.django_db(transaction=True)


def _both(first, second):
    barrier = threading.Barrier(2)
    outcomes = [None, None]

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            call()
            outcomes[index] = "ok"
        except ServiceError as exc:
            outcomes[index] = exc.code
        except Exception as exc:  # a deadlock or a 500 is what this test must show
            outcomes[index] = f"error: {type(exc).__name__}: {exc}"
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_a_ban_racing_a_join_leaves_no_banned_member():
    operator = get_user_model().objects.create_superuser("race-op", "r@example.test", "pw-r-123")
    host, _ = player_create_guest(display_name="host")
    lobby = lobby_create(player=host, ip="203.0.113.1", name="race", max_players=64)
    seen = set()
    for n in range(20):
        player, _ = player_create_guest(display_name=f"p{n}")
        outcomes = _both(
            lambda p=player: lobby_join(lobby_id=lobby.pk, player=p, ip="198.51.100.7"),
            lambda p=player: ban_create(
                player=p, reason="race", duration=timedelta(hours=1), actor=operator
            ),
        )
        seen.add(tuple(outcomes))
        assert outcomes[1] == "ok", outcomes
        assert outcomes[0] in ("ok", "banned"), outcomes
        assert not Membership.objects.filter(
            player=player, state=Membership.State.ACTIVE
        ).exists(), (n, outcomes)
    lobby.refresh_from_db()
    assert lobby.member_count == 1
    print("outcomes seen:", seen)
