"""The per-player event stream over HTTP: `GET /api/v1/players/me/events` (design.md §5)."""

import asyncio
import json
import time
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.db import transaction

from lobby import services
from lobby.events import events_emit
from relays import signals
from relays.models import RelaySession
from tests.lobby.conftest import RELAY
from tests.lobby.factories import LobbyFactory, PlayerFactory

EVENTS = "/api/v1/players/me/events"


def stream(client, **params):
    response = client.get(EVENTS, params)
    assert response.status_code == 200, response.content
    return response.json()


def typed(body):
    return [(event["type"], event["data"].get("version")) for event in body["events"]]


# --- Reading the stream ------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_lobby_change_reaches_every_member_with_a_higher_version(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    client_for(guest).post(f"/api/v1/lobbies/{lobby.pk}/ready", {"ready": True}, format="json")

    hosts = stream(client_for(host))
    guests = stream(client_for(guest))

    assert [e["seq"] for e in hosts["events"]] == [1, 2, 3]
    assert hosts["last_seq"] == 3
    assert typed(hosts) == [("lobby.updated", 1), ("lobby.updated", 2), ("lobby.updated", 3)]
    assert typed(guests) == [("lobby.updated", 2), ("lobby.updated", 3)]
    assert [e["seq"] for e in guests["events"]] == [1, 2]
    final = guests["events"][-1]["data"]
    assert final == hosts["events"][-1]["data"]  # the same snapshot for everyone
    assert [(m["id"], m["ready"]) for m in final["members"]] == [(host.pk, False), (guest.pk, True)]


@pytest.mark.django_db
def test_after_returns_only_later_events(client_for, lobby_of):
    host = PlayerFactory()
    lobby_of(host, PlayerFactory(), PlayerFactory())
    api = client_for(host)

    later = stream(api, after=1)
    none = stream(api, after=3)
    beyond = stream(api, after=50)

    assert [e["seq"] for e in later["events"]] == [2, 3]
    assert later["last_seq"] == 3
    assert none == {"events": [], "last_seq": 3}
    assert beyond == {"events": [], "last_seq": 50}


@pytest.mark.django_db
def test_a_page_holds_at_most_100_events(api, player):
    for n in range(101):
        events_emit(player_ids=[player.pk], type="test.event", data={"n": n})

    first = stream(api)
    rest = stream(api, after=first["last_seq"])

    assert len(first["events"]) == 100
    assert first["last_seq"] == 100
    assert [e["data"]["n"] for e in rest["events"]] == [100]
    assert rest["last_seq"] == 101


@pytest.mark.django_db
def test_each_player_reads_only_its_own_stream(client_for, lobby_of):
    host, outsider = PlayerFactory(), PlayerFactory()
    lobby_of(host)

    assert stream(client_for(outsider)) == {"events": [], "last_seq": 0}
    assert len(stream(client_for(host))["events"]) == 1


@pytest.mark.django_db
def test_the_kicked_player_is_told_and_the_others_see_it_gone(client_for, lobby_of):
    host, guest, other = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest, other)
    seen = {p.pk: stream(client_for(p))["last_seq"] for p in (host, guest, other)}

    client_for(host).post(
        f"/api/v1/lobbies/{lobby.pk}/kick", {"player_id": guest.pk}, format="json"
    )

    kicked = stream(client_for(guest), after=seen[guest.pk])["events"]
    assert [(e["type"], e["data"]) for e in kicked] == [
        (
            "lobby.kicked",
            {
                "lobby_id": str(lobby.pk),
                "version": lobby.version + 1,  # the kick's own version
                "message": "The host removed you from the lobby.",
            },
        )
    ]
    for member in (host, other):
        events = stream(client_for(member), after=seen[member.pk])["events"]
        assert [e["type"] for e in events] == ["lobby.updated"]
        assert [m["id"] for m in events[0]["data"]["members"]] == [host.pk, other.pk]


@pytest.mark.django_db
def test_the_player_who_leaves_gets_a_last_snapshot_without_itself(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    seen = stream(client_for(guest))["last_seq"]

    client_for(guest).post(f"/api/v1/lobbies/{lobby.pk}/leave")

    events = stream(client_for(guest), after=seen)["events"]
    assert [e["type"] for e in events] == ["lobby.updated"]
    assert [m["id"] for m in events[0]["data"]["members"]] == [host.pk]


@pytest.mark.django_db
def test_ending_tells_every_member_the_lobby_closed(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    seen = {p.pk: stream(client_for(p))["last_seq"] for p in (host, guest)}

    client_for(host).post(f"/api/v1/lobbies/{lobby.pk}/end")

    for member in (host, guest):
        events = stream(client_for(member), after=seen[member.pk])["events"]
        assert [(e["type"], e["data"]) for e in events] == [
            ("lobby.closed", {"lobby_id": str(lobby.pk), "reason": "ended", "version": 3})
        ]


@pytest.mark.django_db
def test_the_last_member_leaving_is_told_the_lobby_closed(api, player, lobby_of):
    lobby = lobby_of(player)

    api.post(f"/api/v1/lobbies/{lobby.pk}/leave")

    events = stream(api, after=1)["events"]
    assert [(e["type"], e["data"]["reason"]) for e in events] == [("lobby.closed", "empty")]


@pytest.mark.django_db
def test_start_sends_each_member_a_pending_assignment_after_the_update(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    for member in (host, guest):
        client_for(member).post(f"/api/v1/lobbies/{lobby.pk}/ready", {"ready": True}, format="json")
    seen = {p.pk: stream(client_for(p))["last_seq"] for p in (host, guest)}

    client_for(host).post(f"/api/v1/lobbies/{lobby.pk}/start")

    for member, role in ((host, "server"), (guest, "client")):
        events = stream(client_for(member), after=seen[member.pk])["events"]
        assert [e["type"] for e in events] == ["lobby.updated", "relay.assignment"]
        assert events[0]["data"]["state"] == "allocating"
        assert events[1]["data"] == {
            "lobby_id": str(lobby.pk),
            "status": "pending",
            "role": role,
            "relay": None,
            "session_authorization_token": None,
            "user_authorization_token": None,
            "error": None,
        }


@pytest.mark.django_db
def test_ready_relay_sends_each_member_its_own_assignment(
    client_for, lobby_of, start_match, relay_ready
):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)
    seen = {p.pk: stream(client_for(p))["last_seq"] for p in (host, guest)}

    tokens = relay_ready(lobby)

    for member, port in ((host, RELAY["server_port"]), (guest, RELAY["client_port"])):
        events = stream(client_for(member), after=seen[member.pk])["events"]
        assert [e["type"] for e in events] == ["lobby.updated", "relay.assignment"]
        assert events[0]["data"]["state"] == "ready"
        assignment = events[1]["data"]
        assert assignment["status"] == "ready"
        assert assignment["relay"]["port"] == port
        assert assignment["session_authorization_token"] == RELAY["session_token"]
        assert assignment["user_authorization_token"] == tokens[member.pk]
    assert tokens[host.pk] != tokens[guest.pk]


@pytest.mark.django_db
def test_relay_failure_sends_every_member_a_failed_assignment(client_for, lobby_of, start_match):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)
    seen = stream(client_for(guest))["last_seq"]
    session = RelaySession.objects.get(lobby=lobby)

    with transaction.atomic():
        RelaySession.objects.filter(pk=session.pk).update(status=RelaySession.Status.FAILED)
        signals.session_failed.send(sender=RelaySession, session=session, reason="no capacity")

    events = stream(client_for(guest), after=seen)["events"]
    assert [e["type"] for e in events] == ["lobby.updated", "relay.assignment"]
    assert events[0]["data"]["state"] == "failed"
    assert events[0]["data"]["failure_reason"] == "no capacity"
    assert (events[1]["data"]["status"], events[1]["data"]["error"]) == ("failed", "no capacity")


@pytest.mark.django_db
def test_a_late_joiner_gets_a_pending_assignment(api, player, lobby_of, start_match):
    guest = PlayerFactory()
    lobby = lobby_of(PlayerFactory(), guest)
    start_match(lobby, guest)

    api.post(f"/api/v1/lobbies/{lobby.pk}/join")

    events = stream(api)["events"]
    assert [e["type"] for e in events] == ["lobby.updated", "relay.assignment"]
    assert (events[1]["data"]["status"], events[1]["data"]["role"]) == ("pending", "client")


# --- Refusals ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"after": "abc"}, "after must be an integer"),
        ({"after": "-1"}, "after must be between 0 and 9223372036854775807"),
        ({"wait": "soon"}, "wait must be an integer"),
        ({"wait": "31"}, "wait must be between 0 and 30"),
        ({"wait": "-1"}, "wait must be between 0 and 30"),
    ],
)
def test_bad_after_or_wait_is_refused(api, params, message):
    response = api.get(EVENTS, params)

    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid", "message": message}}


@pytest.mark.django_db
def test_events_refuse_an_anonymous_caller(anonymous):
    response = anonymous.get(EVENTS)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Token wrong", "authentication_failed"),
        ("Token ", "authentication_failed"),
        ("Token", "authentication_failed"),
        ("Bearer abc", "not_authenticated"),  # not our scheme: as if no token was sent
    ],
)
def test_events_refuse_a_bad_token(anonymous, player, header, code):
    response = anonymous.get(EVENTS, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


@pytest.mark.django_db
def test_events_accept_the_browser_session(anonymous):
    created = anonymous.post("/api/v1/players/guest", {"display_name": "Web"}, format="json")
    assert created.status_code == 201

    response = anonymous.get(EVENTS)

    assert response.status_code == 200
    assert response.json() == {"events": [], "last_seq": 0}


@pytest.mark.django_db
def test_events_refuse_other_methods_in_the_api_error_shape(api):
    response = api.post(EVENTS)

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": 'Method "POST" not allowed.'}
    }


# --- Long-polling --------------------------------------------------------------------------------


async def _poll(player, **params):
    """The request through the project's ASGI application, as uvicorn would serve it."""
    from config.asgi import application

    headers = [
        (b"host", b"localhost"),
        (b"authorization", f"Token {player.user.auth_token.key}".encode()),
    ]
    communicator = HttpCommunicator(
        application, "GET", f"{EVENTS}?{urlencode(params)}", headers=headers
    )
    response = await communicator.get_response(timeout=40)
    return response["status"], json.loads(response["body"])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_wait_returns_as_soon_as_an_event_is_emitted():
    host, guest = await sync_to_async(PlayerFactory)(), await sync_to_async(PlayerFactory)()
    lobby = await sync_to_async(LobbyFactory)(host=host)

    async def guest_joins_soon():
        await asyncio.sleep(0.3)
        # From a worker thread, like a sync view: the push reaches the waiting view's loop.
        await sync_to_async(services.lobby_join)(lobby_id=lobby.pk, player=guest, ip="192.0.2.5")

    began = time.monotonic()
    (status, body), _ = await asyncio.gather(_poll(host, after=1, wait=10), guest_joins_soon())
    elapsed = time.monotonic() - began

    assert status == 200
    assert [(e["seq"], e["type"]) for e in body["events"]] == [(2, "lobby.updated")]
    assert [m["id"] for m in body["events"][0]["data"]["members"]] == [host.pk, guest.pk]
    assert body["last_seq"] == 2
    assert 0.3 <= elapsed < 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_wait_returns_nothing_when_nothing_happens():
    player = await sync_to_async(PlayerFactory)()

    began = time.monotonic()
    status, body = await _poll(player, wait=1)
    elapsed = time.monotonic() - began

    assert status == 200
    assert body == {"events": [], "last_seq": 0}
    assert 0.9 <= elapsed < 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_wait_returns_at_once_when_events_are_already_there():
    host = await sync_to_async(PlayerFactory)()
    await sync_to_async(LobbyFactory)(host=host)

    began = time.monotonic()
    status, body = await _poll(host, after=0, wait=30)
    elapsed = time.monotonic() - began

    assert status == 200
    assert [e["type"] for e in body["events"]] == ["lobby.updated"]
    assert elapsed < 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_waiting_long_polls_do_not_hold_up_other_requests():
    # More waiting polls than the database pool has connections (10 on PostgreSQL) and than
    # asgiref's default thread pool has threads: a request arriving meanwhile is still answered
    # at once, and every poll ends when its wait is over.
    from config.asgi import application

    players = [await sync_to_async(PlayerFactory)() for _ in range(14)]
    polls = [asyncio.ensure_future(_poll(player, after=1_000_000, wait=3)) for player in players]
    await asyncio.sleep(1.0)  # every poll is now waiting
    loop = asyncio.get_running_loop()
    started = loop.time()
    # /readyz queries the database: it needs a connection while the polls wait.
    ready = HttpCommunicator(application, "GET", "/readyz", headers=[(b"host", b"localhost")])
    assert (await ready.get_response(timeout=5))["status"] == 200
    assert loop.time() - started < 1.0
    for status, body in await asyncio.gather(*polls):
        assert (status, body["events"]) == (200, [])
