"""Matchmaking end to end: players queue over HTTP, the beat-driven matcher in a real Celery
worker forms matches, each match becomes a started lobby, and every player receives its relay
assignment from the emulator; in a rated queue they then report the result and are rated."""

import time

import pytest
from django.contrib.auth import get_user_model

from matchmaking.models import Profile
from ratings import services as ratings_services
from ratings import skill
from ratings.models import MatchResult
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
    for player, value in zip(players, skills, strict=True):
        body = {"profile": "teams-2x2", "attributes": {"skill": value}}
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


RANKED_2X2 = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
        },
        "skill": {
            "type": "number_difference",
            "rating": "ranked-2x2",
            "attributes": {"max_difference": 200},
        },
    }
}


def _placements(first, second):
    return {
        "teams": [
            {"players": [p.id for p in first], "rank": 1},
            {"players": [p.id for p in second], "rank": 2},
        ]
    }


def test_a_rated_2v2_queue_matches_plays_reports_and_rates_as_openskill_predicts(worker_tasks):
    """Four players queue in a queue that rates from a leaderboard (sending no skill; sending
    one is refused), are matched by the worker, get their relays, and report: the two teams
    disagree, so nothing is rated until an operator resolves the dispute; then every rating
    moves as OpenSkill predicts, and the leaderboard ranks the winners first."""
    live, transcript = worker_tasks, Transcript()
    Profile.objects.create(name="ranked-2x2", title="Ranked 2 vs 2", rules=RANKED_2X2, mode="tdm")
    four = [ApiPlayer(live.base_url, f"r{n}", transcript) for n in range(4)]
    refused = four[0].call(
        "POST",
        "/api/v1/matchmaking/tickets",
        {"profile": "ranked-2x2", "attributes": {"skill": 3000}},
        400,
    )
    assert "set by the server from your ranked-2x2 rating" in str(refused)
    tickets = {
        p.id: p.call(
            "POST", "/api/v1/matchmaking/tickets", {"profile": "ranked-2x2", "attributes": {}}, 201
        )["id"]
        for p in four
    }
    for _ in range(60):
        live.enqueue("matchmaking.run")
        time.sleep(0.25)
        states = [p.call("GET", f"/api/v1/matchmaking/tickets/{tickets[p.id]}") for p in four]
        if all(t["status"] == "matched" for t in states):
            break
    else:
        pytest.fail(f"not matched: {states}\n{live.log_tail()}")
    lobby_id = states[0]["lobby_id"]
    lobby = four[0].call("GET", f"/api/v1/lobbies/{lobby_id}")
    new_2v2 = [[skill.NEW] * 2, [skill.NEW] * 2]
    assert lobby["metadata"]["quality"] == pytest.approx(skill.quality(new_2v2), abs=1e-4)

    # They play: every player holds its relay assignment.
    for p in four:
        assert p.poll_until(is_ready_assignment, timeout=30)["data"]["lobby_id"] == lobby_id

    by_id = {p.id: p for p in four}
    winners, losers = ([by_id[i] for i in team] for team in lobby["metadata"]["teams"])
    path = f"/api/v1/lobbies/{lobby_id}/result"
    assert winners[0].call("POST", path, _placements(winners, losers))["state"] == "pending"
    # The same report again is idempotent; changing it is refused.
    assert winners[0].call("POST", path, _placements(winners, losers))["reported"] == [
        winners[0].id
    ]
    winners[0].call("POST", path, _placements(losers, winners), 409)
    # The other side claims the win: disputed.
    assert losers[0].call("POST", path, _placements(losers, winners))["state"] == "disputed"
    assert all(p.call("GET", "/api/v1/players/me")["ratings"] == [] for p in four)
    disputed = [
        e
        for e in losers[1].call("GET", "/api/v1/players/me/events?after=0")["events"]
        if e["type"] == "result.disputed"
    ]
    assert len(disputed) == 1

    # An operator looks at the evidence and settles it for the first team.
    operator = get_user_model().objects.create_user("referee", is_staff=True)
    result = MatchResult.objects.get(lobby_id=lobby_id)
    ratings_services.result_resolve(
        result_id=result.pk,
        placements=_placements(winners, losers)["teams"],
        actor=operator,
        note="replay reviewed",
    )
    expected = skill.rate(new_2v2, [1, 2])
    for team, outcome in ((winners, expected[0][0]), (losers, expected[1][0])):
        for p in team:
            (rating,) = p.call("GET", "/api/v1/players/me")["ratings"]
            assert rating["leaderboard"] == "ranked-2x2"
            assert rating["games"] == 1
            assert rating["mu"] == pytest.approx(outcome.mu)
            assert rating["sigma"] == pytest.approx(outcome.sigma)
            confirmed = [
                e
                for e in p.call("GET", "/api/v1/players/me/events?after=0")["events"]
                if e["type"] == "result.confirmed"
            ]
            assert len(confirmed) == 1
    board = four[0].call("GET", "/api/v1/leaderboards/ranked-2x2")
    ranked = [entry["player_id"] for entry in board["results"]]
    assert set(ranked[:2]) == {p.id for p in winners}
    assert set(ranked[2:]) == {p.id for p in losers}
