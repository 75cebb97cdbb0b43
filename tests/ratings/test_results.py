"""Results: who may report, the agreement rule, idempotency, ties, teams, disputes, the window.

Ratings are checked against OpenSkill itself (ratings.skill wraps it), not against numbers
copied from a run.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from lobby import services as lobby_services
from lobby.errors import Conflict, Forbidden, Invalid, NotFound
from ratings import services, skill
from ratings.models import Leaderboard, MatchResult, Rating, RatingChange, ResultReport
from tests.ratings.conftest import placements

pytestmark = pytest.mark.django_db


def _rating(player, board="ranked"):
    return Rating.objects.filter(player=player, leaderboard__name=board).first()


def _report(lobby, player, *teams):
    return services.result_report(lobby_id=lobby.pk, player=player, teams=placements(*teams))


def test_1v1_stands_when_both_agree_and_rates_as_openskill_predicts(
    players, matched_lobby, events_of
):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    result = _report(lobby, a, [a], [b])
    assert result.state == "pending" and _rating(a) is None  # one report of two: not yet
    result = _report(lobby, b, [a], [b])
    assert result.state == "confirmed"
    expected = skill.rate([[skill.NEW], [skill.NEW]], [1, 2])
    ra, rb = _rating(a), _rating(b)
    assert (ra.mu, ra.sigma) == pytest.approx((expected[0][0].mu, expected[0][0].sigma))
    assert (rb.mu, rb.sigma) == pytest.approx((expected[1][0].mu, expected[1][0].sigma))
    assert ra.mu > skill.MU > rb.mu and ra.games == rb.games == 1
    assert ra.ordinal == pytest.approx(ra.mu - 3 * ra.sigma)
    assert result.quality == pytest.approx(skill.quality([[skill.NEW], [skill.NEW]]))
    assert RatingChange.objects.filter(result=result).count() == 2
    for player in (a, b):
        confirmed = [d for t, d in events_of(player) if t == "result.confirmed"]
        assert len(confirmed) == 1
        assert confirmed[0]["ratings"][str(a.pk)]["ordinal_change"] > 0
        assert confirmed[0]["ratings"][str(b.pk)]["ordinal_change"] < 0


def test_the_same_report_again_changes_nothing(players, matched_lobby):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    _report(lobby, a, [a], [b])
    again = _report(lobby, a, [a], [b])
    assert again.state == "pending"
    assert ResultReport.objects.filter(result=again).count() == 1
    _report(lobby, b, [a], [b])
    # After it stands, a repeat is still a no-op: rated once.
    _report(lobby, b, [a], [b])
    assert _rating(a).games == 1


def test_a_member_cannot_change_its_report(players, matched_lobby):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    _report(lobby, a, [a], [b])
    with pytest.raises(Conflict) as exc:
        _report(lobby, a, [b], [a])
    assert exc.value.code == "already_reported"


def test_disagreeing_reports_dispute_and_rate_nothing_until_an_operator_resolves(
    players, matched_lobby, events_of, admin_user
):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    _report(lobby, a, [a], [b])
    result = _report(lobby, b, [b], [a])
    assert result.state == "disputed"
    assert Rating.objects.count() == 0
    assert [t for t, _ in events_of(a) if t.startswith("result.")] == ["result.disputed"]
    resolved = services.result_resolve(
        result_id=result.pk, placements=placements([b], [a]), actor=admin_user, note="replay seen"
    )
    assert resolved.state == "confirmed" and resolved.resolved_by == admin_user
    assert _rating(b).mu > _rating(a).mu
    assert "result.confirmed" in [t for t, _ in events_of(b)]
    with pytest.raises(Conflict):
        services.result_resolve(result_id=result.pk, placements=None, actor=admin_user, note="")
    assert _rating(a).games == 1


def test_an_operator_may_void_a_dispute(players, matched_lobby, admin_user):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    _report(lobby, a, [a], [b])
    result = _report(lobby, b, [b], [a])
    voided = services.result_resolve(
        result_id=result.pk, placements=None, actor=admin_user, note="both cheated"
    )
    assert voided.state == "void" and Rating.objects.count() == 0


def test_ties_move_ratings_toward_each_other(players, matched_lobby):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    _report(lobby, a, (1, [a]), (1, [b]))
    result = _report(lobby, b, (1, [b]), (1, [a]))  # the same tie, written the other way
    assert result.state == "confirmed"
    assert _rating(a).mu == pytest.approx(skill.MU) == _rating(b).mu
    assert _rating(a).sigma < skill.SIGMA


def test_ranks_are_compared_densely(players, matched_lobby):
    a, b, c = players(3)
    lobby = matched_lobby([[a], [b], [c]], profile="ffa")
    _report(lobby, a, (1, [a]), (1, [b]), (3, [c]))
    result = _report(lobby, b, (1, [a]), (1, [b]), (2, [c]))
    assert result.state == "pending"  # agrees: 1,1,3 is 1,1,2
    result = _report(lobby, c, (1, [b]), (1, [a]), (7, [c]))
    assert result.state == "confirmed"
    first, second = sorted([a.pk, b.pk])
    assert result.placements == [
        {"players": [first], "rank": 1},
        {"players": [second], "rank": 1},
        {"players": [c.pk], "rank": 2},
    ]


def test_2v2_rates_teams_and_refuses_other_teams(players, matched_lobby):
    a, b, c, d = players(4)
    lobby = matched_lobby([[a, b], [c, d]])
    with pytest.raises(Invalid):
        _report(lobby, a, [a, c], [b, d])
    for p in (a, b, c, d):
        result = _report(lobby, p, [c, d], [a, b])
    assert result.state == "confirmed"
    expected = skill.rate([[skill.NEW] * 2, [skill.NEW] * 2], [1, 2])
    assert _rating(c).mu == pytest.approx(expected[0][0].mu)
    assert _rating(a).mu == pytest.approx(expected[1][0].mu)


@pytest.mark.parametrize(
    "teams,problem",
    [
        ([], "2 to"),
        ([{"players": [], "rank": 1}, {"players": [], "rank": 2}], "non-empty"),
        ("dup", "two teams"),
        ("missing", "missing players"),
        ("stranger", "did not play"),
        ("rank0", "rank"),
    ],
)
def test_placements_that_do_not_fit_the_match_are_refused(players, matched_lobby, teams, problem):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]], profile="duel")
    cases = {
        "dup": [{"players": [a.pk], "rank": 1}, {"players": [a.pk, b.pk], "rank": 2}],
        "missing": [{"players": [a.pk], "rank": 1}, {"players": [a.pk + b.pk + 99], "rank": 2}],
        "stranger": [
            {"players": [a.pk], "rank": 1},
            {"players": [b.pk], "rank": 2},
            {"players": [a.pk + b.pk + 99], "rank": 3},
        ],
        "rank0": [{"players": [a.pk], "rank": 0}, {"players": [b.pk], "rank": 2}],
    }
    with pytest.raises(Invalid) as exc:
        services.result_report(
            lobby_id=lobby.pk, player=a, teams=cases[teams] if isinstance(teams, str) else teams
        )
    assert problem in exc.value.message


def test_only_players_of_a_started_lobby_may_report(players, lobby_of, start_match):
    a, b, outsider = players(3)
    Leaderboard.objects.create(name="friends", open_to_hand_made_lobbies=True)
    lobby = lobby_of(a, b, metadata={"leaderboard": "friends"})
    with pytest.raises(Conflict) as exc:
        _report(lobby, a, [a], [b])
    assert exc.value.code == "not_started"
    start_match(lobby, b)
    with pytest.raises(NotFound):
        _report(lobby, outsider, [a], [b])
    with pytest.raises(NotFound):
        services.result_report(lobby_id=uuid.uuid4(), player=a, teams=[])
    assert _report(lobby, a, [a], [b]).leaderboard.name == "friends"


def test_a_hand_made_lobby_rates_only_on_a_leaderboard_opened_to_it(players, lobby_of, start_match):
    a, b = players(2)
    Leaderboard.objects.create(name="ranked")  # a queue's: not for lobbies made by hand
    for metadata in ({}, {"leaderboard": "ranked"}, {"leaderboard": "nope"}):
        lobby = lobby_of(a, b, metadata=metadata)
        start_match(lobby, b)
        with pytest.raises(Conflict) as exc:
            _report(lobby, a, [a], [b])
        assert exc.value.code == "not_rated"
        lobby_services.lobby_end(lobby_id=lobby.pk, player=a)


def test_a_player_who_left_before_the_first_report_is_not_rated(players, lobby_of, start_match):
    a, b, c = players(3)
    Leaderboard.objects.create(name="friends", open_to_hand_made_lobbies=True)
    lobby = lobby_of(a, b, c, metadata={"leaderboard": "friends"})
    start_match(lobby, b, c)
    lobby_services.lobby_leave(lobby_id=lobby.pk, player=c)
    with pytest.raises(Forbidden):
        _report(lobby, c, [a], [b], [c])
    _report(lobby, a, [a], [b])
    assert _report(lobby, b, [a], [b]).state == "confirmed"
    assert _rating(c, "friends") is None


def test_results_can_be_reported_after_the_host_ends_the_lobby(players, matched_lobby):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    lobby_services.lobby_end(lobby_id=lobby.pk, player=a)
    _report(lobby, a, [a], [b])
    assert _report(lobby, b, [a], [b]).state == "confirmed"


def _expire_window(result):
    MatchResult.objects.filter(pk=result.pk).update(decide_by=timezone.now() - timedelta(1))


def test_after_the_window_a_strict_majority_stands(players, matched_lobby, events_of):
    a, b, c, d = players(4)
    lobby = matched_lobby([[a, b], [c, d]])
    for p in (a, b, c):
        result = _report(lobby, p, [a, b], [c, d])
    assert services.results_decide_due() == 0  # window still open: d may yet dispute
    _expire_window(result)
    assert services.results_decide_due() == 1
    result.refresh_from_db()
    assert result.state == "confirmed" and _rating(d).games == 1
    assert "result.confirmed" in [t for t, _ in events_of(d)]


def test_after_the_window_half_is_not_enough(players, matched_lobby):
    a, b, c, d = players(4)
    lobby = matched_lobby([[a, b], [c, d]])
    for p in (a, b):  # one team claims the win; the other never answers
        result = _report(lobby, p, [a, b], [c, d])
    _expire_window(result)
    services.results_decide_due()
    result.refresh_from_db()
    assert result.state == "void" and Rating.objects.count() == 0
    with pytest.raises(Conflict) as exc:
        _report(lobby, c, [a, b], [c, d])
    assert exc.value.code == "result_final"


def test_a_lobby_is_rated_at_most_once(players, matched_lobby):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    _report(lobby, a, [a], [b])
    result = _report(lobby, b, [a], [b])
    services._confirm(result, result.placements)  # a second claim (e.g. a late window task)
    assert _rating(a).games == 1 and RatingChange.objects.count() == 2


def test_operators_adjust_and_reset_ratings_with_an_audit_trail(players, matched_lobby, admin_user):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    _report(lobby, a, [a], [b])
    _report(lobby, b, [a], [b])
    rating = _rating(a)
    with pytest.raises(Invalid):
        services.rating_adjust(rating_id=rating.pk, mu=1800, sigma=100, actor=admin_user, note="")
    services.rating_adjust(
        rating_id=rating.pk, mu=1800, sigma=100, actor=admin_user, note="known pro"
    )
    rating.refresh_from_db()
    assert (rating.mu, rating.sigma, rating.ordinal) == (1800, 100, 1500)
    services.rating_reset(rating_id=rating.pk, actor=admin_user, note="smurf")
    rating.refresh_from_db()
    assert (rating.mu, rating.sigma) == (skill.MU, skill.SIGMA) and rating.games == 1
    reasons = list(rating.history.values_list("reason", "actor", "note"))
    assert reasons[:2] == [
        ("reset", admin_user.pk, "smurf"),
        ("adjust", admin_user.pk, "known pro"),
    ]
    assert reasons[2][0] == "match"
