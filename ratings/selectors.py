"""Reads: leaderboards, a player's ratings, ratings the matcher needs, a lobby's result."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from lobby.errors import NotFound
from lobby.models import Player
from ratings import skill
from ratings.models import Leaderboard, MatchResult, Rating


def leaderboard_get(*, name: str) -> Leaderboard:
    board = Leaderboard.objects.filter(name=name).first()
    if board is None:
        raise NotFound("leaderboard_not_found", "There is no such leaderboard.")
    return board


def leaderboard_ratings(*, leaderboard: Leaderboard) -> QuerySet[Rating]:
    """Ranked by displayed rating (ordinal), best first; ties by who got there first (pk)."""
    return (
        Rating.objects.filter(leaderboard=leaderboard, games__gt=0)
        .select_related("player")
        .order_by("-ordinal", "pk")
    )


def player_ratings(*, player: Player) -> list[dict]:
    """The player's rating on every leaderboard it has played on."""
    return [
        {
            "leaderboard": r.leaderboard.name,
            "mu": r.mu,
            "sigma": r.sigma,
            "ordinal": r.ordinal,
            "games": r.games,
        }
        for r in Rating.objects.filter(player=player)
        .select_related("leaderboard")
        .order_by("leaderboard__name")
    ]


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
