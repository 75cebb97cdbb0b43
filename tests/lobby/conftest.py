import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from lobby import services, throttles
from lobby.models import Lobby, PlayerEvent
from relays import signals
from relays.models import RelaySession
from tests.lobby.factories import LobbyFactory, MembershipFactory, PlayerFactory


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    # Throttle counters live in the cache, which outlives a test.
    cache.clear()
    throttles.reset()
    yield
    cache.clear()
    throttles.reset()


@pytest.fixture
def throttle_rates(monkeypatch):
    """Set throttle rates for this test: DRF reads them once, onto the throttle class."""

    def set_rates(**rates):
        merged = {**SimpleRateThrottle.THROTTLE_RATES, **rates}
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", merged)

    return set_rates


@pytest.fixture
def anonymous():
    return APIClient()


def api_client_for(player, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Token {player.user.auth_token.key}")
    return client


@pytest.fixture
def client_for():
    """`client_for(player)`: an API client that authenticates as the player with its token."""
    return api_client_for


@pytest.fixture
def player():
    return PlayerFactory(display_name="Alice")


@pytest.fixture
def api(player):
    return api_client_for(player)


@pytest.fixture
def lobby_of():
    """`lobby_of(host, *members, **fields)`: a lobby with these members, in joining order."""

    def make(host, *members, **fields):
        lobby = LobbyFactory(host=host, **fields)
        for member in members:
            MembershipFactory(lobby=lobby, player=member)
        lobby.refresh_from_db()
        return lobby

    return make


@pytest.fixture
def events_of():
    """`events_of(player, after=0)`: the player's stream as (type, data) pairs, oldest first."""

    def read(player, after=0):
        rows = PlayerEvent.objects.filter(player=player, seq__gt=after).order_by("seq")
        return [(event.type, event.data) for event in rows]

    return read


@pytest.fixture
def start_match():
    """`start_match(lobby, *members)`: everyone ready, the host starts; the relay stays pending
    (its tasks run after commit, which a `django_db` test never reaches)."""

    def start(lobby, *members) -> Lobby:
        for member in (lobby.host, *members):
            services.lobby_set_ready(lobby_id=lobby.pk, player=member, ready=True, ip=_ip(member))
        return services.lobby_start(lobby_id=lobby.pk, player=lobby.host)

    return start


def _ip(player) -> str:
    return f"192.0.2.{player.pk % 250 + 1}"


RELAY = {
    "session_id": "edge-session-1",
    "session_token": 3500589645,
    "relay_host": "relay.example.test",
    "relay_ip": "198.51.100.200",
    "server_port": 32000,
    "client_port": 32001,
}


@pytest.fixture
def relay_ready():
    """`relay_ready(lobby)`: what the relays app does when Edgegap reports the session ready:
    store the endpoint and each seat's own token, and announce it, in one transaction.
    Returns {player id: that player's user token}."""

    def make_ready(lobby, *, first_user_token=21986334) -> dict:
        session = RelaySession.objects.get(lobby=lobby)
        tokens = {}
        with transaction.atomic():
            RelaySession.objects.filter(pk=session.pk).update(
                status=RelaySession.Status.READY, ready_at=timezone.now(), **RELAY
            )
            for n, seat in enumerate(session.seats.order_by("ordinal")):
                seat.user_token = first_user_token + n
                seat.in_create_call = True
                seat.save(update_fields=["user_token", "in_create_call"])
                tokens[int(seat.holder.removeprefix("player:"))] = seat.user_token
            session.refresh_from_db()
            signals.session_ready.send(sender=RelaySession, session=session)
        return tokens

    return make_ready
