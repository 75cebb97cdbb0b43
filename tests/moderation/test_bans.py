"""Bans (issue 15): a banned player is refused at every door with a clear error saying until when,
and is removed from what it is in through the services; plus the host's kick cooldown."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lobby import services as lobby_services
from lobby.models import Membership
from matchmaking import services as matchmaking_services
from matchmaking.models import Profile, Ticket
from moderation import services
from moderation.models import AuditEntry, Ban
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db
SOLO = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 2},
        }
    }
}


@pytest.fixture(autouse=True)
def _no_relay_tasks(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        yield


@pytest.fixture
def profile():
    return Profile.objects.create(name="duel", title="Duel", rules=SOLO, mode="duel")


def error(response):
    return response.status_code, response.json()["error"]


def ban(player, operator, hours=24, reason="Harassing other players"):
    duration = timedelta(hours=hours) if hours is not None else None
    return services.ban_create(player=player, reason=reason, duration=duration, actor=operator)


def test_a_banned_player_is_refused_everywhere_saying_until_when(
    client_for, lobby_of, profile, operator
):
    banned = PlayerFactory()
    open_lobby = lobby_of(PlayerFactory())
    the_ban = ban(banned, operator, hours=24)
    api = client_for(banned)
    until = the_ban.expires_at.strftime("%Y-%m-%d %H:%M UTC")

    answers = {
        "create": api.post("/api/v1/lobbies", {"name": "mine"}, format="json"),
        "join": api.post(f"/api/v1/lobbies/{open_lobby.pk}/join"),
        "join by code": api.post(
            "/api/v1/lobbies/join", {"code": open_lobby.join_code}, format="json"
        ),
        "queue": api.post(
            "/api/v1/matchmaking/tickets", {"profile": "duel", "attributes": {}}, format="json"
        ),
    }

    for door, response in answers.items():
        status, body = error(response)
        assert (door, status, body["code"]) == (door, 403, "banned")
        assert body["message"] == f"You are banned until {until}. Reason: Harassing other players"
        assert body["banned_until"] == the_ban.expires_at.isoformat().replace("+00:00", "Z")
        assert body["reason"] == "Harassing other players"
    assert not Membership.objects.filter(player=banned).exists()
    assert not Ticket.objects.filter(player=banned).exists()


def test_a_banned_member_cannot_chat(client_for, lobby_of, operator):
    host, banned = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host)
    ban(banned, operator, hours=None)
    # Even were it still in a lobby (the removal is tested below), its words stay out.
    response = client_for(banned).post(
        f"/api/v1/lobbies/{lobby.pk}/messages", {"text": "hi"}, format="json"
    )

    status, body = error(response)
    assert (status, body["code"], body["banned_until"]) == (403, "banned", None)
    assert body["message"].startswith("You are banned for good.")


def test_a_party_with_a_banned_member_cannot_queue(client_for, profile, operator):
    leader, member = PlayerFactory(), PlayerFactory()
    party = matchmaking_services.party_create(player=leader, ip="203.0.113.1")
    ban(member, operator)
    # A ban takes a player out of its party; joining one again is not a door bans close...
    matchmaking_services.party_join(code=party.code, player=member, ip="203.0.113.2")

    response = client_for(leader).post(
        "/api/v1/matchmaking/tickets", {"profile": "duel", "attributes": {}}, format="json"
    )

    # ...but queueing the party is.
    status, body = error(response)
    assert (status, body["code"]) == (403, "party_member_banned")
    assert body["message"].startswith("A member of your party is banned until ")
    assert not Ticket.objects.exists()


def test_a_ban_takes_the_player_out_of_its_party(operator):
    leader, member = PlayerFactory(), PlayerFactory()
    party = matchmaking_services.party_create(player=leader, ip="203.0.113.1")
    matchmaking_services.party_join(code=party.code, player=member, ip="203.0.113.2")

    ban(member, operator)

    assert list(party.members.filter(active=True).values_list("player_id", flat=True)) == [
        leader.pk
    ]


def test_banning_removes_the_player_from_its_lobby_and_tells_everyone(
    lobby_of, events_of, operator
):
    host, guest, banned = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, guest, banned)
    seen = {p.pk: p.event_seq for p in (host, guest, banned)}
    for p in (host, guest, banned):
        p.refresh_from_db()
        seen[p.pk] = p.event_seq

    ban(banned, operator)

    lobby.refresh_from_db()
    assert lobby.member_count == 2
    assert Membership.objects.get(lobby=lobby, player=banned).state == Membership.State.LEFT
    told = events_of(banned, after=seen[banned.pk])
    assert [t for t, _ in told] == ["player.banned", "lobby.updated"]
    assert told[0][1]["reason"] == "Harassing other players"
    assert told[0][1]["message"].startswith("You are banned until ")
    for other in (host, guest):
        (kind, snapshot), *_ = events_of(other, after=seen[other.pk])
        assert kind == "lobby.updated"
        assert banned.pk not in [m["id"] for m in snapshot["members"]]


def test_banning_a_started_lobbys_member_revokes_its_relay_seat(lobby_of, start_match, operator):
    host, banned = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, banned, PlayerFactory())
    start_match(lobby, *[m.player for m in lobby.memberships.exclude(player=host)])

    ban(banned, operator)

    lobby.refresh_from_db()
    seat = lobby.relay_session.seats.get(holder=f"player:{banned.pk}")
    assert seat.revoked
    assert lobby.state == "allocating" and lobby.member_count == 2


def test_banning_cancels_the_players_searches(profile, operator, events_of):
    banned = PlayerFactory()
    ticket, _ = matchmaking_services.ticket_create(
        player=banned, profile_name="duel", attributes={}, ip="203.0.113.1"
    )

    ban(banned, operator)

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CANCELLED
    assert ("ticket.updated", "cancelled") in [
        (t, d.get("status")) for t, d in events_of(banned) if t == "ticket.updated"
    ]


def test_an_expired_or_lifted_ban_admits_again(client_for, operator):
    player = PlayerFactory()
    expired = ban(player, operator)
    Ban.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    lifted = ban(player, operator, hours=None)
    api = client_for(player)
    assert error(api.post("/api/v1/lobbies", {"name": "x"}, format="json"))[0] == 403

    assert services.ban_lift(ban=lifted, actor=operator, reason="appeal accepted")
    assert not services.ban_lift(ban=lifted, actor=operator, reason="twice")

    assert api.post("/api/v1/lobbies", {"name": "x"}, format="json").status_code == 201


def test_bans_and_unbans_are_in_the_audit_log(operator):
    player = PlayerFactory(display_name="Mallory")

    the_ban = ban(player, operator, hours=2, reason="spam")
    services.ban_lift(ban=the_ban, actor=operator, reason="mistake")

    entries = list(AuditEntry.objects.order_by("pk").values("actor_name", "action", "reason"))
    assert entries == [
        {"actor_name": "opal", "action": "ban", "reason": "spam"},
        {"actor_name": "opal", "action": "unban", "reason": "mistake"},
    ]
    assert AuditEntry.objects.filter(target_repr="Mallory", target_id=str(player.pk)).count() == 2


def test_a_ban_needs_a_reason_and_a_positive_duration(operator):
    player = PlayerFactory()
    with pytest.raises(services.Invalid):
        services.ban_create(player=player, reason="  ", duration=None, actor=operator)
    with pytest.raises(services.Invalid):
        services.ban_create(player=player, reason="x", duration=timedelta(0), actor=operator)
    assert not Ban.objects.exists()


# --- The host's kick: a cooldown, not forever ------------------------------------------------


def test_a_kicked_player_stays_out_for_the_cooldown_then_may_rejoin(client_for, lobby_of, settings):
    settings.LOBBY_KICK_COOLDOWN = 600
    host, kicked = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, kicked)
    lobby_services.lobby_kick(lobby_id=lobby.pk, player=host, target_id=kicked.pk)
    api = client_for(kicked)

    status, body = error(api.post(f"/api/v1/lobbies/{lobby.pk}/join"))

    assert (status, body["code"]) == (403, "kicked")
    membership = Membership.objects.get(lobby=lobby, player=kicked)
    until = membership.ended_at + timedelta(seconds=600)
    assert body["until"] == until.isoformat().replace("+00:00", "Z")
    assert f"after {until:%H:%M:%S} UTC" in body["message"]
    # The cooldown passes.
    Membership.objects.filter(pk=membership.pk).update(
        ended_at=timezone.now() - timedelta(seconds=601)
    )
    assert api.post(f"/api/v1/lobbies/{lobby.pk}/join").status_code == 200
    # Kicked again: the latest kick counts.
    lobby_services.lobby_kick(lobby_id=lobby.pk, player=host, target_id=kicked.pk)
    assert error(api.post(f"/api/v1/lobbies/{lobby.pk}/join"))[1]["code"] == "kicked"
