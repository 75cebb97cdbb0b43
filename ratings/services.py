"""Writes: result reports, the agreement rule, rating a result exactly once, operator actions.

The agreement rule (docs/ratings.md):

- Every member of the match (the roster: active members at the first report, or those the
  lobby's close ended) may report once. The same report again is a no-op; a different one is
  409 `already_reported` (a member cannot change its story).
- Two reports that differ make the result `disputed` at once: nothing is rated until an operator
  resolves it (in the admin) with placements of their own choosing, or voids it.
- Reports that agree and come from every member confirm the result at once.
- Otherwise the result waits `RESULT_REPORT_WINDOW` seconds from its first report (time for
  anyone to dispute), then stands if the agreeing reports are a strict majority of the roster,
  else it is `void`. The host's report weighs what anyone's does.

Concurrency: every report takes the lobby's row lock first (`select_for_update`), so a lobby's
reports run one after another on PostgreSQL; the one-result-per-lobby and one-report-per-member
constraints are the last guards. Rating is claimed by a conditional update of `rated_at` (one
winner, whatever races), and ratings rows are locked in pk order so two results sharing
players queue instead of deadlocking. Events are written in the same transaction (lobby.events).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from lobby.errors import Conflict, Forbidden, Invalid, NotFound
from lobby.events import events_emit
from lobby.models import Lobby, Membership, Player
from ratings import skill
from ratings.models import Leaderboard, MatchResult, Rating, RatingChange, ResultReport

logger = logging.getLogger(__name__)
State = MatchResult.State
MAX_TEAMS = 64


# --- Placements ------------------------------------------------------------------------------


def placements_canonical(teams: Sequence[dict], *, roster: Sequence[int]) -> list[dict]:
    """Validate reported placements and return their canonical form.

    ``teams`` is ``[{"players": [ids], "rank": n}, ...]``: every roster member in exactly one
    team, rank 1 first, equal ranks tie. The canonical form sorts players within a team, ranks
    densely (1, 1, 3 -> 1, 1, 2) and orders teams by (rank, first player), so two reports
    agree exactly when their canonical forms are equal.
    """
    if not isinstance(teams, list | tuple) or not 2 <= len(teams) <= MAX_TEAMS:
        raise Invalid("invalid", f"teams: give 2 to {MAX_TEAMS} teams.")
    seen: set[int] = set()
    parsed = []
    for n, team in enumerate(teams):
        players, rank = team.get("players"), team.get("rank")
        if not isinstance(players, list) or not players:
            raise Invalid("invalid", f"teams.{n}.players: a non-empty list of player ids.")
        if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= MAX_TEAMS:
            raise Invalid("invalid", f"teams.{n}.rank: an integer from 1 to {MAX_TEAMS}.")
        for pid in players:
            if not isinstance(pid, int) or isinstance(pid, bool):
                raise Invalid("invalid", f"teams.{n}.players: player ids are integers.")
            if pid in seen:
                raise Invalid("invalid", f"teams.{n}.players: player {pid} is in two teams.")
            seen.add(pid)
        parsed.append((rank, sorted(players)))
    if seen != set(roster):
        missing, extra = sorted(set(roster) - seen), sorted(seen - set(roster))
        problem = []
        if missing:
            problem.append(f"missing players {missing}")
        if extra:
            problem.append(f"players {extra} did not play this match")
        raise Invalid("invalid", "teams: " + "; ".join(problem) + ".")
    dense = {rank: n for n, rank in enumerate(sorted({rank for rank, _ in parsed}), start=1)}
    return [
        {"players": players, "rank": dense[rank]}
        for rank, players in sorted(parsed, key=lambda item: (item[0], item[1][0]))
    ]


def _same_teams(placements: list[dict], teams: list[list[int]]) -> bool:
    return sorted(p["players"] for p in placements) == sorted(sorted(t) for t in teams)


# --- Leaderboards ----------------------------------------------------------------------------


def _lobby_leaderboard(lobby: Lobby) -> Leaderboard:
    """The leaderboard a lobby rates on: its queue's (matched lobbies carry `profile` in their
    metadata), or, for a hand-made lobby, the one its metadata names if that is open to it."""
    metadata = lobby.metadata or {}
    profile = metadata.get("profile") if isinstance(metadata.get("teams"), list) else None
    if profile and not lobby.joinable_after_start and lobby.visibility == Lobby.Visibility.PRIVATE:
        board, _ = Leaderboard.objects.get_or_create(name=str(profile)[:64])
        return board
    name = metadata.get("leaderboard")
    board = Leaderboard.objects.filter(name=name).first() if isinstance(name, str) else None
    if board is None or not board.open_to_hand_made_lobbies:
        raise Conflict("not_rated", "This lobby is not played for a leaderboard.")
    return board


# --- Reporting -------------------------------------------------------------------------------


def _roster(lobby: Lobby) -> list[int]:
    active = Membership.objects.filter(lobby=lobby, state=Membership.State.ACTIVE)
    if lobby.state == Lobby.State.CLOSED:
        # The close ended every membership at the lobby's closed_at: those played to the end.
        active = Membership.objects.filter(lobby=lobby, ended_at=lobby.closed_at)
    return sorted(active.values_list("player_id", flat=True))


def _started(lobby: Lobby) -> bool:
    if lobby.state in Lobby.STARTED:
        return True
    return lobby.state == Lobby.State.CLOSED and lobby.relay_session_id is not None


def result_report(*, lobby_id, player: Player, teams: Sequence[dict]) -> MatchResult:
    """A member reports the lobby's placements. Idempotent for the same report.

    Raises NotFound (no such lobby, or not a member), Conflict (`not_started`, `not_rated`,
    `already_reported`, `result_final`), Invalid (placements that do not fit the roster).
    """
    with transaction.atomic():
        lobby = Lobby.objects.select_for_update().filter(pk=lobby_id).first()
        if lobby is None:
            raise NotFound("lobby_not_found", "There is no such lobby.")
        result = MatchResult.objects.filter(lobby=lobby).first()
        roster = result.roster if result else _roster(lobby)
        if player.pk not in roster:
            ever_member = Membership.objects.filter(lobby=lobby, player=player).exists()
            if not ever_member:  # a lobby's existence is its members' business
                raise NotFound("lobby_not_found", "There is no such lobby.")
            raise Forbidden("not_a_player", "Only the players of this match may report it.")
        if result is None:
            if not _started(lobby):
                raise Conflict("not_started", "Report a result once the match has started.")
            server_teams = (lobby.metadata or {}).get("teams")
            if isinstance(server_teams, list):
                # A player who left before the first report is not rated (nor reported).
                server_teams = [
                    kept for team in server_teams if (kept := [p for p in team if p in roster])
                ]
            result = MatchResult.objects.create(
                lobby=lobby,
                leaderboard=_lobby_leaderboard(lobby),
                roster=roster,
                teams=server_teams if isinstance(server_teams, list) else None,
                decide_by=timezone.now() + timedelta(seconds=settings.RESULT_REPORT_WINDOW),
            )
        placements = placements_canonical(teams, roster=result.roster)
        if result.teams is not None and not _same_teams(placements, result.teams):
            raise Invalid("invalid", "teams: report the teams as matched: " + str(result.teams))
        mine = result.reports.filter(player=player).first()
        if mine is not None:
            if mine.placements == placements:
                return result  # the same report again: nothing changes
            raise Conflict("already_reported", "You have reported this match already.")
        if result.state in (State.CONFIRMED, State.VOID):
            raise Conflict("result_final", f"This result is {result.state} already.")
        try:
            with transaction.atomic():
                ResultReport.objects.create(result=result, player=player, placements=placements)
        except IntegrityError:  # pragma: no cover - the lobby lock serializes reports
            raise Conflict("already_reported", "You have reported this match already.") from None
        _evaluate(result)
        return result


def _evaluate(result: MatchResult, *, window_over: bool = False) -> None:
    """Apply the agreement rule to the reports so far (the caller holds the lobby lock)."""
    if result.state != State.PENDING:
        return
    reports = list(result.reports.values_list("placements", flat=True))
    distinct = {_key(p) for p in reports}
    if len(distinct) > 1:
        result.state = State.DISPUTED
        result.decided_at = timezone.now()
        result.save(update_fields=["state", "decided_at"])
        _announce(result, "result.disputed")
        return
    if reports and len(reports) == len(result.roster):
        _confirm(result, reports[0])
    elif window_over:
        if len(reports) * 2 > len(result.roster):
            _confirm(result, reports[0])
        else:
            result.state = State.VOID
            result.decided_at = timezone.now()
            result.resolution_note = "too few reports in the window"
            result.save(update_fields=["state", "decided_at", "resolution_note"])
            _announce(result, "result.void")


def _key(placements: list[dict]) -> tuple:
    return tuple((p["rank"], tuple(p["players"])) for p in placements)


def _confirm(result: MatchResult, placements: list[dict], *, actor=None, note: str = "") -> None:
    now = timezone.now()
    # The claim: whatever races (a report, the window task, an operator), one caller rates.
    claimed = MatchResult.objects.filter(pk=result.pk, rated_at=None).update(
        rated_at=now,
        state=State.CONFIRMED,
        placements=placements,
        decided_at=now,
        resolved_by=actor,
        resolution_note=note[:300],
    )
    if not claimed:
        return
    result.refresh_from_db()
    _rate(result, placements)
    result.save(update_fields=["quality"])
    _announce(result, "result.confirmed")


def _rate(result: MatchResult, placements: list[dict]) -> None:
    player_ids = sorted(pid for team in placements for pid in team["players"])
    board = result.leaderboard
    Rating.objects.bulk_create(
        [Rating(leaderboard=board, player_id=pid) for pid in player_ids], ignore_conflicts=True
    )
    # pk order: two results sharing players lock their ratings in the same order.
    ratings = {
        r.player_id: r
        for r in Rating.objects.select_for_update()
        .filter(leaderboard=board, player_id__in=player_ids)
        .order_by("pk")
    }
    before = [
        [skill.Skill(ratings[p].mu, ratings[p].sigma) for p in t["players"]] for t in placements
    ]
    result.quality = skill.quality(before)
    after = skill.rate(before, [t["rank"] for t in placements])
    changes = []
    for team, new_team in zip(placements, after, strict=True):
        for pid, new in zip(team["players"], new_team, strict=True):
            rating = ratings[pid]
            changes.append(
                RatingChange(
                    rating=rating,
                    result=result,
                    reason=RatingChange.Reason.MATCH,
                    mu_before=rating.mu,
                    sigma_before=rating.sigma,
                    mu_after=new.mu,
                    sigma_after=new.sigma,
                )
            )
            rating.set_skill(new)
            rating.games += 1
    RatingChange.objects.bulk_create(changes)
    Rating.objects.bulk_update(
        list(ratings.values()), ["mu", "sigma", "ordinal", "games", "updated_at"]
    )


def result_snapshot(result: MatchResult) -> dict:
    """What members see (GET/POST result and the `result.*` events)."""
    return {
        "lobby_id": str(result.lobby_id),
        "leaderboard": result.leaderboard.name,
        "state": result.state,
        "roster": result.roster,
        "teams": result.teams,
        "reported": sorted(result.reports.values_list("player_id", flat=True)),
        "placements": result.placements,
        "quality": result.quality,
        "decide_by": result.decide_by.isoformat().replace("+00:00", "Z"),
    }


def _announce(result: MatchResult, type: str) -> None:
    data = result_snapshot(result)
    if result.state == State.CONFIRMED:
        changes = RatingChange.objects.filter(result=result).select_related("rating")
        data["ratings"] = {
            str(c.rating.player_id): {
                "mu": c.mu_after,
                "sigma": c.sigma_after,
                "ordinal": c.ordinal_after,
                "ordinal_change": c.ordinal_after - c.ordinal_before,
            }
            for c in changes
        }
    events_emit(player_ids=result.roster, type=type, data=data)


# --- The window and the operator ---------------------------------------------------------------


def results_decide_due() -> int:
    """Decide pending results whose window is over (the beat task). Returns how many."""
    due = MatchResult.objects.filter(state=State.PENDING, decide_by__lte=timezone.now())
    decided = 0
    for result_id, lobby_id in due.values_list("pk", "lobby_id")[:500]:
        with transaction.atomic():
            Lobby.objects.select_for_update().filter(pk=lobby_id).first()
            result = MatchResult.objects.select_related("leaderboard").get(pk=result_id)
            if result.state == State.PENDING:
                _evaluate(result, window_over=True)
                decided += 1
    if decided:
        logger.info("decided %d results whose report window ended", decided)
    return decided


def result_resolve(
    *, result_id: int, placements: Sequence[dict] | None, actor, note: str
) -> MatchResult:
    """An operator settles a disputed (or still pending) result: with placements it stands and
    is rated; with None it is void. A result already confirmed or void is 409."""
    with transaction.atomic():
        lobby_id = (
            MatchResult.objects.filter(pk=result_id).values_list("lobby_id", flat=True).first()
        )
        if lobby_id is None:
            raise NotFound("result_not_found", "There is no such result.")
        Lobby.objects.select_for_update().filter(pk=lobby_id).first()
        result = MatchResult.objects.select_related("leaderboard").get(pk=result_id)
        if result.state not in (State.DISPUTED, State.PENDING):
            raise Conflict("result_final", f"This result is {result.state} already.")
        if placements is None:
            result.state = State.VOID
            result.decided_at = timezone.now()
            result.resolved_by = actor
            result.resolution_note = note[:300]
            result.save(update_fields=["state", "decided_at", "resolved_by", "resolution_note"])
            _announce(result, "result.void")
            return result
        canonical = placements_canonical(placements, roster=result.roster)
        if result.teams is not None and not _same_teams(canonical, result.teams):
            raise Invalid("invalid", "teams: placements must keep the matched teams.")
        _confirm(result, canonical, actor=actor, note=note)
        result.refresh_from_db()
        return result


def rating_adjust(*, rating_id: int, mu: float, sigma: float, actor, note: str) -> Rating:
    """An operator sets a rating's mu and sigma (audited in its history)."""
    if not note.strip():
        raise Invalid("invalid", "note: say why (it is kept in the rating's history).")
    if not (0 < sigma <= 10 * skill.SIGMA) or not (-1e6 < mu < 1e6):
        raise Invalid("invalid", "mu or sigma out of range.")
    return _rating_set(rating_id, skill.Skill(mu, sigma), RatingChange.Reason.ADJUST, actor, note)


def rating_reset(*, rating_id: int, actor, note: str) -> Rating:
    """An operator puts a rating back to a new player's (games played are kept)."""
    return _rating_set(rating_id, skill.NEW, RatingChange.Reason.RESET, actor, note or "reset")


def _rating_set(rating_id, value: skill.Skill, reason, actor, note) -> Rating:
    with transaction.atomic():
        rating = Rating.objects.select_for_update().filter(pk=rating_id).first()
        if rating is None:
            raise NotFound("rating_not_found", "There is no such rating.")
        RatingChange.objects.create(
            rating=rating,
            reason=reason,
            mu_before=rating.mu,
            sigma_before=rating.sigma,
            mu_after=value.mu,
            sigma_after=value.sigma,
            actor=actor,
            note=note[:300],
        )
        rating.set_skill(value)
        rating.save(update_fields=["mu", "sigma", "ordinal", "updated_at"])
        return rating
