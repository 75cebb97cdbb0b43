"""Events written in batches: every player's numbers stay contiguous and in batch order, and a
start writes its two events per member (the new lobby state, the assignment) in one
statement each for all of them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lobby.events import events_emit, events_emit_many
from lobby.models import Membership, PlayerEvent
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


def _stream(player):
    return list(
        PlayerEvent.objects.filter(player=player).order_by("seq").values_list("seq", "type", "data")
    )


def test_batches_give_each_player_contiguous_numbers_in_batch_order():
    a, b, c = PlayerFactory(), PlayerFactory(), PlayerFactory()
    events_emit(player_ids=[a.pk], type="warm", data={})  # a starts one ahead of the others

    events_emit_many(
        [
            ("first", {a.pk: {"n": 1}, b.pk: {"n": 1}}),
            ("second", {b.pk: {"n": 2}, c.pk: {"n": 2}}),
            ("third", {a.pk: {"n": 3}, b.pk: {"n": 3}, c.pk: {"n": 3}}),
        ]
    )

    assert _stream(a) == [(1, "warm", {}), (2, "first", {"n": 1}), (3, "third", {"n": 3})]
    assert _stream(b) == [(1, "first", {"n": 1}), (2, "second", {"n": 2}), (3, "third", {"n": 3})]
    assert _stream(c) == [(1, "second", {"n": 2}), (2, "third", {"n": 3})]
    for player in (a, b, c):
        player.refresh_from_db()
        assert player.event_seq == _stream(player)[-1][0]


def test_a_start_writes_state_and_assignment_for_every_member_in_two_statements(
    client_for, lobby_of
):
    host, *others = (PlayerFactory() for _ in range(4))
    lobby = lobby_of(host, *others)
    Membership.objects.filter(lobby=lobby).update(ready=True)
    api = client_for(host)

    with CaptureQueriesContext(connection) as queries:
        assert api.post(f"/api/v1/lobbies/{lobby.pk}/start").status_code == 200

    sql = [q["sql"] for q in queries.captured_queries]
    assert sum("event_seq = event_seq" in s for s in sql) == 1
    assert sum(s.startswith('INSERT INTO "lobby_playerevent"') for s in sql) == 1
    # The start's own transaction is a savepoint inside the test's; nothing within takes one.
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 1
    for member in (host, *others):
        assert [t for _, t, _ in _stream(member)][-2:] == ["lobby.updated", "relay.assignment"]
