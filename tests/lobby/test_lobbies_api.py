"""Lobbies over the HTTP API: create, list, detail, join, leave, ready, kick, transfer, start,
end, and every refusal with its status and error code (design.md §4)."""

import pytest

from lobby import services
from lobby.models import JOIN_CODE_ALPHABET, Lobby, Membership
from relays.models import RelaySession, Seat
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db

LOBBIES = "/api/v1/lobbies"
JOIN_BY_CODE = "/api/v1/lobbies/join"


def url(lobby, action=""):
    return f"{LOBBIES}/{lobby.pk}" + (f"/{action}" if action else "")


def error(response):
    return response.status_code, response.json()["error"]["code"]


def member_ids(body):
    return [member["id"] for member in body["members"]]


# --- Create ------------------------------------------------------------------------------------


def test_create_makes_the_caller_host_and_only_member(api, player):
    response = api.post(
        LOBBIES,
        {
            "name": "Friday  night",
            "max_players": 4,
            "visibility": "public",
            "mode": "ctf",
            "region": "eu-west",
            "metadata": {"map": "dunes", "ranked": True, "rounds": 3},
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    code = body.pop("join_code")
    assert len(code) == 8 and set(code) <= set(JOIN_CODE_ALPHABET)
    assert body == {
        "id": body["id"],
        "name": "Friday night",
        "state": "open",
        "version": 1,
        "visibility": "public",
        "max_players": 4,
        "member_count": 1,
        "mode": "ctf",
        "region": "eu-west",
        "metadata": {"map": "dunes", "ranked": True, "rounds": 3},
        "joinable_after_start": True,
        "host_id": player.pk,
        "failure_reason": None,
        "members": [{"id": player.pk, "display_name": "Alice", "ready": False, "is_host": True}],
    }
    assert Lobby.objects.get(pk=body["id"]).join_code == code


def test_create_with_only_a_name_uses_the_defaults(api):
    response = api.post(LOBBIES, {"name": "Quick"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["max_players"], body["visibility"], body["mode"], body["region"]) == (
        8,
        "public",
        "",
        "",
    )
    assert body["metadata"] == {}
    assert body["joinable_after_start"] is True


def test_create_default_max_players_stays_within_a_lower_limit(api, settings):
    settings.LOBBY_MAX_PLAYERS = 2  # a duel game's deployment

    response = api.post(LOBBIES, {"name": "Duel"}, format="json")

    assert response.status_code == 201
    assert response.json()["max_players"] == 2


def test_create_private_lobby(api):
    response = api.post(LOBBIES, {"name": "Secret", "visibility": "private"}, format="json")

    assert response.status_code == 201
    assert response.json()["visibility"] == "private"


@pytest.mark.parametrize("max_players", [2, 10])
def test_create_accepts_max_players_within_bounds(api, settings, max_players):
    settings.LOBBY_MAX_PLAYERS = 10

    response = api.post(LOBBIES, {"name": "L", "max_players": max_players}, format="json")

    assert response.status_code == 201
    assert response.json()["max_players"] == max_players


@pytest.mark.parametrize(
    ("max_players", "message"),
    [
        (1, "max_players: Ensure this value is greater than or equal to 2."),
        (11, "max_players: At most 10."),
        ("many", "max_players: A valid integer is required."),
    ],
)
def test_create_refuses_max_players_out_of_bounds(api, settings, max_players, message):
    settings.LOBBY_MAX_PLAYERS = 10

    response = api.post(LOBBIES, {"name": "L", "max_players": max_players}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == message
    assert not Lobby.objects.exists()


@pytest.mark.parametrize("field", ["mode", "region"])
def test_create_accepts_slug_mode_and_region(api, field):
    response = api.post(LOBBIES, {"name": "L", field: "Capture-the.flag_2"}, format="json")

    assert response.status_code == 201
    assert response.json()[field] == "Capture-the.flag_2"


@pytest.mark.parametrize("field", ["mode", "region"])
@pytest.mark.parametrize("value", ["two words", "ünïcode", "a/b", "x" * 33])
def test_create_refuses_non_slug_mode_and_region(api, field, value):
    response = api.post(LOBBIES, {"name": "L", field: value}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (["a", "list"], "metadata: Must be a JSON object."),
        ("text", "metadata: Must be a JSON object."),
        ({f"k{n}": n for n in range(17)}, "metadata: At most 16 keys."),
        ({"has space": 1}, "metadata: Bad key 'has space': 1-32 letters, digits, _.-"),
        ({"": 1}, "metadata: Bad key '': 1-32 letters, digits, _.-"),
        ({"k" * 33: 1}, f"metadata: Bad key {'k' * 32!r}: 1-32 letters, digits, _.-"),
        ({"map": {"name": "dunes"}}, "metadata: map: values are strings, numbers or booleans."),
        ({"maps": ["dunes"]}, "metadata: maps: values are strings, numbers or booleans."),
        ({"motd": "x" * 257}, "metadata: motd: at most 256 characters."),
        ({f"key{n}": "x" * 200 for n in range(11)}, "metadata: At most 2048 bytes of JSON."),
    ],
)
def test_create_refuses_bad_metadata(api, metadata, message):
    response = api.post(LOBBIES, {"name": "L", "metadata": metadata}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == message


def test_create_accepts_metadata_at_its_limits(api):
    metadata = {f"key-{n:02}": "x" * 100 for n in range(16)}  # 16 keys, under 2048 bytes
    metadata["key-00"] = None

    response = api.post(LOBBIES, {"name": "L", "metadata": metadata}, format="json")

    assert response.status_code == 201
    assert response.json()["metadata"] == metadata


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("   ", "name: This field may not be blank."),
        ("x" * 65, "name: Ensure this field has no more than 64 characters."),
        (None, "name: This field may not be null."),
    ],
)
def test_create_refuses_a_bad_name(api, name, message):
    response = api.post(LOBBIES, {"name": name}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == message


def test_create_refuses_an_unknown_visibility(api):
    response = api.post(LOBBIES, {"name": "L", "visibility": "secret"}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == 'visibility: "secret" is not a valid choice.'


def test_create_refuses_while_in_another_lobby(api, player, lobby_of):
    lobby_of(PlayerFactory(), player)

    response = api.post(LOBBIES, {"name": "Second"}, format="json")

    assert error(response) == (409, "already_in_lobby")
    assert Lobby.objects.count() == 1


# --- List --------------------------------------------------------------------------------------


def test_list_shows_only_open_public_lobbies_newest_first(api, lobby_of, start_match):
    older = lobby_of(PlayerFactory(), name="Older")
    newer = lobby_of(PlayerFactory(), name="Newer")
    lobby_of(PlayerFactory(), name="Private", visibility="private")
    guest = PlayerFactory()
    start_match(lobby_of(PlayerFactory(), guest, name="Started"), guest)
    closed = lobby_of(PlayerFactory(), name="Closed")
    services.lobby_end(lobby_id=closed.pk, player=closed.host)

    response = api.get(LOBBIES)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [item["name"] for item in body["results"]] == ["Newer", "Older"]
    assert [item["id"] for item in body["results"]] == [str(newer.pk), str(older.pk)]


def test_list_items_show_no_join_code(api, lobby_of):
    host = PlayerFactory(display_name="Hosty")
    lobby = lobby_of(host, PlayerFactory(), name="Open", mode="ctf", metadata={"map": "dunes"})

    item = api.get(LOBBIES).json()["results"][0]

    created_at = item.pop("created_at")
    assert created_at.startswith(str(lobby.created_at.date()))
    assert item == {
        "id": str(lobby.pk),
        "name": "Open",
        "mode": "ctf",
        "region": "",
        "member_count": 2,
        "max_players": 4,
        "host": "Hosty",
        "metadata": {"map": "dunes"},
    }


def test_list_filters_by_mode_region_and_text(api, lobby_of):
    lobby_of(PlayerFactory(), name="Dunes CTF", mode="ctf", region="eu")
    lobby_of(PlayerFactory(), name="Arena", mode="deathmatch", region="eu")
    lobby_of(PlayerFactory(), name="Night owls", mode="ctf", region="us")

    def names(**params):
        response = api.get(LOBBIES, params)
        assert response.status_code == 200
        return sorted(item["name"] for item in response.json()["results"])

    assert names(mode="ctf") == ["Dunes CTF", "Night owls"]
    assert names(region="eu") == ["Arena", "Dunes CTF"]
    assert names(mode="ctf", region="eu") == ["Dunes CTF"]
    assert names(q="OWL") == ["Night owls"]
    assert names(q="death") == ["Arena"]  # q matches the mode too
    assert names(mode="racing") == []


def test_list_treats_blank_filters_as_no_filter(api, lobby_of):
    lobby_of(PlayerFactory(), name="Arena", mode="ctf")

    response = api.get(f"{LOBBIES}?mode=&region=&q=")

    assert response.status_code == 200
    assert [item["name"] for item in response.json()["results"]] == ["Arena"]


def test_list_is_paginated(api, lobby_of):
    for n in range(3):
        lobby_of(PlayerFactory(), name=f"Lobby {n}")

    first = api.get(LOBBIES, {"page_size": 2}).json()
    second = api.get(LOBBIES, {"page_size": 2, "page": 2}).json()

    assert first["count"] == 3
    assert [item["name"] for item in first["results"]] == ["Lobby 2", "Lobby 1"]
    assert first["previous"] is None
    assert first["next"].endswith("page=2&page_size=2")
    assert [item["name"] for item in second["results"]] == ["Lobby 0"]
    assert second["next"] is None


def test_list_page_past_the_end_is_404(api, lobby_of):
    lobby_of(PlayerFactory())

    response = api.get(LOBBIES, {"page": 2})

    assert error(response) == (404, "not_found")


# --- Detail ------------------------------------------------------------------------------------


def test_detail_shows_the_join_code_to_members(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), player)

    response = api.get(url(lobby))

    assert response.status_code == 200
    assert response.json()["join_code"] == lobby.join_code
    assert member_ids(response.json()) == [lobby.host_id, player.pk]


def test_detail_hides_the_join_code_from_outsiders(api, lobby_of):
    host = PlayerFactory()
    lobby = lobby_of(host)

    response = api.get(url(lobby))

    assert response.status_code == 200
    assert response.json()["join_code"] is None
    assert response.json()["members"] == [
        {"id": host.pk, "display_name": host.display_name, "ready": False, "is_host": True}
    ]


def test_detail_of_a_private_lobby_is_404_to_outsiders(api, lobby_of):
    lobby = lobby_of(PlayerFactory(), visibility="private")

    response = api.get(url(lobby))

    assert error(response) == (404, "lobby_not_found")


def test_detail_of_a_private_lobby_is_shown_to_members(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), player, visibility="private")

    response = api.get(url(lobby))

    assert response.status_code == 200
    assert response.json()["join_code"] == lobby.join_code


def test_detail_of_an_unknown_lobby_is_404(api):
    response = api.get(f"{LOBBIES}/00000000-0000-4000-8000-000000000000")

    assert error(response) == (404, "lobby_not_found")


# --- Join --------------------------------------------------------------------------------------


def test_join_public_lobby_by_id(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory())

    response = api.post(url(lobby, "join"))

    assert response.status_code == 200
    body = response.json()
    assert member_ids(body) == [lobby.host_id, player.pk]
    assert body["member_count"] == 2
    assert body["version"] == lobby.version + 1
    assert body["join_code"] == lobby.join_code  # a member now


def test_join_by_id_refuses_a_private_lobby_as_if_it_did_not_exist(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), visibility="private")

    response = api.post(url(lobby, "join"))

    assert error(response) == (404, "lobby_not_found")
    assert not Membership.objects.filter(player=player).exists()


def test_join_of_an_unknown_lobby_is_404(api):
    response = api.post(f"{LOBBIES}/00000000-0000-4000-8000-000000000000/join")

    assert error(response) == (404, "lobby_not_found")


def test_joining_again_changes_nothing(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), player)

    response = api.post(url(lobby, "join"))

    assert response.status_code == 200
    assert response.json()["version"] == lobby.version
    assert response.json()["member_count"] == 2


def test_join_refuses_when_already_in_another_lobby(api, player, lobby_of):
    lobby_of(PlayerFactory(), player)
    other = lobby_of(PlayerFactory())

    response = api.post(url(other, "join"))

    assert error(response) == (409, "already_in_lobby")
    assert Lobby.objects.get(pk=other.pk).member_count == 1


def test_join_refuses_when_lobby_full(api, lobby_of):
    lobby = lobby_of(PlayerFactory(), PlayerFactory(), max_players=2)

    response = api.post(url(lobby, "join"))

    assert error(response) == (409, "lobby_full")
    assert Lobby.objects.get(pk=lobby.pk).member_count == 2


def test_join_refuses_a_closed_lobby(api, lobby_of):
    lobby = lobby_of(PlayerFactory())
    services.lobby_end(lobby_id=lobby.pk, player=lobby.host)

    response = api.post(url(lobby, "join"))

    assert error(response) == (409, "lobby_closed")


def test_join_refuses_after_start_when_not_joinable_after_start(api, lobby_of, start_match):
    guest = PlayerFactory()
    lobby = lobby_of(PlayerFactory(), guest, joinable_after_start=False)
    start_match(lobby, guest)

    response = api.post(url(lobby, "join"))

    assert error(response) == (409, "lobby_started")


def test_join_after_start_gets_a_relay_seat_when_joinable_after_start(
    api, player, lobby_of, start_match
):
    guest = PlayerFactory()
    lobby = lobby_of(PlayerFactory(), guest)
    start_match(lobby, guest)

    response = api.post(url(lobby, "join"), REMOTE_ADDR="198.51.100.77")

    assert response.status_code == 200
    assert response.json()["state"] == "allocating"
    assert player.pk in member_ids(response.json())
    seat = Seat.objects.get(session__lobby=lobby, holder=f"player:{player.pk}")
    assert (seat.ip, seat.role) == ("198.51.100.77", "client")
    assignment = api.get("/api/v1/players/me/assignment").json()
    assert (assignment["status"], assignment["role"]) == ("pending", "client")


def test_join_refuses_a_kicked_player(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), player)
    services.lobby_kick(lobby_id=lobby.pk, player=lobby.host, target_id=player.pk)

    by_id = api.post(url(lobby, "join"))
    by_code = api.post(JOIN_BY_CODE, {"code": lobby.join_code}, format="json")

    assert error(by_id) == (403, "kicked")
    assert error(by_code) == (403, "kicked")


def test_join_by_code_is_case_insensitive_and_reaches_private_lobbies(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), visibility="private")

    response = api.post(JOIN_BY_CODE, {"code": f"  {lobby.join_code.lower()} "}, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == str(lobby.pk)
    assert member_ids(response.json()) == [lobby.host_id, player.pk]
    assert response.json()["join_code"] == lobby.join_code


def test_join_by_wrong_code_is_404(api, player, lobby_of):
    lobby_of(PlayerFactory(), visibility="private")

    response = api.post(JOIN_BY_CODE, {"code": "ZZZZZZZZ"}, format="json")

    assert error(response) == (404, "wrong_code")
    assert not Membership.objects.filter(player=player).exists()


def test_join_by_the_code_of_a_closed_lobby_is_404(api, lobby_of):
    lobby = lobby_of(PlayerFactory())
    services.lobby_end(lobby_id=lobby.pk, player=lobby.host)

    response = api.post(JOIN_BY_CODE, {"code": lobby.join_code}, format="json")

    assert error(response) == (404, "wrong_code")


def test_join_by_code_refuses_a_missing_code(api):
    response = api.post(JOIN_BY_CODE, {}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == "code: This field is required."


# --- Leave -------------------------------------------------------------------------------------


def test_leave_removes_the_member(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)

    response = client_for(guest).post(url(lobby, "leave"))

    assert response.status_code == 204
    detail = client_for(host).get(url(lobby)).json()
    assert member_ids(detail) == [host.pk]
    assert detail["member_count"] == 1


def test_host_leaving_before_start_hands_host_to_the_longest_standing_member(client_for, lobby_of):
    host, early, late = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, early, late)
    # `early` steps out and back in: `late` has now been in the lobby the longest.
    services.lobby_leave(lobby_id=lobby.pk, player=early)
    services.lobby_join(lobby_id=lobby.pk, player=early, ip="192.0.2.9")

    response = client_for(host).post(url(lobby, "leave"))

    assert response.status_code == 204
    detail = client_for(late).get(url(lobby)).json()
    assert detail["host_id"] == late.pk
    assert detail["state"] == "open"
    assert [(m["id"], m["is_host"]) for m in detail["members"]] == [
        (late.pk, True),
        (early.pk, False),
    ]


def test_last_member_leaving_closes_the_lobby(api, player, lobby_of):
    lobby = lobby_of(player)

    response = api.post(url(lobby, "leave"))

    assert response.status_code == 204
    detail = api.get(url(lobby)).json()
    assert (detail["state"], detail["member_count"], detail["members"]) == ("closed", 0, [])
    assert api.get(LOBBIES).json()["count"] == 0


def test_host_leaving_after_start_closes_the_lobby(client_for, lobby_of, start_match):
    host, guest, other = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest, other)
    start_match(lobby, guest, other)

    response = client_for(host).post(url(lobby, "leave"))

    assert response.status_code == 204
    detail = client_for(guest).get(url(lobby)).json()
    assert (detail["state"], detail["members"]) == ("closed", [])
    closed = client_for(guest).get("/api/v1/players/me/events").json()["events"][-1]
    assert (closed["type"], closed["data"]["reason"]) == ("lobby.closed", "host_left")
    assert RelaySession.objects.get(lobby=lobby).status == RelaySession.Status.CLOSING


def test_leave_refuses_a_non_member(api, lobby_of):
    lobby = lobby_of(PlayerFactory())

    response = api.post(url(lobby, "leave"))

    assert error(response) == (403, "not_a_member")


def test_a_player_who_left_may_join_another_lobby(api, player, lobby_of):
    first = lobby_of(PlayerFactory(), player)
    second = lobby_of(PlayerFactory())
    assert api.post(url(first, "leave")).status_code == 204

    response = api.post(url(second, "join"))

    assert response.status_code == 200


# --- Ready -------------------------------------------------------------------------------------


def test_ready_toggles_the_callers_readiness(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), player)

    ready = api.post(url(lobby, "ready"), {"ready": True}, format="json")
    unready = api.post(url(lobby, "ready"), {"ready": False}, format="json")

    assert ready.status_code == 200
    assert [(m["id"], m["ready"]) for m in ready.json()["members"]] == [
        (lobby.host_id, False),
        (player.pk, True),
    ]
    assert unready.status_code == 200
    assert [m["ready"] for m in unready.json()["members"]] == [False, False]
    assert unready.json()["version"] == ready.json()["version"] + 1


def test_ready_refuses_after_start(client_for, lobby_of, start_match):
    guest = PlayerFactory()
    lobby = lobby_of(PlayerFactory(), guest)
    start_match(lobby, guest)

    response = client_for(guest).post(url(lobby, "ready"), {"ready": False}, format="json")

    assert error(response) == (409, "wrong_state")


def test_ready_refuses_a_non_member(api, lobby_of):
    lobby = lobby_of(PlayerFactory())

    response = api.post(url(lobby, "ready"), {"ready": True}, format="json")

    assert error(response) == (403, "not_a_member")


def test_ready_refuses_a_missing_flag(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), player)

    response = api.post(url(lobby, "ready"), {}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == "ready: This field is required."


# --- Kick --------------------------------------------------------------------------------------


def test_host_kicks_a_member(client_for, lobby_of):
    host, guest, other = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest, other)

    response = client_for(host).post(url(lobby, "kick"), {"player_id": guest.pk}, format="json")

    assert response.status_code == 200
    assert member_ids(response.json()) == [host.pk, other.pk]
    assert error(client_for(guest).post(url(lobby, "ready"), {"ready": True}, format="json")) == (
        403,
        "not_a_member",
    )


def test_kick_refuses_a_non_host(client_for, lobby_of):
    host, guest, other = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest, other)

    response = client_for(guest).post(url(lobby, "kick"), {"player_id": other.pk}, format="json")

    assert error(response) == (403, "not_host")
    assert Lobby.objects.get(pk=lobby.pk).member_count == 3


def test_kick_refuses_an_outsider(api, lobby_of):
    guest = PlayerFactory()
    lobby = lobby_of(PlayerFactory(), guest)

    response = api.post(url(lobby, "kick"), {"player_id": guest.pk}, format="json")

    assert error(response) == (403, "not_a_member")


def test_host_cannot_kick_itself(client_for, lobby_of):
    host = PlayerFactory()
    lobby = lobby_of(host, PlayerFactory())

    response = client_for(host).post(url(lobby, "kick"), {"player_id": host.pk}, format="json")

    assert error(response) == (409, "cannot_kick_self")


def test_kick_of_a_player_not_in_the_lobby_is_404(client_for, lobby_of):
    host = PlayerFactory()
    lobby = lobby_of(host, PlayerFactory())
    stranger = PlayerFactory()

    response = client_for(host).post(url(lobby, "kick"), {"player_id": stranger.pk}, format="json")

    assert error(response) == (404, "target_not_in_lobby")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "player_id: This field is required."),
        ({"player_id": "abc"}, "player_id: A valid integer is required."),
        ({"player_id": 0}, "player_id: Ensure this value is greater than or equal to 1."),
    ],
)
def test_kick_refuses_a_bad_player_id(client_for, lobby_of, body, message):
    host = PlayerFactory()
    lobby = lobby_of(host, PlayerFactory())

    response = client_for(host).post(url(lobby, "kick"), body, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == message


def test_kick_after_start_revokes_the_relay_seat(client_for, lobby_of, start_match):
    host, guest, other = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest, other)
    start_match(lobby, guest, other)

    response = client_for(host).post(url(lobby, "kick"), {"player_id": guest.pk}, format="json")

    assert response.status_code == 200
    assert Seat.objects.get(session__lobby=lobby, holder=f"player:{guest.pk}").revoked
    assignment = client_for(guest).get("/api/v1/players/me/assignment")
    assert error(assignment) == (404, "no_assignment")


# --- Transfer host -----------------------------------------------------------------------------


def test_host_transfers_host_to_a_member(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)

    response = client_for(host).post(
        url(lobby, "transfer-host"), {"player_id": guest.pk}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["host_id"] == guest.pk
    assert [(m["id"], m["is_host"]) for m in response.json()["members"]] == [
        (host.pk, False),
        (guest.pk, True),
    ]
    old_host_start = client_for(host).post(url(lobby, "start"))
    assert error(old_host_start) == (403, "not_host")


def test_transfer_host_refuses_a_non_host(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)

    response = client_for(guest).post(
        url(lobby, "transfer-host"), {"player_id": guest.pk}, format="json"
    )

    assert error(response) == (403, "not_host")


def test_transfer_host_refuses_after_start(client_for, lobby_of, start_match):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)

    response = client_for(host).post(
        url(lobby, "transfer-host"), {"player_id": guest.pk}, format="json"
    )

    assert error(response) == (409, "wrong_state")
    assert Lobby.objects.get(pk=lobby.pk).host_id == host.pk


def test_transfer_host_to_a_player_not_in_the_lobby_is_404(client_for, lobby_of):
    host = PlayerFactory()
    lobby = lobby_of(host, PlayerFactory())

    response = client_for(host).post(
        url(lobby, "transfer-host"), {"player_id": PlayerFactory().pk}, format="json"
    )

    assert error(response) == (404, "target_not_in_lobby")


# --- Start -------------------------------------------------------------------------------------


def test_host_starts_when_everyone_is_ready(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    for member in (host, guest):
        client_for(member).post(url(lobby, "ready"), {"ready": True}, format="json")

    response = client_for(host).post(url(lobby, "start"))

    assert response.status_code == 200
    assert response.json()["state"] == "allocating"
    session = RelaySession.objects.get(lobby=lobby)
    assert session.status == RelaySession.Status.PENDING
    assert [(s.holder, s.role) for s in session.seats.all()] == [
        (f"player:{host.pk}", "server"),
        (f"player:{guest.pk}", "client"),
    ]


def test_start_refuses_when_not_everyone_is_ready(client_for, lobby_of):
    host = PlayerFactory()
    waiting = PlayerFactory(display_name="Slowpoke")
    lobby = lobby_of(host, waiting)
    client_for(host).post(url(lobby, "ready"), {"ready": True}, format="json")

    response = client_for(host).post(url(lobby, "start"))

    assert error(response) == (409, "not_ready")
    assert response.json()["error"]["message"] == "Not everyone is ready: Slowpoke."
    assert Lobby.objects.get(pk=lobby.pk).state == "open"


def test_start_refuses_with_not_enough_players(client_for, lobby_of):
    host = PlayerFactory()
    lobby = lobby_of(host)
    client_for(host).post(url(lobby, "ready"), {"ready": True}, format="json")

    response = client_for(host).post(url(lobby, "start"))

    assert error(response) == (409, "not_enough_players")


def test_start_refuses_a_non_host(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)

    response = client_for(guest).post(url(lobby, "start"))

    assert error(response) == (403, "not_host")


def test_start_refuses_when_already_started(client_for, lobby_of, start_match):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)

    response = client_for(host).post(url(lobby, "start"))

    assert error(response) == (409, "wrong_state")


def test_start_again_after_the_relay_failed(client_for, lobby_of, start_match):
    from django.db import transaction

    from relays import signals

    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)
    failed = RelaySession.objects.get(lobby=lobby)
    with transaction.atomic():
        RelaySession.objects.filter(pk=failed.pk).update(status=RelaySession.Status.FAILED)
        signals.session_failed.send(sender=RelaySession, session=failed, reason="timed out")
    assert client_for(host).get(url(lobby)).json()["failure_reason"] == "timed out"

    response = client_for(host).post(url(lobby, "start"))

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["failure_reason"]) == ("allocating", None)
    assert Lobby.objects.get(pk=lobby.pk).relay_session_id != failed.pk


# --- End ---------------------------------------------------------------------------------------


def test_host_ends_the_lobby(client_for, lobby_of, start_match):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    start_match(lobby, guest)

    response = client_for(host).post(url(lobby, "end"))

    assert response.status_code == 204
    detail = client_for(host).get(url(lobby)).json()
    assert (detail["state"], detail["members"]) == ("closed", [])
    assert RelaySession.objects.get(lobby=lobby).status == RelaySession.Status.CLOSING
    assert error(client_for(guest).get("/api/v1/players/me/assignment")) == (404, "no_assignment")


def test_end_refuses_a_non_host(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)

    response = client_for(guest).post(url(lobby, "end"))

    assert error(response) == (403, "not_host")
    assert Lobby.objects.get(pk=lobby.pk).state == "open"


# --- The player's address ----------------------------------------------------------------------


def _created_membership_ip(api, **headers):
    response = api.post(LOBBIES, {"name": "L"}, format="json", **headers)
    assert response.status_code == 201
    return Membership.objects.get(lobby_id=response.json()["id"]).ip


def test_forwarded_for_is_ignored_without_trusted_proxies(api, settings):
    settings.TRUSTED_PROXIES = []

    ip = _created_membership_ip(
        api, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.99"
    )

    assert ip == "198.51.100.7"


def test_forwarded_for_is_ignored_from_an_untrusted_peer(api, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    ip = _created_membership_ip(
        api, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.99"
    )

    assert ip == "198.51.100.7"


@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "expected"),
    [
        (["10.0.0.1"], "203.0.113.99", "203.0.113.99"),
        # What the client wrote itself is left of what our proxy saw: not believed.
        (["10.0.0.1"], "6.6.6.6, 203.0.113.99", "203.0.113.99"),
        (["10.0.0.1", "10.0.0.2"], "6.6.6.6, 203.0.113.99, 10.0.0.2", "203.0.113.99"),
        (["10.0.0.1"], "2001:DB8::1", "2001:db8::1"),
        (["10.0.0.1"], "not-an-ip", "10.0.0.1"),
        (["10.0.0.1"], "", "10.0.0.1"),
    ],
)
def test_forwarded_for_from_a_trusted_proxy_gives_the_client_address(
    api, settings, trusted, forwarded_for, expected
):
    settings.TRUSTED_PROXIES = trusted

    ip = _created_membership_ip(api, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for)

    assert ip == expected


def test_ready_records_the_players_latest_address(api, player, lobby_of):
    lobby = lobby_of(PlayerFactory(), player)

    api.post(url(lobby, "ready"), {"ready": True}, format="json", REMOTE_ADDR="192.0.2.200")

    assert Membership.objects.get(lobby=lobby, player=player).ip == "192.0.2.200"
