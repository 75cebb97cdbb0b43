"""Beat jobs of the lobby app: abandoned lobbies close (and free their relay), old events go."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lobby import services
from lobby.models import Lobby, Membership, Player, PlayerEvent
from relays.models import RelaySession

pytestmark = pytest.mark.django_db


def _started_lobby(django_capture_on_commit_callbacks):
    host, _ = services.player_create_guest(display_name="host")
    guest, _ = services.player_create_guest(display_name="guest")
    lobby = services.lobby_create(player=host, ip="203.0.113.1", name="match", max_players=4)
    services.lobby_join(lobby_id=lobby.pk, player=guest, ip="198.51.100.2")
    for player in (host, guest):
        services.lobby_set_ready(lobby_id=lobby.pk, player=player, ready=True, ip="203.0.113.9")
    with django_capture_on_commit_callbacks(execute=False):  # no relay task runs here
        services.lobby_start(lobby_id=lobby.pk, player=host)
    return Lobby.objects.get(pk=lobby.pk), host, guest


def _age(lobby, seconds):
    past = timezone.now() - timedelta(seconds=seconds)
    Lobby.objects.filter(pk=lobby.pk).update(last_activity_at=past)
    Player.objects.filter(memberships__lobby=lobby).update(last_seen_at=past)


def test_abandoned_lobby_closes_and_its_relay_session_is_deleted(
    settings, django_capture_on_commit_callbacks
):
    settings.LOBBY_ABANDON_AFTER = 600
    lobby, host, guest = _started_lobby(django_capture_on_commit_callbacks)
    _age(lobby, 601)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.lobbies_close_abandoned() == 1

    lobby.refresh_from_db()
    assert (lobby.state, lobby.closed_reason) == (Lobby.State.CLOSED, "abandoned")
    assert lobby.relay_session.status == RelaySession.Status.CLOSING
    assert len(queued) >= 1  # the relay delete, after commit
    assert not Membership.objects.filter(lobby=lobby, state="active").exists()
    closed = PlayerEvent.objects.filter(type="lobby.closed").values_list("player_id", flat=True)
    assert set(closed) == {host.pk, guest.pk}


def test_a_lobby_whose_players_are_still_around_is_not_abandoned(
    settings, django_capture_on_commit_callbacks
):
    settings.LOBBY_ABANDON_AFTER = 600
    lobby, host, _ = _started_lobby(django_capture_on_commit_callbacks)
    _age(lobby, 601)
    Player.objects.filter(pk=host.pk).update(last_seen_at=timezone.now())  # the host polls
    assert services.lobbies_close_abandoned() == 0
    lobby.refresh_from_db()
    assert lobby.state == Lobby.State.ALLOCATING


def test_events_older_than_the_retention_are_pruned(settings):
    settings.EVENT_RETENTION = 3600
    host, _ = services.player_create_guest(display_name="host")
    services.lobby_create(player=host, ip="203.0.113.1", name="old", max_players=2)
    old = PlayerEvent.objects.get(player=host)
    PlayerEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    services.lobby_set_ready(
        lobby_id=Lobby.objects.get().pk, player=host, ready=True, ip="203.0.113.1"
    )
    assert services.events_prune() == 1
    assert list(PlayerEvent.objects.values_list("seq", flat=True)) == [2]
