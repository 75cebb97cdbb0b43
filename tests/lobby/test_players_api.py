"""Players: guest creation, the caller, and the caller's relay assignment (design.md §4)."""

import time

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from lobby.models import Lobby
from relays import services as relays
from relays import signals
from relays.models import RelaySession
from tests.lobby.conftest import RELAY
from tests.lobby.factories import PlayerFactory
from tests.relays import conftest as relay_fixtures

pytestmark = pytest.mark.django_db

GUEST = "/api/v1/players/guest"
ME = "/api/v1/players/me"
ASSIGNMENT = "/api/v1/players/me/assignment"


# --- Guests ------------------------------------------------------------------------------------


def test_guest_gets_a_token_that_signs_it_in(anonymous):
    response = anonymous.post(GUEST, {"display_name": "Alice"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "display_name", "token"}
    assert body["display_name"] == "Alice"
    game_client = APIClient()
    game_client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    me = game_client.get(ME)
    assert me.status_code == 200
    assert me.json() == {
        "id": body["id"],
        "display_name": "Alice",
        "is_guest": True,
        "last_seq": 0,
        "ratings": [],  # none until a rated match stands (ratings/apis.py)
    }


def test_guest_creation_signs_the_browser_in_too(anonymous):
    created = anonymous.post(GUEST, {"display_name": "Alice"}, format="json").json()

    me = anonymous.get(ME)  # no token: the session cookie set by the creation

    assert me.status_code == 200
    assert me.json()["id"] == created["id"]


def test_each_guest_is_a_different_player(anonymous):
    first = anonymous.post(GUEST, {"display_name": "Alice"}, format="json").json()
    second = APIClient().post(GUEST, {"display_name": "Alice"}, format="json").json()

    assert first["id"] != second["id"]
    assert first["token"] != second["token"]


def test_guest_display_name_whitespace_is_collapsed(anonymous):
    response = anonymous.post(GUEST, {"display_name": "  Ann \t  Lee  "}, format="json")

    assert response.status_code == 201
    assert response.json()["display_name"] == "Ann Lee"


@pytest.mark.parametrize(
    ("display_name", "message"),
    [
        ("", "display_name: This field may not be blank."),
        ("   ", "display_name: This field may not be blank."),
        ("x" * 33, "display_name: Ensure this field has no more than 32 characters."),
        ("bell\x07", "display_name: Use printable characters only."),
    ],
)
def test_guest_refuses_a_bad_display_name(anonymous, display_name, message):
    response = anonymous.post(GUEST, {"display_name": display_name}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["message"] == message


def test_guest_refuses_a_missing_display_name(anonymous):
    response = anonymous.post(GUEST, {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "display_name: This field is required."


def test_me_is_the_caller(api, player):
    response = api.get(ME)

    assert response.status_code == 200
    assert response.json() == {
        "id": player.pk,
        "display_name": "Alice",
        "is_guest": True,
        "last_seq": 0,
        "ratings": [],
    }


# --- Assignment --------------------------------------------------------------------------------


def test_assignment_is_404_outside_any_lobby(api):
    response = api.get(ASSIGNMENT)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_assignment"


def test_assignment_is_404_before_the_match_starts(api, player, lobby_of):
    lobby_of(player, PlayerFactory())

    response = api.get(ASSIGNMENT)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_assignment"


def test_assignment_is_pending_after_start_with_a_role_per_player(
    client_for, lobby_of, start_match
):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)

    host_view = client_for(host).get(ASSIGNMENT)
    guest_view = client_for(guest).get(ASSIGNMENT)

    assert host_view.status_code == 200
    assert host_view.json() == {
        "lobby_id": str(lobby.pk),
        "status": "pending",
        "role": "server",
        "relay": None,
        "session_authorization_token": None,
        "user_authorization_token": None,
        "error": None,
    }
    assert guest_view.status_code == 200
    assert guest_view.json()["status"] == "pending"
    assert guest_view.json()["role"] == "client"


def test_assignment_when_ready_gives_each_player_only_its_own_token(
    client_for, lobby_of, start_match, relay_ready
):
    host, first, second = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, first, second)
    start_match(lobby, first, second)
    tokens = relay_ready(lobby)
    assert len(set(tokens.values())) == 3

    views = {p.pk: client_for(p).get(ASSIGNMENT).json() for p in (host, first, second)}

    assert views[host.pk] == {
        "lobby_id": str(lobby.pk),
        "status": "ready",
        "role": "server",
        "relay": {
            "host": RELAY["relay_host"],
            "ip": RELAY["relay_ip"],
            "port": RELAY["server_port"],
            "protocol": "UDP",
        },
        "session_authorization_token": RELAY["session_token"],
        "user_authorization_token": tokens[host.pk],
        "error": None,
    }
    for member in (first, second):
        view = views[member.pk]
        assert view["status"] == "ready"
        assert view["role"] == "client"
        assert view["relay"]["port"] == RELAY["client_port"]
        assert view["session_authorization_token"] == RELAY["session_token"]
        assert view["user_authorization_token"] == tokens[member.pk]


def test_assignment_after_a_relay_failure_says_why(client_for, lobby_of, start_match):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)
    session = RelaySession.objects.get(lobby=lobby)
    with transaction.atomic():
        RelaySession.objects.filter(pk=session.pk).update(status=RelaySession.Status.FAILED)
        signals.session_failed.send(sender=RelaySession, session=session, reason="no relay here")

    response = client_for(guest).get(ASSIGNMENT)

    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert response.json()["error"] == "no relay here"
    assert response.json()["relay"] is None
    assert response.json()["user_authorization_token"] is None


def test_assignment_is_gone_after_leaving_a_started_lobby(client_for, lobby_of, start_match):
    host, guest, other = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest, other)
    start_match(lobby, guest, other)
    api = client_for(guest)
    assert api.post(f"/api/v1/lobbies/{lobby.pk}/leave").status_code == 204

    response = api.get(ASSIGNMENT)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_assignment"


# --- The same against the relay emulator -------------------------------------------------------

# The relay tests' emulator and client (tests/relays/conftest.py).
emulator, edgegap = relay_fixtures.emulator, relay_fixtures.edgegap


def test_assignment_from_the_relay_matches_each_players_address(
    edgegap, client_for, lobby_of, django_capture_on_commit_callbacks
):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    addresses = {host.pk: "203.0.113.10", guest.pk: "198.51.100.20"}
    for member in (host, guest):
        ready = client_for(member).post(
            f"/api/v1/lobbies/{lobby.pk}/ready",
            {"ready": True},
            format="json",
            REMOTE_ADDR=addresses[member.pk],
        )
        assert ready.status_code == 200
    with django_capture_on_commit_callbacks(execute=False):  # the relay tasks: driven below
        assert client_for(host).post(f"/api/v1/lobbies/{lobby.pk}/start").status_code == 200
    session = RelaySession.objects.get(lobby=lobby)
    relays.relay_session_create(session_pk=session.pk, client=edgegap)
    deadline = time.monotonic() + 5
    while RelaySession.objects.get(pk=session.pk).status == RelaySession.Status.WAITING:
        assert time.monotonic() < deadline, "the emulator's session never became ready"
        time.sleep(0.05)
        relays.relay_session_poll(session_pk=session.pk, client=edgegap)

    remote = edgegap.get_session(RelaySession.objects.get(pk=session.pk).session_id)
    token_by_ip = {user.ip_address: user.authorization_token for user in remote.users}
    assert Lobby.objects.get(pk=lobby.pk).state == Lobby.State.READY
    for member, role, port in (
        (host, "server", remote.relay.server_port),
        (guest, "client", remote.relay.client_port),
    ):
        view = client_for(member).get(ASSIGNMENT).json()
        assert view["status"] == "ready"
        assert view["role"] == role
        assert view["relay"]["ip"] == remote.relay.ip
        assert view["relay"]["port"] == port
        assert view["session_authorization_token"] == remote.authorization_token
        assert view["user_authorization_token"] == token_by_ip[addresses[member.pk]]


def test_the_permission_only_checks_the_authentication_finds_the_player(
    django_user_model, django_assert_num_queries
):
    # One job each: authentication says who calls (and makes a Django user's player on first
    # use); IsPlayer reads what it found and writes nothing.
    from rest_framework.test import APIRequestFactory

    from lobby.permissions import IsPlayer

    staff = django_user_model.objects.create_user("ops", password="a-long-password-1")
    api = APIClient()
    api.force_login(staff)
    assert api.get(ME).json()["display_name"] == "ops"  # made on first use, by authentication

    request = APIRequestFactory().get(ME)
    with django_assert_num_queries(0):
        assert IsPlayer().has_permission(request, view=None) is False
    request.player = object()
    with django_assert_num_queries(0):
        assert IsPlayer().has_permission(request, view=None) is True
