"""Tickets, parties and the matcher pass against the database (the algorithm itself is tested in
test_matcher.py; the whole flow through a real worker in tests/e2e/test_matchmaking_live.py)."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from config.locks import exclusive
from lobby import services as lobby_services
from lobby.errors import Conflict, Forbidden
from lobby.models import Lobby, PlayerEvent
from matchmaking import services
from matchmaking.models import Profile, Ticket

pytestmark = pytest.mark.django_db

TEAMS_2X2 = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
        },
        "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
    }
}


@pytest.fixture(autouse=True)
def _no_relay_tasks(django_capture_on_commit_callbacks):
    # Matches start lobbies, which queue relay tasks after commit; none run in these tests.
    with django_capture_on_commit_callbacks(execute=False):
        yield
    cache.clear()


@pytest.fixture
def profile():
    return Profile.objects.create(name="teams", title="Teams", rules=TEAMS_2X2, mode="tdm")


def _player(name="p"):
    return lobby_services.player_create_guest(display_name=name)


def _queue(player, profile, skill, ip="203.0.113.1"):
    ticket, _ = services.ticket_create(
        player=player, profile_name=profile.name, attributes={"skill": skill}, ip=ip
    )
    return ticket


def test_a_second_post_returns_the_same_searching_ticket(profile):
    player, _ = _player()
    first, created = services.ticket_create(
        player=player, profile_name="teams", attributes={"skill": 10}, ip="203.0.113.1"
    )
    again, created_again = services.ticket_create(
        player=player, profile_name="teams", attributes={"skill": 10}, ip="203.0.113.1"
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    other = Profile.objects.create(name="other", rules=TEAMS_2X2)
    with pytest.raises(Conflict) as refused:
        services.ticket_create(
            player=player, profile_name=other.name, attributes={"skill": 1}, ip="203.0.113.1"
        )
    assert refused.value.code == "already_queued"


def test_api_names_a_missing_or_unknown_attribute(profile):
    _, key = _player()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    missing = api.post("/api/v1/matchmaking/tickets", {"profile": "teams"}, format="json")
    unknown = api.post(
        "/api/v1/matchmaking/tickets",
        {"profile": "teams", "attributes": {"skill": 5, "rank": "gold"}},
        format="json",
    )
    wrong_type = api.post(
        "/api/v1/matchmaking/tickets",
        {"profile": "teams", "attributes": {"skill": "high"}},
        format="json",
    )
    assert missing.status_code == unknown.status_code == wrong_type.status_code == 400
    assert missing.json()["error"]["message"].startswith("attributes.skill is missing")
    assert "rank" in unknown.json()["error"]["fields"]["attributes"]
    assert "skill" in wrong_type.json()["error"]["fields"]["attributes"]
    assert not Ticket.objects.exists()


def test_ticket_api_get_delete_and_profiles(profile):
    _, key = _player()
    _, stranger_key = _player("stranger")
    api, other = APIClient(), APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    other.credentials(HTTP_AUTHORIZATION=f"Token {stranger_key}")
    assert [p["name"] for p in api.get("/api/v1/matchmaking/profiles").json()] == ["teams"]
    created = api.post(
        "/api/v1/matchmaking/tickets",
        {"profile": "teams", "attributes": {"skill": 3}},
        format="json",
    )
    assert created.status_code == 201
    url = f"/api/v1/matchmaking/tickets/{created.json()['id']}"
    assert api.get(url).json()["status"] == "searching"
    assert other.get(url).status_code == 404  # someone else's ticket does not exist for you
    cancelled = api.delete(url)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    unknown = api.post(
        "/api/v1/matchmaking/tickets", {"profile": "nope", "attributes": {}}, format="json"
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "profile_not_found")


def test_pass_forms_balanced_teams_and_starts_a_lobby(profile):
    players = [_player(f"p{n}")[0] for n in range(4)]
    tickets = [
        _queue(p, profile, skill) for p, skill in zip(players, [100, 110, 150, 160], strict=True)
    ]
    report = services.matchmaking_pass(profile=profile)
    assert (report.matches, report.matched_tickets) == (1, 4)
    lobby = Lobby.objects.get(pk=report.lobbies[0])
    assert lobby.state == Lobby.State.ALLOCATING  # started: the relay is being allocated
    assert lobby.member_count == lobby.max_players == 4
    teams = lobby.metadata["teams"]
    totals = [sum({p.pk: s for p, s in zip(players, [100, 110, 150, 160], strict=True)}[pid]
                  for pid in team) for team in teams]  # fmt: skip
    assert abs(totals[0] - totals[1]) <= 20  # 100+160 vs 110+150
    for ticket in tickets:
        ticket.refresh_from_db()
        assert (ticket.status, ticket.lobby_id) == (Ticket.Status.MATCHED, lobby.pk)
    updates = PlayerEvent.objects.filter(type="ticket.updated", data__status="matched")
    assert updates.count() == 4


def test_a_party_is_never_split(profile):
    leader, _ = _player("leader")
    friend, _ = _player("friend")
    party = services.party_create(player=leader, ip="203.0.113.5")
    services.party_join(code=party.code.lower(), player=friend, ip="203.0.113.6")
    with pytest.raises(Forbidden):
        services.ticket_create(
            player=friend, profile_name="teams", attributes={"skill": 1}, ip="203.0.113.6"
        )
    party_ticket = _queue(leader, profile, 130)
    assert [m["player_id"] for m in party_ticket.members] == [leader.pk, friend.pk]
    solos = [_player(f"s{n}")[0] for n in range(2)]
    for solo, skill in zip(solos, [100, 160], strict=True):
        _queue(solo, profile, skill)
    report = services.matchmaking_pass(profile=profile)
    assert report.matches == 1
    teams = Lobby.objects.get(pk=report.lobbies[0]).metadata["teams"]
    assert sorted([leader.pk, friend.pk]) in [sorted(team) for team in teams]


def test_a_ticket_cancelled_while_the_pass_runs_is_never_matched(profile, monkeypatch):
    players = [_player(f"p{n}")[0] for n in range(4)]
    tickets = [_queue(p, profile, 100 + n) for n, p in enumerate(players)]
    real_form_matches = services.form_matches

    def cancel_during_the_pass(*args, **kwargs):
        result = real_form_matches(*args, **kwargs)
        services.ticket_cancel(ticket_id=tickets[2].pk, player=players[2])  # the race
        return result

    monkeypatch.setattr(services, "form_matches", cancel_during_the_pass)
    report = services.matchmaking_pass(profile=profile)
    assert (report.matches, report.dropped) == (0, 1)
    statuses = {t.pk: Ticket.objects.get(pk=t.pk).status for t in tickets}
    assert statuses.pop(tickets[2].pk) == Ticket.Status.CANCELLED
    assert set(statuses.values()) == {Ticket.Status.SEARCHING}  # the others search on
    assert not Lobby.objects.exists()


def test_expired_tickets_leave_the_queue_and_their_players_are_told(profile):
    player, _ = _player()
    ticket = _queue(player, profile, 100)
    Ticket.objects.filter(pk=ticket.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    report = services.matchmaking_pass(profile=profile)
    assert report.expired == 1
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.EXPIRED
    assert PlayerEvent.objects.filter(player=player, data__status="expired").exists()


def test_a_lonely_ticket_says_what_it_waits_for(profile):
    player, key = _player()
    ticket = _queue(player, profile, 100)
    services.matchmaking_pass(profile=profile)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    shown = api.get(f"/api/v1/matchmaking/tickets/{ticket.pk}").json()
    assert shown["status"] == "searching"
    assert shown["expansion_step"] == 0
    assert "player_count(match_size)" in shown["blocked_by"]


def test_only_one_pass_per_profile_runs_at_a_time(profile):
    with exclusive(f"matchmaking:pass:{profile.pk}", ttl=30) as held:
        assert held is not None
        assert services.matchmaking_pass(profile=profile) is None
    assert services.matchmaking_pass(profile=profile) is not None  # released with its holder


def test_a_player_who_joined_a_lobby_meanwhile_is_not_seated(profile):
    players = [_player(f"p{n}")[0] for n in range(4)]
    tickets = [_queue(p, profile, 100 + n) for n, p in enumerate(players)]
    host, _ = _player("host")
    lobby = lobby_services.lobby_create(
        player=host, ip="203.0.113.9", name="by hand", max_players=4
    )
    lobby_services.lobby_join(lobby_id=lobby.pk, player=players[0], ip="203.0.113.1")
    report = services.matchmaking_pass(profile=profile)
    assert report.matches == 0
    assert Ticket.objects.get(pk=tickets[0].pk).status == Ticket.Status.CANCELLED
    assert Ticket.objects.filter(status=Ticket.Status.SEARCHING).count() == 3


def test_tickets_of_a_disabled_queue_still_expire(profile):
    player, _ = _player()
    ticket = _queue(player, profile, 100)
    Profile.objects.filter(pk=profile.pk).update(enabled=False)
    Ticket.objects.filter(pk=ticket.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    services.matchmaking_run()
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.EXPIRED


def test_a_racing_duplicate_post_returns_the_ticket_it_lost_to(profile, monkeypatch):
    player, _ = _player()
    first = _queue(player, profile, 100)
    # The race: the "is there one already?" read misses the other request's fresh ticket.
    real_filter = Ticket.objects.filter
    calls = []

    def blind_first_lookup(*args, **kwargs):
        query = real_filter(*args, **kwargs)
        if kwargs.get("player") == player and not calls:
            calls.append(True)
            return query.none()
        return query

    monkeypatch.setattr(Ticket.objects, "filter", blind_first_lookup)
    again, created = services.ticket_create(
        player=player, profile_name="teams", attributes={"skill": 100}, ip="203.0.113.1"
    )
    assert (again.pk, created) == (first.pk, False)


def test_party_members_can_read_their_party_and_others_cannot(profile):
    leader, leader_key = _player("leader")
    friend, _ = _player("friend")
    _, stranger_key = _player("stranger")
    party = services.party_create(player=leader, ip="203.0.113.5")
    services.party_join(code=party.code, player=friend, ip="203.0.113.6")
    member, outsider = APIClient(), APIClient()
    member.credentials(HTTP_AUTHORIZATION=f"Token {leader_key}")
    outsider.credentials(HTTP_AUTHORIZATION=f"Token {stranger_key}")
    shown = member.get(f"/api/v1/matchmaking/parties/{party.pk}").json()
    assert (shown["leader_id"], shown["members"]) == (leader.pk, [leader.pk, friend.pk])
    assert outsider.get(f"/api/v1/matchmaking/parties/{party.pk}").status_code == 404


def test_attributes_that_are_not_an_object_get_a_plain_message(profile):
    _, key = _player()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = api.post(
        "/api/v1/matchmaking/tickets", {"profile": "teams", "attributes": [1]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "attributes: Must be a JSON object."


def test_already_queued_names_the_ticket_to_resume(profile):
    player, key = _player()
    ticket = _queue(player, profile, 100)
    Profile.objects.create(name="other", title="Other", rules=TEAMS_2X2)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = api.post(
        "/api/v1/matchmaking/tickets",
        {"profile": "other", "attributes": {"skill": 1}},
        format="json",
    )
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (409, "already_queued")
    assert (error["ticket_id"], error["profile"]) == (str(ticket.pk), "teams")
