"""Reports racing: a lobby is rated exactly once, each member reports once, nothing deadlocks.

The must-show runs on PostgreSQL (the services stack), where writers really race; on SQLite the
same test checks that nothing is lost when they queue.
"""

import threading

import pytest
from django.db import connection

from lobby.errors import ServiceError
from ratings import services, skill
from ratings.models import MatchResult, Rating, RatingChange, ResultReport
from tests.ratings.conftest import placements

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _relay_work_not_sent(monkeypatch):
    # These tests commit (transaction=True), so the matched lobbies' relay tasks would run
    # eagerly against no Edgegap; the relay is not what is under test here.
    from relays import services as relay_services

    monkeypatch.setattr(relay_services, "_after_commit", lambda task, *a, **k: None)


def _race(calls):
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            outcomes[index] = call().state
        except ServiceError as exc:
            outcomes[index] = exc.code
        except Exception as exc:  # anything else is a bug the test must show
            outcomes[index] = f"error: {type(exc).__name__}: {exc}"
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _report(lobby, player, teams):
    return lambda: services.result_report(lobby_id=lobby.pk, player=player, teams=teams)


def test_four_players_reporting_at_once_rate_the_match_once(players, matched_lobby):
    a, b, c, d = players(4)
    lobby = matched_lobby([[a, b], [c, d]])
    teams = placements([a, b], [c, d])
    # Each player twice at once: duplicates of a report must be no-ops, not second ratings.
    outcomes = _race([_report(lobby, p, teams) for p in (a, b, c, d, a, b, c, d)])
    assert not [o for o in outcomes if o.startswith("error")], outcomes
    assert "confirmed" in outcomes
    assert ResultReport.objects.count() == 4
    assert RatingChange.objects.count() == 4
    expected = skill.rate([[skill.NEW] * 2, [skill.NEW] * 2], [1, 2])
    for player, want in ((a, expected[0][0]), (c, expected[1][0])):
        rating = Rating.objects.get(player=player)
        assert rating.games == 1 and rating.mu == pytest.approx(want.mu)
    assert MatchResult.objects.get().state == "confirmed"


def test_a_dissent_racing_the_last_agreeing_report_never_rates_and_disputes(players, matched_lobby):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    services.result_report(lobby_id=lobby.pk, player=a, teams=placements([a], [b]))
    c, d = players(2)
    lobby2 = matched_lobby([[c], [d]])
    # b disagrees while the window task and an extra repeat of a race it.
    outcomes = _race(
        [
            _report(lobby, b, placements([b], [a])),
            _report(lobby, a, placements([a], [b])),
            lambda: (services.results_decide_due(), MatchResult.objects.get(lobby=lobby))[1],
            _report(lobby2, c, placements([c], [d])),
            _report(lobby2, d, placements([c], [d])),
        ]
    )
    assert not [o for o in outcomes if o.startswith("error")], outcomes
    assert MatchResult.objects.get(lobby=lobby).state == "disputed"
    assert not Rating.objects.filter(player__in=[a, b]).exists()
    assert MatchResult.objects.get(lobby=lobby2).state == "confirmed"


def test_results_sharing_a_player_rate_one_after_the_other(players, matched_lobby, lobby_of):
    """Two lobbies' last reports commit at once and both rate a shared player's rating row.

    A player is in one live lobby at a time, so the shared player's first lobby is ended before
    the second is made; the reports of both then race."""
    a, b, c = players(3)
    first = matched_lobby([[a], [b]])
    from lobby import services as lobby_services

    lobby_services.lobby_end(lobby_id=first.pk, player=a)
    second = matched_lobby([[a], [c]])
    services.result_report(lobby_id=first.pk, player=b, teams=placements([a], [b]))
    services.result_report(lobby_id=second.pk, player=c, teams=placements([a], [c]))
    outcomes = _race(
        [
            _report(first, a, placements([a], [b])),
            _report(second, a, placements([a], [c])),
        ]
    )
    assert outcomes == ["confirmed", "confirmed"], outcomes
    rating = Rating.objects.get(player=a)
    assert rating.games == 2
    history = list(rating.history.order_by("pk"))
    # Serial: the second change starts where the first ended (no lost update).
    assert history[1].mu_before == pytest.approx(history[0].mu_after)
    assert history[1].sigma_before == pytest.approx(history[0].sigma_after)
