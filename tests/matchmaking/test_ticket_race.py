"""One searching ticket per player, whatever the queue, even when its requests race.

Issue 12 saw one player's three simultaneous requests (queues A, B, A) end in two queues in 28 of
60 tries, and 500s (MultipleObjectsReturned). The must-show runs on PostgreSQL
(`make test-services`), where the requests really race; the database's
`one_searching_ticket_per_player` is what decides.
"""

import threading
from collections import Counter

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from matchmaking.models import Profile, Ticket
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db(transaction=True)

SOLO = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
        }
    }
}


@pytest.fixture
def queues():
    # Players of one team each would match at once, but the matcher runs only when asked.
    return [Profile.objects.create(name=name, rules=SOLO) for name in ("a", "b")]


def _client(player):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {player.user.auth_token.key}")
    return client


def _post_at_once(requests):
    """POST every (client, profile) from its own thread at once; return (status, body) each."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def run(index, client, profile):
        try:
            barrier.wait(timeout=30)
            response = client.post(
                "/api/v1/matchmaking/tickets", {"profile": profile}, format="json"
            )
            results[index] = (response.status_code, response.json())
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(i, client, profile))
        for i, (client, profile) in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_a_player_racing_requests_for_two_queues_searches_in_one(queues):
    players = [PlayerFactory() for _ in range(20)]
    requests = [(_client(p), name) for p in players for name in ("a", "b", "a")]

    results = _post_at_once(requests)

    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {200, 201, 409}, results
    assert statuses[201] == len(players)  # each player's first ticket, and no other
    for player in players:
        searching = Ticket.objects.filter(player=player, status=Ticket.Status.SEARCHING)
        assert searching.count() == 1
    for status, body in results:
        if status == 409:
            assert body["error"]["code"] == "already_queued"
        else:
            ticket = Ticket.objects.get(pk=body["id"])
            assert ticket.status == Ticket.Status.SEARCHING


def test_the_database_refuses_a_second_searching_ticket_in_another_queue(queues):
    player = PlayerFactory()
    ticket = {"player": player, "expires_at": timezone.now(), "members": []}
    Ticket.objects.create(profile=queues[0], **ticket)

    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.create(profile=queues[1], **ticket)
    Ticket.objects.create(profile=queues[1], status=Ticket.Status.CANCELLED, **ticket)
