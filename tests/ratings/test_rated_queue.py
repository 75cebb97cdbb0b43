"""A queue that rates from a leaderboard: the server sets the number, a client cannot; four
players are matched 2v2, play, report, and their ratings move as OpenSkill predicts; a disputed
result changes nothing until an operator resolves it."""

import pytest

from lobby.models import Lobby
from matchmaking import services as mm
from matchmaking.models import Profile, Ticket
from matchmaking.rules import RulesError, parse_rules
from ratings import services, skill
from ratings.models import Leaderboard, Rating
from tests.ratings.conftest import placements

pytestmark = pytest.mark.django_db

RATED_2V2 = {
    "initial": {
        "size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
        },
        "skill": {
            "type": "number_difference",
            "rating": "ranked-2v2",
            "attributes": {"max_difference": 2000},
        },
    }
}


@pytest.fixture
def queue():
    return Profile.objects.create(name="ranked-2v2", rules=RATED_2V2, mode="tdm")


def _queue(player, attributes=None):
    return mm.ticket_create(
        player=player, profile_name="ranked-2v2", attributes=attributes or {}, ip="203.0.113.9"
    )[0]


def test_rules_name_a_leaderboard_only_on_number_rules():
    assert parse_rules(RATED_2V2).rated == {"skill": "ranked-2v2"}
    bad = {"initial": {**RATED_2V2["initial"], "mode": {"type": "string_equality", "rating": "x"}}}
    with pytest.raises(RulesError, match="rating"):
        parse_rules(bad)


def test_a_client_cannot_send_a_number_the_server_owns(queue, players):
    (a,) = players(1)
    with pytest.raises(mm.AttributesInvalid) as exc:
        _queue(a, {"skill": 3000})
    assert "set by the server" in exc.value.extra["fields"]["attributes"]["skill"]
    assert not Ticket.objects.exists()


def test_the_ticket_carries_the_players_rating(queue, players):
    a, b = players(2)
    board = Leaderboard.objects.create(name="ranked-2v2")
    Rating.objects.create(leaderboard=board, player=a, mu=1800, sigma=120, games=9)
    assert _queue(a).attributes["skill"] == 1800
    ticket = _queue(b)  # never played there: a new player's numbers
    assert ticket.attributes["skill"] == skill.MU
    assert ticket.attributes["$rated"]["skill"]["sigma"] == skill.SIGMA


def test_a_partys_number_comes_from_its_members(queue, players):
    leader, friend = players(2)
    board = Leaderboard.objects.create(name="ranked-2v2")
    Rating.objects.create(leaderboard=board, player=leader, mu=1700, sigma=100, games=5)
    Rating.objects.create(leaderboard=board, player=friend, mu=1300, sigma=300, games=5)
    party = mm.party_create(player=leader, ip="203.0.113.5")
    mm.party_join(code=party.code, player=friend, ip="203.0.113.6")
    ticket = _queue(leader)
    assert ticket.attributes["skill"] == pytest.approx(1500)
    assert ticket.attributes["$rated"]["skill"]["sigma"] == pytest.approx((50000) ** 0.5)


def test_queue_match_play_report_and_ratings_move_as_openskill_predicts(queue, players, admin_user):
    four = players(4)
    for player in four:
        _queue(player)
    report = mm.matchmaking_pass(profile=queue)
    assert report.matches == 1
    lobby = Lobby.objects.get()
    assert lobby.state == "allocating"  # started: the relay is being allocated
    teams = lobby.metadata["teams"]
    assert lobby.metadata["quality"] == pytest.approx(
        skill.quality([[skill.NEW] * 2, [skill.NEW] * 2]), abs=1e-4
    )
    by_id = {p.pk: p for p in four}
    winners, losers = ([by_id[i] for i in team] for team in teams)
    # Dispute first: nothing moves until an operator decides.
    services.result_report(lobby_id=lobby.pk, player=winners[0], teams=placements(winners, losers))
    result = services.result_report(
        lobby_id=lobby.pk, player=losers[0], teams=placements(losers, winners)
    )
    assert result.state == "disputed" and not Rating.objects.exists()
    services.result_resolve(
        result_id=result.pk, placements=placements(winners, losers), actor=admin_user, note="vod"
    )
    expected = skill.rate([[skill.NEW] * 2, [skill.NEW] * 2], [1, 2])
    for player in winners:
        assert Rating.objects.get(player=player).mu == pytest.approx(expected[0][0].mu)
    for player in losers:
        assert Rating.objects.get(player=player).mu == pytest.approx(expected[1][0].mu)
    # Next time they queue, the server uses the measured rating.
    Lobby.objects.filter(pk=lobby.pk).update(state="closed")
    lobby.memberships.update(state="left")
    ticket = _queue(winners[0])
    assert ticket.attributes["skill"] == pytest.approx(expected[0][0].mu)
