"""Operators' admin: pages load, relay tokens are masked, and the actions do what they say."""

import pytest
from django.utils import timezone

from lobby import services
from lobby.models import Lobby
from relays.models import RelaySession, Seat

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_lobby(django_capture_on_commit_callbacks):
    host, _ = services.player_create_guest(display_name="host")
    guest, _ = services.player_create_guest(display_name="guest")
    lobby = services.lobby_create(player=host, ip="203.0.113.1", name="admin view", max_players=4)
    services.lobby_join(lobby_id=lobby.pk, player=guest, ip="198.51.100.2")
    for player in (host, guest):
        services.lobby_set_ready(lobby_id=lobby.pk, player=player, ready=True, ip="203.0.113.9")
    with django_capture_on_commit_callbacks(execute=False):
        services.lobby_start(lobby_id=lobby.pk, player=host)
    lobby.refresh_from_db()
    # As if the relay became ready: endpoint and tokens stored.
    RelaySession.objects.filter(pk=lobby.relay_session_id).update(
        status=RelaySession.Status.READY,
        session_id="abc123-S",
        session_token=3500589645,
        relay_ip="127.0.0.1",
        server_port=31000,
        client_port=31001,
        ready_at=timezone.now(),
    )
    for n, seat in enumerate(Seat.objects.filter(session_id=lobby.relay_session_id)):
        Seat.objects.filter(pk=seat.pk).update(user_token=4000000000 + n)
    return lobby


def test_admin_pages_show_relay_sessions_with_tokens_masked(admin_client, ready_lobby):
    pages = [
        "/admin/relays/relaysession/",
        f"/admin/relays/relaysession/{ready_lobby.relay_session_id}/change/",
        "/admin/lobby/lobby/?state__exact=allocating",
        f"/admin/lobby/lobby/{ready_lobby.pk}/change/",
        "/admin/lobby/player/",
        "/admin/relays/relaysession/?age=5m&status__exact=ready",
    ]
    for path in pages:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        text = response.content.decode()
        assert "3500589645" not in text
        assert "4000000000" not in text and "4000000001" not in text
    detail = admin_client.get(f"/admin/relays/relaysession/{ready_lobby.relay_session_id}/change/")
    assert "•••645" in detail.content.decode()


def test_admin_search_finds_a_lobby_by_code_and_by_player(admin_client, ready_lobby):
    by_code = admin_client.get(f"/admin/lobby/lobby/?q={ready_lobby.join_code}")
    by_player = admin_client.get("/admin/lobby/lobby/?q=guest")
    assert "admin view" in by_code.content.decode()
    assert "admin view" in by_player.content.decode()


def test_end_lobby_action_closes_it_and_its_relay_session(
    admin_client, ready_lobby, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            "/admin/lobby/lobby/",
            {"action": "end_lobbies", "_selected_action": [str(ready_lobby.pk)]},
        )
    assert response.status_code == 302
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == Lobby.State.CLOSED
    assert ready_lobby.relay_session.status == RelaySession.Status.CLOSING


def test_retry_relay_allocation_gives_a_failed_lobby_a_new_session(
    admin_client, ready_lobby, django_capture_on_commit_callbacks
):
    Lobby.objects.filter(pk=ready_lobby.pk).update(state=Lobby.State.FAILED)
    old_session = ready_lobby.relay_session_id
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(
            "/admin/lobby/lobby/",
            {"action": "retry_relay_allocation", "_selected_action": [str(ready_lobby.pk)]},
        )
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == Lobby.State.ALLOCATING
    assert ready_lobby.relay_session_id != old_session
    assert RelaySession.objects.get(pk=old_session).status == RelaySession.Status.CLOSING
    assert list(ready_lobby.relay_session.seats.values_list("holder", flat=True)) == [
        f"player:{ready_lobby.host_id}",
        f"player:{ready_lobby.memberships.exclude(player=ready_lobby.host_id).get().player_id}",
    ]


def test_reconcile_now_action_queues_a_pass(admin_client, ready_lobby, monkeypatch):
    queued = []
    monkeypatch.setattr("relays.tasks.reconcile.delay", lambda: queued.append(True))
    admin_client.post(
        "/admin/relays/relaysession/",
        {"action": "reconcile_now", "_selected_action": [str(ready_lobby.relay_session_id)]},
    )
    assert queued == [True]
