"""Reads: leaderboards, a player's ratings, ratings the matcher needs, a lobby's result."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Q, QuerySet

from lobby.errors import NotFound
from lobby.models import Player
from ratings import skill
from ratings.models import Leaderboard, MatchResult, Rating


def leaderboard_get(*, name: str) -> Leaderboard:
    board = Leaderboard.objects.filter(name=name).first()
    if board is None:
        raise NotFound("leaderboard_not_found", "There is no such leaderboard.")
    return board


# The ranking, one definition for the API, the leaderboard page and a player's own rank: displayed
# rating (ordinal), best first; ties go to who got there first (pk). `_ranked_above` must say the
# same thing as a filter (a rank is one indexed count, not a window over the whole board).
RANKING = ("-ordinal", "pk")


def _ranked_above(rating: Rating) -> Q:
    return Q(ordinal__gt=rating.ordinal) | Q(ordinal=rating.ordinal, pk__lt=rating.pk)


def leaderboard_list() -> QuerySet[Leaderboard]:
    """Every leaderboard by name, each with `players`: how many are ranked on it."""
    return Leaderboard.objects.annotate(
        players=Count("ratings", filter=Q(ratings__games__gt=0))
    ).order_by("name")


def _ranked(*, leaderboard: Leaderboard) -> QuerySet[Rating]:
    # Only players who have played: a reset or a never-rated row ranks nobody.
    return Rating.objects.filter(leaderboard=leaderboard, games__gt=0)


def leaderboard_ratings(*, leaderboard: Leaderboard) -> QuerySet[Rating]:
    """Ranked by displayed rating (ordinal), best first; ties by who got there first (pk)."""
    return _ranked(leaderboard=leaderboard).select_related("player").order_by(*RANKING)


def leaderboard_rank(*, leaderboard: Leaderboard, player: Player) -> Rating | None:
    """The player's rating on the leaderboard with its `rank` (1 = best, as in
    `leaderboard_ratings`), or None when the player is not ranked there (has not played)."""
    rating = _ranked(leaderboard=leaderboard).filter(player=player).first()
    if rating is None:
        return None
    rating.rank = _ranked(leaderboard=leaderboard).filter(_ranked_above(rating)).count() + 1
    return rating


def _rating_out(rating: Rating | None, leaderboard: str) -> dict:
    # A player without a rating there is new (skill.NEW: mu 1500, sigma 500, ordinal 0).
    mu, sigma = (rating.mu, rating.sigma) if rating else (skill.NEW.mu, skill.NEW.sigma)
    return {
        "leaderboard": leaderboard,
        "mu": mu,
        "sigma": sigma,
        "ordinal": rating.ordinal if rating else skill.NEW.ordinal,
        "games": rating.games if rating else 0,
    }


def player_ratings(*, player: Player) -> list[dict]:
    """The player's rating on every leaderboard it has played on."""
    return [
        _rating_out(r, r.leaderboard.name)
        for r in Rating.objects.filter(player=player)
        .select_related("leaderboard")
        .order_by("leaderboard__name")
    ]


def player_ratings_on(*, player: Player, leaderboard_names: Iterable[str]) -> dict[str, dict]:
    """The player's rating on each named leaderboard, a new player's where it has none (also on
    a leaderboard not made yet: a queue's is made by its first result). `listed` says whether
    the leaderboard exists, so a page links only to one it can show."""
    names = sorted(set(leaderboard_names))
    ratings = {
        r.leaderboard.name: r
        for r in Rating.objects.filter(player=player, leaderboard__name__in=names).select_related(
            "leaderboard"
        )
    }
    listed = dict(Leaderboard.objects.filter(name__in=names).values_list("name", "title"))
    return {
        name: {
            **_rating_out(ratings.get(name), name),
            "title": listed.get(name) or name,
            "listed": name in listed,
        }
        for name in names
    }


def skills_of(*, leaderboard_name: str, player_ids: Iterable[int]) -> dict[int, skill.Skill]:
    """Each player's skill on a leaderboard; a player without a rating there is new."""
    ids = list(player_ids)
    found = {
        pid: skill.Skill(mu, sigma)
        for pid, mu, sigma in Rating.objects.filter(
            leaderboard__name=leaderboard_name, player_id__in=ids
        ).values_list("player_id", "mu", "sigma")
    }
    return {pid: found.get(pid, skill.NEW) for pid in ids}


def result_for_member(*, lobby_id, player: Player) -> MatchResult:
    result = MatchResult.objects.filter(lobby_id=lobby_id).select_related("leaderboard").first()
    if result is None or player.pk not in result.roster:
        raise NotFound("result_not_found", "This lobby has no result you took part in.")
    return result
