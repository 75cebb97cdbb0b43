"""Writes: chat, mutes, reports, bans and the audit log (issue 15, docs/moderation.md).

Where this app sits: above `lobby` and `matchmaking`. It calls their services (a banned player
leaves through `lobby_leave`, `ticket_cancel` and `party_leave`, so relays are revoked and
everyone is told), and they never import it: their doors reach the ban check through
`lobby.gates`, their admin actions reach the audit log through `config.audit`.

Locks: a ban locks the player's row before writing; a door's gate check locks the same row after
the door's own locks (lobby row first, lock order relay session -> lobby -> players). So a ban
and a join of the same player are serialized: either the join sees the ban, or the removal that
follows the ban sees the membership the join made.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from config.integrity import violated_constraint
from lobby import services as lobby_services
from lobby.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from lobby.events import events_emit
from lobby.models import Lobby, Membership, Player
from matchmaking import services as matchmaking_services
from matchmaking.models import PartyMember, Ticket
from moderation.models import AuditEntry, Ban, ChatMessage, Mute, Report
from moderation.selectors import chat_membership

logger = logging.getLogger(__name__)
ACTIVE = Membership.State.ACTIVE

# How many of a lobby's last messages a report carries as evidence.
REPORT_EVIDENCE_MESSAGES = 20
# Mutes a player may hold: enough for anyone, bounded so the recipients query stays small.
MAX_MUTES = 500
REPORT_CONSTRAINT = "one_open_report_per_pair"
MUTE_CONSTRAINT = "mute_once_per_pair"


# --- Bans: in force, refused at every door ----------------------------------------------------


def bans_in_force_q(now: datetime | None = None) -> Q:
    now = now or timezone.now()
    return Q(lifted_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def ban_in_force(*, player_id: int) -> Ban | None:
    """The ban that ends last among those in force (a ban for good first), or None."""
    bans = Ban.objects.filter(bans_in_force_q(), player_id=player_id)
    forever = bans.filter(expires_at__isnull=True).order_by("-created_at").first()
    return forever or bans.order_by("-expires_at").first()


def ban_until_text(ban: Ban) -> str:
    if ban.expires_at is None:
        return "for good"
    return "until " + ban.expires_at.strftime("%Y-%m-%d %H:%M UTC")


def banned_error(ban: Ban, *, yours: bool = True) -> Forbidden:
    """403 `banned` (or `party_member_banned`) saying until when, and why."""
    until = ban.expires_at.isoformat().replace("+00:00", "Z") if ban.expires_at else None
    if yours:
        message = f"You are banned {ban_until_text(ban)}. Reason: {ban.reason}"
        return Forbidden("banned", message, banned_until=until, reason=ban.reason)
    return Forbidden(
        "party_member_banned",
        f"A member of your party is banned {ban_until_text(ban)}.",
        banned_until=until,
    )


def _lock_players(player_ids) -> None:
    # pk order, like lobby.events: two lockers of overlapping players queue, never deadlock.
    if connection.features.has_select_for_update and player_ids:
        list(
            Player.objects.select_for_update()
            .filter(pk__in=sorted(player_ids))
            .order_by("pk")
            .values_list("pk", flat=True)
        )


def bans_refuse(*, player_ids: list[int], door: str) -> None:
    """The `lobby.gates` check: refuse a door (lobby create or join, queue) to banned players.
    `player_ids[0]` is the caller; the others are the party it queues."""
    if not player_ids:
        return
    _lock_players(player_ids)
    for index, player_id in enumerate(player_ids):
        ban = ban_in_force(player_id=player_id)
        if ban is not None:
            raise banned_error(ban, yours=index == 0)


def _refuse_if_banned(player: Player) -> None:
    ban = ban_in_force(player_id=player.pk)
    if ban is not None:
        raise banned_error(ban)


def ban_create(
    *,
    player: Player,
    reason: str,
    duration: timedelta | None,
    actor,
    report: Report | None = None,
) -> Ban:
    """Ban a player for `duration` (None: for good). The player is told (`player.banned`), then
    removed from its lobby, its searches and its party through their services."""
    reason = reason.strip()
    if not reason:
        raise Invalid("invalid", "Give a reason: the player is shown it.")
    if duration is not None and duration <= timedelta(0):
        raise Invalid("invalid", "A ban lasts a positive time, or for good.")
    with transaction.atomic():
        _lock_players([player.pk])
        ban = Ban.objects.create(
            player=player,
            reason=reason[:300],
            expires_at=timezone.now() + duration if duration is not None else None,
            created_by=actor,
            report=report,
        )
        audit_record(
            actor=actor,
            action="ban",
            target=player,
            reason=reason,
            details={
                "ban_id": ban.pk,
                "until": _iso(ban.expires_at),
                "report_id": report.pk if report else None,
            },
        )
        if report is not None and report.status == Report.Status.OPEN:
            _report_close(report, Report.Status.RESOLVED, actor, f"banned {ban_until_text(ban)}")
        events_emit(
            player_ids=[player.pk],
            type="player.banned",
            data={
                "banned_until": _iso(ban.expires_at),
                "reason": ban.reason,
                "message": banned_error(ban).message,
            },
        )
    # After the ban commits: every door refuses from now on, so nothing re-adds the player
    # while it is being removed (see the module's note on locks).
    player_remove_everywhere(player=player)
    return ban


def player_remove_everywhere(*, player: Player) -> None:
    """Take a player out of its searches, party and lobby, each through its own service."""
    searching = Ticket.objects.filter(status=Ticket.Status.SEARCHING).select_related("player")
    for ticket in searching:
        if any(m.get("player_id") == player.pk for m in ticket.members):
            # A ticket matched meanwhile refuses: the lobby removal below takes the player out.
            with contextlib.suppress(ServiceError):
                matchmaking_services.ticket_cancel(ticket_id=ticket.pk, player=ticket.player)
    for member in PartyMember.objects.filter(player=player, active=True):
        with contextlib.suppress(ServiceError):  # disbanded meanwhile
            matchmaking_services.party_leave(party_id=member.party_id, player=player)
    for membership in Membership.objects.filter(player=player, state=ACTIVE):
        with contextlib.suppress(ServiceError):  # closed meanwhile
            lobby_services.lobby_leave(lobby_id=membership.lobby_id, player=player)


def ban_lift(*, ban: Ban, actor, reason: str) -> bool:
    """Lift a ban early. False when it was lifted already."""
    with transaction.atomic():
        lifted = Ban.objects.filter(pk=ban.pk, lifted_at__isnull=True).update(
            lifted_at=timezone.now(), lifted_by=actor, lift_reason=reason.strip()[:300]
        )
        if lifted:
            audit_record(
                actor=actor,
                action="unban",
                target=ban.player,
                reason=reason,
                details={"ban_id": ban.pk},
            )
    return bool(lifted)


# --- Chat --------------------------------------------------------------------------------------


def chat_post(*, lobby_id, player: Player, text: str) -> ChatMessage:
    """A member's line: stored, and a `lobby.message` event for every member but those who
    muted the sender (the sender gets its own line back, so every tab of it shows it)."""
    _refuse_if_banned(player)
    with transaction.atomic():
        membership = chat_membership(lobby_id=lobby_id, player=player)
        message = ChatMessage.objects.create(
            lobby_id=membership.lobby_id,
            sender=player,
            display_name=player.display_name,
            text=text,
        )
        members = set(
            Membership.objects.filter(lobby_id=membership.lobby_id, state=ACTIVE).values_list(
                "player_id", flat=True
            )
        )
        muters = set(
            Mute.objects.filter(muted=player, muter_id__in=members).values_list(
                "muter_id", flat=True
            )
        )
        events_emit(player_ids=members - muters, type="lobby.message", data=message.as_data())
    return message


def messages_prune() -> int:
    """Delete the messages of lobbies closed longer ago than EVENT_RETENTION (their events go
    then too). Reports keep their own copy."""
    cutoff = timezone.now() - timedelta(seconds=settings.EVENT_RETENTION)
    deleted, _ = ChatMessage.objects.filter(
        lobby__state=Lobby.State.CLOSED, lobby__closed_at__lt=cutoff
    ).delete()
    return deleted


# --- Mutes -------------------------------------------------------------------------------------


def mute_create(*, player: Player, target_id: int) -> Mute:
    """Mute `target_id` for `player` (idempotent)."""
    if target_id == player.pk:
        raise Invalid("cannot_mute_self", "You cannot mute yourself.")
    if not Player.objects.filter(pk=target_id).exists():
        raise NotFound("player_not_found", "There is no such player.")
    existing = Mute.objects.filter(muter=player, muted_id=target_id).first()
    if existing is not None:
        return existing
    if Mute.objects.filter(muter=player).count() >= MAX_MUTES:
        raise Conflict("too_many_mutes", f"You can mute at most {MAX_MUTES} players.")
    try:
        with transaction.atomic():
            return Mute.objects.create(muter=player, muted_id=target_id)
    except IntegrityError as exc:  # the same mute, sent twice at once
        if violated_constraint(exc) != MUTE_CONSTRAINT:
            raise
        return Mute.objects.get(muter=player, muted_id=target_id)


def mute_delete(*, player: Player, target_id: int) -> None:
    Mute.objects.filter(muter=player, muted_id=target_id).delete()


# --- Reports -----------------------------------------------------------------------------------


def report_create(
    *, lobby_id, reporter: Player, target_id: int, reason: str, note: str = ""
) -> Report:
    """Report a player met in a lobby. Both must be (or have been) its members; the lobby's last
    messages are copied in as evidence."""
    lobby = Lobby.objects.filter(pk=lobby_id).first()
    if lobby is None:
        raise NotFound("lobby_not_found", "There is no such lobby.")
    if not lobby.memberships.filter(player=reporter).exists():
        if lobby.visibility == Lobby.Visibility.PRIVATE:
            raise NotFound("lobby_not_found", "There is no such lobby.")
        raise Forbidden("not_a_member", "Only the lobby's members can report its players.")
    if target_id == reporter.pk:
        raise Invalid("cannot_report_self", "You cannot report yourself.")
    if not lobby.memberships.filter(player_id=target_id).exists():
        raise NotFound("target_not_in_lobby", "That player was never in this lobby.")
    recent = ChatMessage.objects.filter(lobby=lobby).order_by("-created_at", "-pk")
    evidence = [m.as_data() for m in reversed(recent[:REPORT_EVIDENCE_MESSAGES])]
    try:
        with transaction.atomic():
            return Report.objects.create(
                reporter=reporter,
                reported_id=target_id,
                lobby=lobby,
                reason=reason,
                note=note.strip(),
                evidence=evidence,
            )
    except IntegrityError as exc:
        if violated_constraint(exc) != REPORT_CONSTRAINT:
            raise
        raise Conflict(
            "already_reported", "You reported this player already; operators are on it."
        ) from None


def _report_close(report: Report, status: str, actor, resolution: str) -> None:
    report.status = status
    report.handled_at = timezone.now()
    report.handled_by = actor
    report.resolution = resolution[:300]
    report.save(update_fields=["status", "handled_at", "handled_by", "resolution"])
    audit_record(
        actor=actor,
        action="report.resolve" if status == Report.Status.RESOLVED else "report.dismiss",
        target=report,
        reason=resolution,
        details={"report_id": report.pk, "reported_id": report.reported_id},
    )


def report_dismiss(*, report: Report, actor, note: str = "") -> bool:
    """Close an open report without action. False when it was handled already."""
    note = note.strip() or "no action needed"
    return _report_close_open(report, Report.Status.DISMISSED, actor, note)


def report_resolve(*, report: Report, actor, note: str = "") -> bool:
    """Close an open report as acted upon outside a ban (a warning, a rename). False when it
    was handled already."""
    return _report_close_open(report, Report.Status.RESOLVED, actor, note.strip() or "resolved")


def _report_close_open(report: Report, status: str, actor, note: str) -> bool:
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report.pk)
        if report.status != Report.Status.OPEN:
            return False
        _report_close(report, status, actor, note)
        return True


def report_ban(*, report: Report, actor, duration: timedelta | None, reason: str) -> Ban:
    """Ban the reported player from a report; the report is resolved with it."""
    return ban_create(
        player=report.reported, reason=reason, duration=duration, actor=actor, report=report
    )


# --- The audit log -----------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def audit_record(*, actor, action: str, target=None, reason: str = "", details=None) -> AuditEntry:
    """One operator action, with who, what, when and why."""
    name = actor.get_username() if actor is not None else "system"
    target_type = target_id = target_repr = ""
    if target is not None:
        target_type = target._meta.label_lower
        target_id = str(target.pk)
        target_repr = str(target)[:200]
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_name=name[:150],
        action=action[:48],
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        reason=reason or "",
        details=details or {},
    )


def on_operator_acted(sender, *, user, action, target=None, reason="", details=None, **kwargs):
    """config.audit's receiver: other apps' admin actions land in the same log."""
    audit_record(actor=user, action=action, target=target, reason=reason, details=details)
