import pytest

from lobby import services

pytestmark = pytest.mark.django_db


def test_metrics_count_lobbies_and_relay_sessions_by_state(client):
    host, _ = services.player_create_guest(display_name="host")
    services.lobby_create(player=host, ip="203.0.113.1", name="counted", max_players=2)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    assert 'relaylobby_lobbies{state="open"} 1' in text
    assert 'relaylobby_lobbies{state="ready"} 0' in text
    assert 'relaylobby_relay_sessions{status="ready"} 0' in text
    assert "relaylobby_players 1" in text


def test_metrics_require_the_bearer_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert ok.status_code == 200
