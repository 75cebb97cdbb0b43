"""Lobby chat (issue 15): members only, limits in the API's error shape, `lobby.message` events
on the ordered stream, the last messages on load, mutes, pruning with the events."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lobby import services as lobby_services
from lobby.models import Lobby
from moderation.models import ChatMessage
from moderation.services import messages_prune
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/players/me/events"


def chat(lobby):
    return f"/api/v1/lobbies/{lobby.pk}/messages"


def say(client, lobby, text):
    return client.post(chat(lobby), {"text": text}, format="json")


def error(response):
    return response.status_code, response.json()["error"]["code"]


def messages_seen(client, after=0):
    events = client.get(EVENTS, {"after": after}).json()["events"]
    return [
        (e["data"]["sender_id"], e["data"]["text"]) for e in events if e["type"] == "lobby.message"
    ]


def test_a_members_message_reaches_every_member_with_sender_id_and_name(client_for, lobby_of):
    host, guest, outsider = PlayerFactory(display_name="Host"), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)

    response = say(client_for(guest), lobby, "  <b>gl hf</b> & <script>x()</script>  ")

    assert response.status_code == 201, response.content
    body = response.json()
    # Stored and sent as the text it is (trimmed), never escaped or turned into HTML here.
    assert body["text"] == "<b>gl hf</b> & <script>x()</script>"
    assert (body["sender_id"], body["display_name"]) == (guest.pk, guest.display_name)
    for member in (host, guest):
        events = client_for(member).get(EVENTS).json()["events"]
        message = [e for e in events if e["type"] == "lobby.message"]
        assert [m["data"] for m in message] == [body]
        # On the same ordered stream as the lobby's other events.
        assert message[0]["seq"] == events[-1]["seq"]
    assert messages_seen(client_for(outsider)) == []


def test_only_members_may_chat_or_read_it(client_for, lobby_of):
    host, outsider, left = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, left)
    lobby_services.lobby_leave(lobby_id=lobby.pk, player=left)
    private = lobby_of(PlayerFactory(), visibility="private")

    assert error(say(client_for(outsider), lobby, "hi")) == (403, "not_a_member")
    assert error(say(client_for(left), lobby, "hi")) == (403, "not_a_member")
    assert error(client_for(outsider).get(chat(lobby))) == (403, "not_a_member")
    # A private lobby's existence stays hidden from outsiders, as on its detail.
    assert error(say(client_for(outsider), private, "hi")) == (404, "lobby_not_found")
    assert error(client_for(outsider).get(chat(private))) == (404, "lobby_not_found")
    assert ChatMessage.objects.count() == 0


@pytest.mark.parametrize(
    "text, field_problem",
    [
        ("", "blank"),
        ("    ", "blank"),
        ("x" * 501, "no more than 500 characters"),
        ("line one\nline two", "Control characters"),
        ("tab\there", "Control characters"),
        ("bell\x07", "Control characters"),
        ("\u202eevil", "Control characters"),
        ("next\x85line", "Control characters"),
    ],
)
def test_limits_are_refused_in_the_apis_error_shape(api, player, lobby_of, text, field_problem):
    lobby = lobby_of(player)

    response = say(api, lobby, text)

    assert error(response) == (400, "invalid")
    body = response.json()["error"]
    assert body["message"].startswith("text: ")
    assert field_problem.lower() in body["message"].lower()
    assert ChatMessage.objects.count() == 0


def test_the_longest_message_and_emoji_sequences_pass(api, player, lobby_of):
    lobby = lobby_of(player)

    assert say(api, lobby, "x" * 500).status_code == 201
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # joined by zero-width joiners
    assert say(api, lobby, f"gg {family}").json()["text"] == f"gg {family}"


def test_nul_and_non_text_are_refused_by_the_input_policy(api, player, lobby_of):
    lobby = lobby_of(player)

    nul = api.post(chat(lobby), '{"text": "a\\u0000b"}', content_type="application/json")
    number = say(api, lobby, 12)

    assert error(nul) == (400, "invalid")
    assert error(number) == (400, "invalid")


def test_a_player_sending_too_fast_is_throttled_with_retry_after(
    api, player, lobby_of, throttle_rates
):
    throttle_rates(chat="3/min", chat_burst="100/s")
    lobby = lobby_of(player)

    statuses = [say(api, lobby, f"line {n}").status_code for n in range(4)]
    refused = say(api, lobby, "once more")

    assert statuses == [201, 201, 201, 429]
    assert error(refused) == (429, "throttled")
    assert refused.json()["error"]["retry_after"] >= 1
    assert refused.headers["Retry-After"]
    assert ChatMessage.objects.count() == 3


def test_the_burst_limit_holds_within_a_second(api, player, lobby_of):
    lobby = lobby_of(player)  # the defaults: 3 a second

    statuses = [say(api, lobby, f"spam {n}").status_code for n in range(5)]

    assert statuses.count(201) == 3 and statuses[-1] == 429


def test_the_last_messages_load_oldest_first(client_for, lobby_of):
    host, guest = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest)
    for n in range(3):
        lobby_services_say(lobby, host if n % 2 == 0 else guest, f"m{n}")

    body = client_for(guest).get(chat(lobby)).json()

    assert [m["text"] for m in body["messages"]] == ["m0", "m1", "m2"]


def lobby_services_say(lobby, player, text):
    from moderation.services import chat_post

    return chat_post(lobby_id=lobby.pk, player=player, text=text)


def test_at_most_fifty_messages_load(client_for, lobby_of):
    host = PlayerFactory()
    lobby = lobby_of(host)
    for n in range(55):
        lobby_services_say(lobby, host, f"m{n}")

    texts = [m["text"] for m in client_for(host).get(chat(lobby)).json()["messages"]]

    assert texts == [f"m{n}" for n in range(5, 55)]


# --- Mute --------------------------------------------------------------------------------------


def test_muting_hides_a_sender_from_the_muters_stream_and_page_only(client_for, lobby_of):
    host, rude, other = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, rude, other)
    lobby_services_say(lobby, rude, "before")
    mine = client_for(host)

    muted = mine.post("/api/v1/players/me/mutes", {"player_id": rude.pk}, format="json")
    lobby_services_say(lobby, rude, "after")
    lobby_services_say(lobby, other, "hello")

    assert muted.status_code == 201
    assert muted.json()["player_id"] == rude.pk
    # The muter's stream has nothing from the rude player after the mute...
    assert messages_seen(mine) == [(rude.pk, "before"), (other.pk, "hello")]
    # ...and the page's "last messages" leave them all out.
    assert [m["text"] for m in mine.get(chat(lobby)).json()["messages"]] == ["hello"]
    # Everyone else still sees them.
    assert (rude.pk, "after") in messages_seen(client_for(other))
    assert [m["text"] for m in client_for(other).get(chat(lobby)).json()["messages"]] == [
        "before",
        "after",
        "hello",
    ]


def test_unmuting_shows_the_sender_again(client_for, lobby_of):
    host, rude = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, rude)
    mine = client_for(host)
    mine.post("/api/v1/players/me/mutes", {"player_id": rude.pk}, format="json")
    lobby_services_say(lobby, rude, "hidden")

    assert mine.delete(f"/api/v1/players/me/mutes/{rude.pk}").status_code == 204
    lobby_services_say(lobby, rude, "back")

    assert messages_seen(mine) == [(rude.pk, "back")]
    assert [m["text"] for m in mine.get(chat(lobby)).json()["messages"]] == ["hidden", "back"]
    assert mine.get("/api/v1/players/me/mutes").json() == []


def test_mute_rules(client_for, player, api):
    other = PlayerFactory()

    twice = [
        api.post("/api/v1/players/me/mutes", {"player_id": other.pk}, format="json")
        for _ in range(2)
    ]

    assert [r.status_code for r in twice] == [201, 201]  # idempotent
    assert [m["player_id"] for m in api.get("/api/v1/players/me/mutes").json()] == [other.pk]
    me = api.post("/api/v1/players/me/mutes", {"player_id": player.pk}, format="json")
    assert error(me) == (400, "cannot_mute_self")
    nobody = api.post("/api/v1/players/me/mutes", {"player_id": 99999999}, format="json")
    assert error(nobody) == (404, "player_not_found")


# --- Pruning -----------------------------------------------------------------------------------


def test_messages_of_a_closed_lobby_are_pruned_with_the_events(settings, lobby_of):
    settings.EVENT_RETENTION = 3600
    host = PlayerFactory()
    closed, live = lobby_of(host), lobby_of(PlayerFactory())
    lobby_services_say(closed, host, "old")
    lobby_services_say(live, live.host, "still here")
    lobby_services.lobby_close(lobby_id=closed.pk, reason="ended")
    Lobby.objects.filter(pk=closed.pk).update(closed_at=timezone.now() - timedelta(hours=2))
    # A lobby closed recently keeps its chat for now.
    recent = lobby_of(PlayerFactory())
    lobby_services_say(recent, recent.host, "recent")
    lobby_services.lobby_close(lobby_id=recent.pk, reason="ended")

    assert messages_prune() == 1

    assert sorted(ChatMessage.objects.values_list("text", flat=True)) == ["recent", "still here"]
