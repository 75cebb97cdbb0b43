"""Factories for the lobby app.

Players are rows (a guest-like user, its player and its API token). Lobbies and memberships go
through the services, so that every invariant the API relies on holds in tests too: the member
count, the host's membership, the version and the members' events.
"""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory
from rest_framework.authtoken.models import Token

from lobby import services
from lobby.models import Lobby, Membership, Player


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"guest-test-{n}")
    password = factory.django.Password(None)  # unusable, like a guest's


class PlayerFactory(DjangoModelFactory):
    """A guest player with an API token: `player.user.auth_token.key`."""

    class Meta:
        model = Player
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    display_name = factory.Sequence(lambda n: f"Player {n}")
    is_guest = True
    last_seen_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def token(player, create, extracted, **kwargs):
        if create:
            Token.objects.create(user=player.user)


class LobbyFactory(DjangoModelFactory):
    """A lobby created by `lobby_create`: its host is its first member."""

    class Meta:
        model = Lobby

    host = factory.SubFactory(PlayerFactory)
    name = factory.Sequence(lambda n: f"Lobby {n}")
    max_players = 4
    visibility = Lobby.Visibility.PUBLIC
    mode = ""
    region = ""
    metadata = factory.LazyFunction(dict)
    joinable_after_start = True
    ip = factory.Sequence(lambda n: f"203.0.113.{n % 250 + 1}")

    @classmethod
    def _create(cls, model_class, *args, host, ip, **kwargs):
        return services.lobby_create(player=host, ip=ip, **kwargs)


class MembershipFactory(DjangoModelFactory):
    """A player who joined a lobby through `lobby_join` (by code, so private lobbies work too)."""

    class Meta:
        model = Membership

    lobby = factory.SubFactory(LobbyFactory)
    player = factory.SubFactory(PlayerFactory)
    ip = factory.Sequence(lambda n: f"198.51.100.{n % 250 + 1}")

    @classmethod
    def _create(cls, model_class, *args, lobby, player, ip, **kwargs):
        services.lobby_join(lobby_id=lobby.pk, player=player, ip=ip, by_code=True)
        return Membership.objects.get(lobby=lobby, player=player, state=Membership.State.ACTIVE)
