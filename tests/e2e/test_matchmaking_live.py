"""Matchmaking end to end: players queue over HTTP, the beat-driven matcher in a real Celery
worker forms matches, each match becomes a started lobby, and every player receives its relay
assignment from the emulator."""

import time

import pytest

from matchmaking.models import Profile
from tests.e2e.players import ApiPlayer, Transcript, is_ready_assignment

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TEAMS_2X2 = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
        },
        "skill": {"type": "number_difference", "attributes": {"max_difference": 200}},
    }
}


def test_eight_players_queue_and_two_balanced_matches_get_relays(worker_tasks):
    live, transcript = worker_tasks, Transcript()
    Profile.objects.create(name="teams-2x2", title="2 vs 2", rules=TEAMS_2X2, mode="tdm")
    # Two skill groups far apart: a match may only form within one.
    skills = [1000, 1050, 1100, 1150, 2000, 2050, 2100, 2150]
    players = [ApiPlayer(live.base_url, f"q{n}", transcript) for n in range(len(skills))]
    tickets = {}
    for player, skill in zip(players, skills, strict=True):
        body = {"profile": "teams-2x2", "attributes": {"skill": skill}}
        tickets[player.id] = player.call("POST", "/api/v1/matchmaking/tickets", body, 201)["id"]
    # A second POST is idempotent: the same searching ticket.
    again = players[0].call(
        "POST",
        "/api/v1/matchmaking/tickets",
        {"profile": "teams-2x2", "attributes": {"skill": 1000}},
    )
    assert again["id"] == tickets[players[0].id]

    # The worker runs the matcher (the test queues passes, as beat does every second).
    matched = {}
    for player in players:
        for _ in range(60):
            live.enqueue("matchmaking.run")
            time.sleep(0.25)
            ticket = player.call("GET", f"/api/v1/matchmaking/tickets/{tickets[player.id]}")
            if ticket["status"] == "matched":
                matched[player.id] = ticket
                break
        else:
            pytest.fail(f"{player.name} not matched:\n{live.log_tail()}")

    lobbies = {}
    for player in players:
        lobbies.setdefault(matched[player.id]["lobby_id"], []).append(player)
    assert len(lobbies) == 2
    for members in lobbies.values():
        member_skills = sorted(skills[players.index(p)] for p in members)
        assert member_skills[-1] - member_skills[0] <= 200  # the rule held
        lobby = members[0].call("GET", f"/api/v1/lobbies/{matched[members[0].id]['lobby_id']}")
        teams = lobby["metadata"]["teams"]
        assert sorted(len(team) for team in teams) == [2, 2]
        assert {p for team in teams for p in team} == {p.id for p in members}

    # Every player gets its relay assignment, as lobby players do.
    assignments = {p.id: p.poll_until(is_ready_assignment, timeout=30)["data"] for p in players}
    for members in lobbies.values():
        roles = sorted(assignments[p.id]["role"] for p in members)
        assert roles == ["client", "client", "client", "server"]
        assert len({assignments[p.id]["user_authorization_token"] for p in members}) == 4
    # The ticket stream told each player about its match.
    for player in players:
        updates = [
            e
            for e in player.call("GET", "/api/v1/players/me/events?after=0")["events"]
            if e["type"] == "ticket.updated"
        ]
        assert [u["data"]["status"] for u in updates][-1] == "matched"
