"""Writes: parties, tickets, and the matcher pass that turns matches into lobbies.

A pass runs per profile under a lock that holds across hosts and dies with its holder
(`config.locks`: Redis in production), reads the searching tickets in one query, forms matches in
memory (`matchmaking.matcher`), then commits each match on its own: a conditional update moves
exactly its tickets from `searching` to `matched`, so a ticket cancelled meanwhile is never matched
(the match is dropped and its other tickets search on), and the lobby is created and started in
the same transaction. Every ticket change is a `ticket.updated` event for its players.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.integrity import violated_constraint
from config.locks import LockLost, exclusive
from lobby.errors import Conflict, Forbidden, Invalid, NotFound
from lobby.events import events_emit
from lobby.gates import players_admit
from lobby.models import Membership, Player
from lobby.services import lobby_create_for_match
from matchmaking.matcher import Match, form_matches
from matchmaking.matcher import Ticket as MatcherTicket
from matchmaking.models import Party, PartyMember, Profile, Ticket
from matchmaking.rules import (
    AttributeProblem,
    AttributesError,
    Problem,
    Rules,
    merge_party_attributes,
    parse_rules,
    validate_attributes,
)
from matchmaking.selectors import (  # noqa: F401 - party_get re-exported
    party_get,
    party_snapshot,
    ticket_get,
    ticket_snapshot,
)
from ratings import selectors as ratings_selectors
from ratings.skill import party_skill

logger = logging.getLogger(__name__)
Status = Ticket.Status
PASS_LOCK_SECONDS = 30
SEARCHING_CONSTRAINT = "one_searching_ticket_per_player"
PARTY_CONSTRAINT = "one_active_party_per_player"
# Where a ticket keeps the ratings the server filled in (not a rule name: never validated).
RATED_KEY = "$rated"


class AttributesInvalid(Invalid):
    """A ticket's attributes do not fit the profile: the message names the first, `fields`
    every one in words, `problems` every one as a code and its parameters (same keys), so a
    client never has to parse the words (docs/matchmaking.md, Create). When the attributes are
    a party member's own (set with PUT .../attributes), `player_id` names that member."""

    def __init__(self, problems: dict[str, AttributeProblem], *, member: Player | None = None):
        errors = {name: problem.message for name, problem in problems.items()}
        name, text = next(iter(errors.items()))
        message = f"attributes.{name} {text}" if name else text
        extra = {}
        if member is not None:
            message = f"{member.display_name}'s own {message}"
            extra["player_id"] = member.pk
        super().__init__(
            "invalid",
            message,
            fields={"attributes": errors},
            problems={"attributes": {name: p.as_dict() for name, p in problems.items()}},
            **extra,
        )


def _announce(ticket: Ticket) -> None:
    events_emit(
        player_ids=[member["player_id"] for member in ticket.members],
        type="ticket.updated",
        data=ticket_snapshot(ticket),
    )


# --- Parties ---------------------------------------------------------------------------------


def _active_party(player: Player) -> Party | None:
    member = PartyMember.objects.filter(player=player, active=True).select_related("party").first()
    return member.party if member else None


def _party_searching(party: Party) -> bool:
    return party.tickets.filter(status=Status.SEARCHING).exists()


def party_create(*, player: Player, ip: str, max_size: int = 4) -> Party:
    with transaction.atomic():
        if _active_party(player) is not None:
            raise Conflict("already_in_party", "Leave your current party first.")
        if Ticket.objects.filter(player=player, status=Status.SEARCHING).exists():
            raise Conflict("already_queued", "Leave the queue before making a party.")
        party = Party.objects.create(leader=player, max_size=max_size)
        try:
            PartyMember.objects.create(party=party, player=player, ip=ip)
        except IntegrityError as exc:
            if violated_constraint(exc) != PARTY_CONSTRAINT:
                raise
            raise Conflict("already_in_party", "Leave your current party first.") from None
    return party


def party_join(*, code: str, player: Player, ip: str) -> Party:
    with transaction.atomic():
        party = (
            Party.objects.select_for_update()
            .filter(code=code.strip().upper(), disbanded_at=None)
            .first()
        )
        if party is None:
            raise NotFound("wrong_code", "No party has that code.")
        if party.members.filter(player=player, active=True).exists():
            return party
        if _active_party(player) is not None:
            raise Conflict("already_in_party", "Leave your current party first.")
        if Ticket.objects.filter(player=player, status=Status.SEARCHING).exists():
            raise Conflict("already_queued", "Leave the queue before joining a party.")
        if _party_searching(party):
            raise Conflict("party_searching", "This party is in a queue; join when it is not.")
        if party.members.filter(active=True).count() >= party.max_size:
            raise Conflict("party_full", "This party is full.")
        try:
            PartyMember.objects.create(party=party, player=player, ip=ip)
        except IntegrityError as exc:
            if violated_constraint(exc) != PARTY_CONSTRAINT:
                raise
            raise Conflict("already_in_party", "Leave your current party first.") from None
        _party_changed(party)
    return party


def party_leave(*, party_id, player: Player) -> None:
    """Leave a party; the leader leaving disbands it. Either way its search stops."""
    with transaction.atomic():
        party = Party.objects.select_for_update().filter(pk=party_id, disbanded_at=None).first()
        member = party and party.members.filter(player=player, active=True).first()
        if member is None:
            raise Forbidden("not_in_party", "You are not in this party.")
        for ticket in party.tickets.filter(status=Status.SEARCHING):
            _cancel(ticket)
        told = list(party.members.filter(active=True).values_list("player_id", flat=True))
        if party.leader_id == player.pk:
            party.members.filter(active=True).update(active=False)
            party.disbanded_at = timezone.now()
            party.save(update_fields=["disbanded_at"])
        else:
            member.active = False
            member.save(update_fields=["active"])
        # Everyone who was in it, the leaver too: a party with no members is disbanded.
        _party_changed(party, also=told)


def party_attributes_set(*, party_id, player: Player, attributes: dict | None) -> Party:
    """Set (or, with None, clear) the caller's own ticket attributes in its party; every member
    gets `party.updated` (as on a join or a leave). Stored as given: they are checked against a
    queue's rules only when the leader queues there. Refused while the party searches (`409
    party_searching`): its ticket was made from the attributes of that moment, and a change that
    would only apply to the next ticket would look applied when it is not."""
    with transaction.atomic():
        party = Party.objects.select_for_update().filter(pk=party_id, disbanded_at=None).first()
        member = party and party.members.filter(player=player, active=True).first()
        if member is None:
            raise NotFound("party_not_found", "There is no such party.")
        if _party_searching(party):
            raise Conflict(
                "party_searching",
                "Your party is in a queue; set your attributes when it is not "
                "(the leader can leave the queue).",
            )
        member.attributes = attributes
        member.save(update_fields=["attributes"])
        _party_changed(party)
    return party


def _party_changed(party: Party, also=()) -> None:
    """Every member (and `also`) learns the party as it is now: `party.updated`."""
    snapshot = party_snapshot(party)
    events_emit(player_ids={*snapshot["members"], *also}, type="party.updated", data=snapshot)


# --- Tickets ---------------------------------------------------------------------------------


def ticket_create(*, player: Player, profile_name: str, attributes, ip: str) -> tuple[Ticket, bool]:
    """Queue the player (or, from its leader, the whole party). A player searches in one queue
    at a time: a second call for the same profile returns the searching ticket and False, one
    for another profile is 409 `already_queued` (concurrent calls included: the database's
    `one_searching_ticket_per_player` decides)."""
    profile = Profile.objects.filter(name=profile_name, enabled=True).first()
    if profile is None:
        raise NotFound("profile_not_found", "There is no such queue.")
    with transaction.atomic():
        existing = (
            Ticket.objects.filter(player=player, status=Status.SEARCHING)
            .select_related("profile")
            .first()
        )
        if existing is not None:
            if existing.profile_id == profile.pk:
                return existing, False
            raise _already_queued(existing)
        party = _active_party(player)
        if party is not None and party.leader_id != player.pk:
            raise Forbidden("not_party_leader", "Only the party's leader can queue the party.")
        if party is not None:
            # Locked like party_join and party_attributes_set lock it: no member joins or
            # changes its attributes between this read and the ticket that is made of them.
            party = Party.objects.select_for_update().get(pk=party.pk)
            rows = list(
                party.members.filter(active=True)
                .select_related("player")
                .order_by(
                    # The leader first: the matcher's host candidate of this group.
                    "joined_at"
                )
            )
            rows.sort(key=lambda m: m.player_id != player.pk)
            members = [
                {"player_id": m.player_id, "ip": m.ip if m.player_id != player.pk else ip}
                for m in rows
            ]
        else:
            rows = []
            members = [{"player_id": player.pk, "ip": ip}]
        rules = parse_rules(profile.rules)
        if len(members) > rules.initial.player_count.max_team_size:
            raise Conflict("party_too_large", "Your party is larger than a team in this queue.")
        player_ids = [m["player_id"] for m in members]
        players_admit(player_ids=player_ids, door="queue")  # bans (lobby.gates)
        if Membership.objects.filter(player_id__in=player_ids, state="active").exists():
            raise Conflict("already_in_lobby", "Leave your lobby before queueing.")
        if (
            party is not None
            and Ticket.objects.filter(status=Status.SEARCHING, player_id__in=player_ids).exists()
        ):
            raise Conflict("already_queued", "A member of your party is already queued.")
        clean = _ticket_attributes(rules, attributes, leader=player, rows=rows)
        try:
            with transaction.atomic():  # a savepoint: the transaction survives the race below
                ticket = Ticket.objects.create(
                    profile=profile,
                    player=player,
                    party=party,
                    attributes=clean,
                    members=members,
                    expires_at=timezone.now() + timedelta(seconds=profile.ticket_ttl),
                )
        except IntegrityError as exc:
            # A concurrent POST of the same player made its ticket first (the insert waited for
            # that transaction, so the row is visible now): the same answers as if it came first.
            if violated_constraint(exc) != SEARCHING_CONSTRAINT:
                raise
            existing = (
                Ticket.objects.filter(player=player, status=Status.SEARCHING)
                .select_related("profile")
                .first()
            )
            if existing is None:  # pragma: no cover - it was cancelled again meanwhile
                raise Conflict("busy", "Your queue changed meanwhile; try again.") from None
            if existing.profile_id != profile.pk:
                raise _already_queued(existing) from None
            return existing, False
        _announce(ticket)
    return ticket, True


def _ticket_attributes(rules: Rules, submitted, *, leader: Player, rows) -> dict:
    """The attributes a ticket stores and the matcher reads (docs/matchmaking.md, Queue the
    party). `submitted` is the caller's; `rows` the party's active members, leader first (none
    for a solo ticket). Raises AttributesInvalid."""
    if not isinstance(submitted, dict):
        return _validated(rules, submitted)  # refused: not an object
    _refuse_server_owned(rules, submitted)
    skills = {
        name: ratings_selectors.skills_of(
            leaderboard_name=board, player_ids=[m.player_id for m in rows] or [leader.pk]
        )
        for name, board in rules.rated.items()
    }
    # A party's rated number: its members' mean mu, its sigma their root-mean-square.
    party = {name: party_skill(list(by_player.values())) for name, by_player in skills.items()}
    own = _members_own(rules, rows, leader)
    if own:
        clean = _merged(rules, submitted, rows, own, skills)
    else:
        # A solo ticket, or a party where nobody set values this queue reads: the submission
        # stands for everyone, as it always has.
        clean = _validated(rules, {**submitted, **{name: v.mu for name, v in party.items()}})
    if party:
        clean[RATED_KEY] = {
            name: {"leaderboard": rules.rated[name], "mu": value.mu, "sigma": value.sigma}
            for name, value in party.items()
        }
    return clean


def _members_own(rules: Rules, rows, leader: Player) -> dict[int, dict]:
    """What each member other than the leader set itself, only the names this queue reads (the
    rest may be meant for another queue). The leader's own values are its submission."""
    used = {rule.name for rule in rules.initial.rules}
    own = {}
    for m in rows:
        if m.player_id != leader.pk and isinstance(m.attributes, dict):
            values = {k: v for k, v in m.attributes.items() if k in used}
            if values:
                own[m.player_id] = values
    return own


def _merged(rules: Rules, submitted: dict, rows, own: dict[int, dict], skills) -> dict:
    """Each member's values (the leader's submission overlaid with its own, its rated numbers
    from its own rating) merged by rules.merge_party_attributes, the one definition of a
    party's value. Its rated number is then the plain mean of the members' mu, in member
    order, exactly as party_skill computes it for `$rated`: ratings (below matchmaking) cannot
    use the merge, and the rating model needs sigma beside mu, so both exist and agree."""
    per_member = []
    for m in rows:
        member = m.player if m.player_id in own else None
        _refuse_server_owned(rules, own.get(m.player_id, {}), member=member)
        values = {**submitted, **own.get(m.player_id, {})}
        values.update({name: by_player[m.player_id].mu for name, by_player in skills.items()})
        # Checked one by one first, so a problem names the member whose values have it.
        per_member.append(_validated(rules, values, member=member))
    try:
        return merge_party_attributes(rules, per_member)
    except AttributesError as exc:
        raise AttributesInvalid(exc.problems) from None


def _refuse_server_owned(rules: Rules, attributes: dict, *, member: Player | None = None):
    """A number the queue takes from ratings (docs/ratings.md) may not be sent by a client,
    nor set by a member for itself: 400 set_by_server."""
    sent = sorted(set(rules.rated) & set(attributes))
    if sent:
        raise AttributesInvalid(
            {name: Problem.SET_BY_SERVER.of(leaderboard=rules.rated[name]) for name in sent},
            member=member,
        )


def _validated(rules: Rules, attributes, *, member: Player | None = None) -> dict:
    try:
        return validate_attributes(rules, attributes)
    except AttributesError as exc:
        raise AttributesInvalid(exc.problems, member=member) from None


def _already_queued(existing: Ticket) -> Conflict:
    return Conflict(
        "already_queued",
        f"You are already queued in {existing.profile.title or existing.profile.name}.",
        ticket_id=str(existing.pk),
        profile=existing.profile.name,
    )


def _cancel(ticket: Ticket) -> bool:
    cancelled = Ticket.objects.filter(pk=ticket.pk, status=Status.SEARCHING).update(
        status=Status.CANCELLED, updated_at=timezone.now()
    )
    if cancelled:
        ticket.refresh_from_db()
        _announce(ticket)
    return bool(cancelled)


def ticket_cancel(*, ticket_id, player: Player) -> Ticket:
    with transaction.atomic():
        ticket = ticket_get(ticket_id=ticket_id, player=player)
        if ticket.player_id != player.pk:
            raise Forbidden("not_party_leader", "Only the party's leader can cancel its ticket.")
        if not _cancel(ticket):
            ticket.refresh_from_db()
            if ticket.status == Status.MATCHED:
                raise Conflict("ticket_matched", "Too late: this ticket has found a match.")
        return ticket


# --- The matcher pass ------------------------------------------------------------------------


@dataclass
class PassReport:
    profile: str
    searching: int = 0
    matches: int = 0
    matched_tickets: int = 0
    dropped: int = 0
    expired: int = 0
    explained: int = 0
    lobbies: list[uuid.UUID] = field(default_factory=list)


def matchmaking_pass(*, profile: Profile) -> PassReport | None:
    """One pass over the profile's queue; None when another host is running it."""
    with exclusive(f"matchmaking:pass:{profile.pk}", ttl=PASS_LOCK_SECONDS) as lock:
        if lock is None:
            return None
        try:
            return _pass(profile, renew=lock.renew)
        except LockLost:
            # Every match committed so far stands (each is its own transaction); the rest of the
            # queue is for the host that now holds the lock.
            logger.warning("matchmaking pass for %s outlived its lock; stopped", profile.name)
            return None


def _pass(profile: Profile, renew=lambda: None) -> PassReport:
    report = PassReport(profile=profile.name)
    now = timezone.now()
    report.expired = _expire(Ticket.objects.filter(profile=profile), now)
    rows = list(
        Ticket.objects.filter(profile=profile, status=Status.SEARCHING).values_list(
            "pk", "members", "attributes", "created_at", "expansion_step", "blocked_by"
        )
    )
    report.searching = len(rows)
    if not rows:
        return report
    tickets = [
        MatcherTicket(
            id=pk,
            players=tuple(m["player_id"] for m in members),
            attributes=attributes,
            created_at=created_at.timestamp(),
        )
        for pk, members, attributes, created_at, _, _ in rows
    ]
    result = form_matches(tickets, parse_rules(profile.rules), now.timestamp())
    members_of = {pk: members for pk, members, *_ in rows}
    for match in result.matches:
        renew()
        lobby_id = _commit_match(profile, match, members_of)
        if lobby_id is None:
            report.dropped += 1
        else:
            report.matches += 1
            report.matched_tickets += len(match.ticket_ids)
            report.lobbies.append(lobby_id)
    report.explained = _store_explanations(rows, result.unmatched)
    return report


def _expire(tickets, now) -> int:
    expired = 0
    for ticket in tickets.filter(status=Status.SEARCHING, expires_at__lte=now).select_related(
        "profile"
    ):
        with transaction.atomic():
            if Ticket.objects.filter(pk=ticket.pk, status=Status.SEARCHING).update(
                status=Status.EXPIRED, updated_at=now
            ):
                ticket.refresh_from_db()
                _announce(ticket)
                expired += 1
    return expired


def _commit_match(profile: Profile, match: Match, members_of) -> uuid.UUID | None:
    ticket_ids = match.ticket_ids
    team_of = {tid: n for n, team in enumerate(match.teams) for tid in team}
    try:
        with transaction.atomic():
            claimed = Ticket.objects.filter(pk__in=ticket_ids, status=Status.SEARCHING).update(
                status=Status.MATCHED, matched_at=timezone.now(), blocked_by=""
            )
            if claimed != len(ticket_ids):
                # A ticket left the queue since it was read: drop this match, and roll back the
                # others' claim so they search on.
                raise _MatchDropped
            seats = [m for tid in ticket_ids for m in members_of[tid]]
            teams = [
                [m["player_id"] for tid in team for m in members_of[tid]] for team in match.teams
            ]
            lobby = lobby_create_for_match(
                name=f"{profile.title or profile.name} match",
                mode=profile.mode or profile.name,
                region=match.region or "",
                seats=[(m["player_id"], m["ip"]) for m in seats],
                host_id=match.host_player,
                metadata={"profile": profile.name, "teams": teams, **_quality(match)},
            )
            for ticket in Ticket.objects.filter(pk__in=ticket_ids).select_related("profile"):
                ticket.lobby = lobby
                ticket.team = team_of[ticket.pk]
                ticket.save(update_fields=["lobby", "team", "updated_at"])
                _announce(ticket)
            return lobby.pk
    except _MatchDropped:
        return None
    except Conflict as exc:
        # A player is in a lobby now (joined one by hand): it cannot be seated; its ticket goes.
        logger.info("match dropped in %s: %s", profile.name, exc.message)
        _cancel_tickets_of_busy_players(ticket_ids, members_of)
        return None


def _quality(match: Match) -> dict:
    """A rated queue's match carries its predicted quality (`ratings.skill.match_quality`), the
    figure the matcher chose it by, from the same mu and sigma the tickets were matched on."""
    return {} if match.quality is None else {"quality": round(match.quality, 4)}


class _MatchDropped(Exception):
    pass


def _cancel_tickets_of_busy_players(ticket_ids, members_of) -> None:
    busy = set(
        Membership.objects.filter(
            state="active",
            player_id__in=[m["player_id"] for tid in ticket_ids for m in members_of[tid]],
        ).values_list("player_id", flat=True)
    )
    for ticket in Ticket.objects.filter(pk__in=ticket_ids, status=Status.SEARCHING).select_related(
        "profile"
    ):
        if busy & {m["player_id"] for m in ticket.members}:
            with transaction.atomic():
                _cancel(ticket)


def _store_explanations(rows, unmatched) -> int:
    """Write each searching ticket's expansion step and blocker, only where they changed."""
    changed = []
    steps = {pk: step for pk, _, _, _, step, _ in rows}
    for pk, _, _, _, step, blocked_by in rows:
        explanation = unmatched.get(pk)
        if explanation is None:
            continue
        message = explanation.message[:300]
        if (explanation.step, message) != (step, blocked_by):
            changed.append(Ticket(pk=pk, expansion_step=explanation.step, blocked_by=message))
    # Only searching tickets: one matched or cancelled meanwhile keeps its final state.
    if changed:
        searching = set(
            Ticket.objects.filter(
                pk__in=[t.pk for t in changed], status=Status.SEARCHING
            ).values_list("pk", flat=True)
        )
        Ticket.objects.bulk_update(
            [t for t in changed if t.pk in searching],
            ["expansion_step", "blocked_by"],
            batch_size=500,
        )
        # A new expansion step is news for the players (their rules relaxed); the blocker's text
        # changes too often to be an event each time: GET the ticket for it.
        stepped = [t.pk for t in changed if t.pk in searching and t.expansion_step != steps[t.pk]]
        for ticket in Ticket.objects.filter(pk__in=stepped).select_related("profile"):
            with transaction.atomic():
                _announce(ticket)
    return len(changed)


def matchmaking_run() -> list[PassReport]:
    """A pass over every enabled profile (the beat task)."""
    reports = []
    # Tickets of a disabled queue still expire, so their players can queue elsewhere.
    _expire(Ticket.objects.filter(profile__enabled=False), timezone.now())
    for profile in Profile.objects.filter(enabled=True):
        report = matchmaking_pass(profile=profile)
        if report is not None:
            reports.append(report)
            # Beat runs this every second: a pass that changed nothing is DEBUG, so the log keeps
            # what happened (matches, expiries, dropped matches) and relay failures stay visible.
            did_something = report.matches or report.expired or report.dropped
            logger.log(logging.INFO if did_something else logging.DEBUG, "matchmaking %s", report)
    return reports
