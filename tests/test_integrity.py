"""IntegrityErrors are told apart by the constraint's name, on SQLite and PostgreSQL alike."""

import pytest
from django.db import IntegrityError, transaction

from config.integrity import violated_constraint
from lobby.models import Lobby, Membership
from tests.lobby.factories import LobbyFactory, PlayerFactory

pytestmark = pytest.mark.django_db


def _violation(write) -> IntegrityError:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        write()
    return caught.value


def test_a_partial_unique_constraint_is_named():
    lobby, other = LobbyFactory(), LobbyFactory()

    exc = _violation(lambda: Membership.objects.create(lobby=other, player=lobby.host, ip="::1"))

    assert violated_constraint(exc) == "one_active_lobby_per_player"


def test_a_check_constraint_is_named():
    lobby = LobbyFactory(max_players=2)

    exc = _violation(lambda: Lobby.objects.filter(pk=lobby.pk).update(member_count=3))

    assert violated_constraint(exc) == "lobby_never_over_capacity"


def test_a_unique_field_is_named_as_postgresql_names_it():
    lobby = LobbyFactory()

    exc = _violation(
        lambda: Lobby.objects.create(
            name="x", host=PlayerFactory(), max_players=2, join_code=lobby.join_code
        )
    )

    assert violated_constraint(exc) == "lobby_lobby_join_code_key"
