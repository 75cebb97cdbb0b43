"""Writes: players, lobbies and their relay sessions (design.md §4-6).

Every change to a lobby runs in one transaction that locks the lobby row, re-checks the rules on
what it read under the lock, bumps `version`, and writes the members' events. Locks are always
taken in one order, relay session -> lobby -> players, so concurrent requests and the relay
worker queue up instead of deadlocking. On SQLite, IMMEDIATE transactions serialize writers, and
the constraints (one active lobby per player, never over capacity) are the last guard everywhere.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from rest_framework.authtoken.models import Token

from config.integrity import violated_constraint
from lobby.errors import Conflict, Forbidden, NotFound
from lobby.events import events_emit, events_emit_each, events_emit_many
from lobby.gates import players_admit
from lobby.models import (
    Lobby,
    Membership,
    Player,
    PlayerEvent,
    holder_player_id,
    new_join_code,
    player_holder,
)
from lobby.selectors import assignment_for, assignments_for, lobby_members, lobby_snapshot
from relays import services as relays
from relays.models import RelaySession, Seat

logger = logging.getLogger(__name__)
State = Lobby.State
ACTIVE = Membership.State.ACTIVE
# A player's last_seen_at is written at most this often: polling must not mean a write per call.
SEEN_RESOLUTION = timedelta(seconds=30)
# The constraints (lobby.models) whose violation is a domain answer, by name.
ONE_LOBBY_CONSTRAINT = "one_active_lobby_per_player"
CAPACITY_CONSTRAINT = "lobby_never_over_capacity"
JOIN_CODE_CONSTRAINT = "lobby_lobby_join_code_key"


# --- Players ---------------------------------------------------------------------------------


def player_create_guest(*, display_name: str) -> tuple[Player, str]:
    """A guest player with an API token; returns the player and the token's key."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=f"guest-{secrets.token_hex(8)}")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        player = Player.objects.create(
            user=user, display_name=display_name, is_guest=True, last_seen_at=timezone.now()
        )
        token = Token.objects.create(user=user)
    return player, token.key


def player_for_user(user) -> Player:
    """The user's player; a Django user (staff, a signed-up account) becomes one on first use."""
    player = getattr(user, "_player_cache", None)
    if player is None:
        player, _ = Player.objects.get_or_create(
            user=user, defaults={"display_name": (user.get_username() or "player")[:32]}
        )
        user._player_cache = player
    return player


def player_arrived(request, user) -> None:
    """Who is calling, as the API's authentication found it: `request.player`, seen now."""
    request.player = player_for_user(user)
    player_touch(request.player)


def player_touch(player: Player) -> None:
    """Record that the player is around (for abandonment), at most every SEEN_RESOLUTION."""
    now = timezone.now()
    if player.last_seen_at is None or now - player.last_seen_at >= SEEN_RESOLUTION:
        Player.objects.filter(pk=player.pk).update(last_seen_at=now)
        player.last_seen_at = now


# --- Locking and announcing ------------------------------------------------------------------


def _locked_lobby(lobby_id) -> Lobby:
    """The lobby, locked for this transaction (and its relay session first, in lock order)."""
    for _ in range(3):
        row = Lobby.objects.filter(pk=lobby_id).values("relay_session_id").first()
        if row is None:
            raise NotFound("lobby_not_found", "There is no such lobby.")
        relay_session_id = row["relay_session_id"]
        if relay_session_id is not None:
            list(RelaySession.objects.select_for_update().filter(pk=relay_session_id))
        lobby = Lobby.objects.select_for_update().get(pk=lobby_id)
        if lobby.relay_session_id == relay_session_id:
            return lobby
    raise Conflict("busy", "The lobby is changing; try again.")  # pragma: no cover


def _membership(lobby: Lobby, player: Player, members=None) -> Membership:
    """The player's active membership, or the refusal; `members`: the active memberships when
    the caller has them at hand (no query then)."""
    if lobby.state == State.CLOSED:
        raise Conflict("lobby_closed", "This lobby has closed.")
    if members is None:
        membership = lobby.memberships.filter(player=player, state=ACTIVE).first()
    else:
        membership = next((m for m in members if m.player_id == player.pk), None)
    if membership is None:
        raise Forbidden("not_a_member", "You are not a member of this lobby.")
    return membership


def _require_host(lobby: Lobby, player: Player, members=None) -> None:
    _membership(lobby, player, members)
    if lobby.host_id != player.pk:
        raise Forbidden("not_host", "Only the lobby's host can do that.")


def _changed(
    lobby: Lobby, *fields: str, extra_recipients=(), members=None, assignments: bool = False
) -> None:
    """Save the lobby with a new version and tell every member (and `extra_recipients`).

    `members`: the active memberships when the caller has them at hand (and they are current).
    `assignments`: the members' relay assignments changed too (a start, a ready or failed
    relay); each member's `relay.assignment` is written with the `lobby.updated`, in the same
    two statements.
    """
    lobby.version += 1
    lobby.last_activity_at = timezone.now()
    lobby.save(update_fields=[*fields, "version", "last_activity_at"])
    members = lobby_members(lobby) if members is None else members
    snapshot = lobby_snapshot(lobby, members)
    recipients = {member.player_id for member in members} | set(extra_recipients)
    batches = [("lobby.updated", dict.fromkeys(recipients, snapshot))]
    if assignments:
        batches.append(("relay.assignment", _assignments(lobby, [m.player_id for m in members])))
    events_emit_many(batches)


def _assignments(lobby: Lobby, player_ids) -> dict[int, dict]:
    return assignments_for(lobby=lobby, player_ids=list(player_ids), session=lobby.relay_session)


def _announce_assignments(lobby: Lobby, player_ids) -> None:
    events_emit_each(_assignments(lobby, player_ids), type="relay.assignment")


# --- Lobbies ---------------------------------------------------------------------------------


def lobby_create(
    *,
    player: Player,
    ip: str,
    name: str,
    max_players: int,
    visibility: str = Lobby.Visibility.PUBLIC,
    mode: str = "",
    region: str = "",
    metadata: dict | None = None,
    joinable_after_start: bool = True,
) -> Lobby:
    """Create a lobby with the player as host and first member."""
    for _ in range(5):  # a join code collision is astronomically rare; retry a few times
        try:
            with transaction.atomic():
                players_admit(player_ids=[player.pk], door="lobby_create")  # bans (lobby.gates)
                if Membership.objects.filter(player=player, state=ACTIVE).exists():
                    raise Conflict("already_in_lobby", "Leave your current lobby first.")
                lobby = Lobby.objects.create(
                    name=name,
                    host=player,
                    max_players=max_players,
                    visibility=visibility,
                    mode=mode,
                    region=region,
                    metadata=metadata or {},
                    joinable_after_start=joinable_after_start,
                    member_count=1,
                    join_code=new_join_code(),
                )
                Membership.objects.create(lobby=lobby, player=player, ip=ip)
                events_emit(
                    player_ids=[player.pk], type="lobby.updated", data=lobby_snapshot(lobby)
                )
                return lobby
        except IntegrityError as exc:
            if violated_constraint(exc) == ONE_LOBBY_CONSTRAINT:  # joined another meanwhile
                raise Conflict("already_in_lobby", "Leave your current lobby first.") from None
            if violated_constraint(exc) != JOIN_CODE_CONSTRAINT:
                raise
            # else a join code collision: try another code
    raise Conflict("busy", "Could not create the lobby; try again.")  # pragma: no cover


def lobby_join(*, lobby_id, player: Player, ip: str, by_code: bool = False) -> Lobby:
    """Join a lobby (a private one only by its code). After start, the relay authorizes the
    new player when the lobby allows late joins."""
    try:
        with transaction.atomic():
            lobby = _locked_lobby(lobby_id)
            players_admit(player_ids=[player.pk], door="lobby_join")  # bans (lobby.gates)
            if lobby.visibility == Lobby.Visibility.PRIVATE and not by_code:
                raise NotFound("lobby_not_found", "There is no such lobby.")
            current = Membership.objects.filter(player=player, state=ACTIVE).first()
            if current is not None:
                if current.lobby_id == lobby.pk:
                    return lobby  # already in: joining again is a no-op
                raise Conflict("already_in_lobby", "Leave your current lobby first.")
            _refuse_within_kick_cooldown(lobby, player)
            if lobby.state == State.CLOSED:
                raise Conflict("lobby_closed", "This lobby has closed.")
            if lobby.state in Lobby.STARTED and not lobby.joinable_after_start:
                raise Conflict("lobby_started", "This lobby's match has started.")
            if lobby.member_count >= lobby.max_players:
                raise Conflict("lobby_full", "This lobby is full.")
            Membership.objects.create(lobby=lobby, player=player, ip=ip)
            lobby.member_count += 1
            if lobby.state in Lobby.STARTED and lobby.relay_session_id:
                relays.relay_seat_add(
                    session=lobby.relay_session, holder=player_holder(player.pk), ip=ip
                )
            _changed(lobby, "member_count")
            if lobby.state in Lobby.STARTED:
                _announce_assignments(lobby, [player.pk])
            return lobby
    except IntegrityError as exc:
        # The constraints are the last guard when two requests race past the checks above.
        name = violated_constraint(exc)
        if name == ONE_LOBBY_CONSTRAINT:  # the same player joined another lobby meanwhile
            raise Conflict("already_in_lobby", "You are already in another lobby.") from None
        if name == CAPACITY_CONSTRAINT:
            raise Conflict("lobby_full", "This lobby is full.") from None
        raise


def _refuse_within_kick_cooldown(lobby: Lobby, player: Player) -> None:
    """A kicked player stays out of that lobby for LOBBY_KICK_COOLDOWN seconds, then may rejoin
    like anyone (docs/api.md "Kick cooldown")."""
    since = timezone.now() - timedelta(seconds=settings.LOBBY_KICK_COOLDOWN)
    kicked_at = (
        lobby.memberships.filter(player=player, state=Membership.State.KICKED, ended_at__gt=since)
        .order_by("-ended_at")
        .values_list("ended_at", flat=True)
        .first()
    )
    if kicked_at is not None:
        until = kicked_at + timedelta(seconds=settings.LOBBY_KICK_COOLDOWN)
        raise Forbidden(
            "kicked",
            f"The host removed you from this lobby; you can join it again after "
            f"{until.strftime('%H:%M:%S')} UTC.",
            until=until.isoformat().replace("+00:00", "Z"),
        )


def lobby_join_by_code(*, code: str, player: Player, ip: str) -> Lobby:
    lobby_id = (
        Lobby.objects.filter(join_code=code.strip().upper())
        .exclude(state=State.CLOSED)
        .values_list("pk", flat=True)
        .first()
    )
    if lobby_id is None:
        raise NotFound("wrong_code", "No open lobby has that code.")
    return lobby_join(lobby_id=lobby_id, player=player, ip=ip, by_code=True)


def _remove_member(lobby: Lobby, membership: Membership, state: str) -> None:
    """End a membership; after start the player's relay seat is revoked."""
    membership.state = state
    membership.ended_at = timezone.now()
    membership.save(update_fields=["state", "ended_at"])
    lobby.member_count -= 1
    if lobby.relay_session_id:
        seat = Seat.objects.filter(
            session_id=lobby.relay_session_id,
            holder=player_holder(membership.player_id),
            revoked=False,
        ).first()
        if seat is not None:
            relays.relay_seat_revoke(seat=seat)


def lobby_leave(*, lobby_id, player: Player) -> None:
    """Leave. The host leaving before start hands the lobby to the longest-standing member;
    after start the host is the relay's server, so its leaving ends the lobby."""
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        membership = _membership(lobby, player)
        if lobby.member_count == 1:
            _close(lobby, reason="empty")
            return
        if lobby.host_id == player.pk and lobby.state in Lobby.STARTED:
            _close(lobby, reason="host_left")
            return
        _remove_member(lobby, membership, Membership.State.LEFT)
        fields = ["member_count"]
        if lobby.host_id == player.pk:
            lobby.host_id = lobby_members(lobby)[0].player_id
            fields.append("host")
        _changed(lobby, *fields, extra_recipients=[player.pk])


def lobby_set_ready(*, lobby_id, player: Player, ready: bool, ip: str) -> Lobby:
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        membership = _membership(lobby, player)
        if lobby.state not in Lobby.GATHERING:
            raise Conflict("wrong_state", "Readiness can only change before the match starts.")
        membership.ready = ready
        membership.ip = ip  # the freshest address before the relay is asked for
        membership.save(update_fields=["ready", "ip"])
        _changed(lobby)
        return lobby


def lobby_kick(*, lobby_id, player: Player, target_id: int) -> Lobby:
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        _require_host(lobby, player)
        if target_id == player.pk:
            raise Conflict("cannot_kick_self", "The host cannot kick itself; leave or end instead.")
        target = lobby.memberships.filter(player_id=target_id, state=ACTIVE).first()
        if target is None:
            raise NotFound("target_not_in_lobby", "That player is not in this lobby.")
        _remove_member(lobby, target, Membership.State.KICKED)
        _changed(lobby, "member_count")
        events_emit(
            player_ids=[target_id],
            type="lobby.kicked",
            data={
                "lobby_id": str(lobby.pk),
                "version": lobby.version,
                "message": "The host removed you from the lobby.",
            },
        )
        return lobby


def lobby_transfer_host(*, lobby_id, player: Player, target_id: int) -> Lobby:
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        _require_host(lobby, player)
        if lobby.state not in Lobby.GATHERING:
            raise Conflict("wrong_state", "The host can only change before the match starts.")
        if not lobby.memberships.filter(player_id=target_id, state=ACTIVE).exists():
            raise NotFound("target_not_in_lobby", "That player is not in this lobby.")
        lobby.host_id = target_id
        _changed(lobby, "host")
        return lobby


def lobby_start(*, lobby_id, player: Player) -> Lobby:
    """Start the match: every member ready, at least two; the relay is allocated by a worker."""
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        members = lobby_members(lobby)
        _require_host(lobby, player, members)
        if lobby.state not in Lobby.GATHERING:
            raise Conflict("wrong_state", f"The lobby cannot start while {lobby.state}.")
        if len(members) < 2:
            raise Conflict("not_enough_players", "At least two players are needed to start.")
        waiting = [m.player.display_name for m in members if not m.ready]
        if waiting:
            raise Conflict("not_ready", f"Not everyone is ready: {', '.join(waiting)}.")
        _allocate(lobby, members)
        return lobby


def _allocate(lobby: Lobby, members: list[Membership]) -> None:
    host = next(m for m in members if m.player_id == lobby.host_id)
    ordered = [host] + [m for m in members if m is not host]  # the host is seat 0: the server
    lobby.relay_session = relays.relay_session_open(
        owner=lobby.relay_owner,
        seats=[relays.SeatRequest(holder=m.relay_holder, ip=m.ip) for m in ordered],
    )
    lobby.state = State.ALLOCATING
    lobby.failure_reason = ""
    _changed(lobby, "relay_session", "state", "failure_reason", members=members, assignments=True)


def lobby_create_for_match(
    *, name: str, mode: str, region: str, seats: list[tuple[int, str]], host_id: int, metadata
) -> Lobby:
    """A lobby for a formed match: private, exactly full, everyone ready, started at once.

    `seats` are (player id, ip); raises `Conflict` when a player is in another lobby by now
    (the caller's transaction rolls back and the match is dropped).
    """
    with transaction.atomic():
        lobby = Lobby.objects.create(
            name=name[:64],
            host_id=host_id,
            max_players=len(seats),
            member_count=len(seats),
            visibility=Lobby.Visibility.PRIVATE,
            mode=mode[:32],
            region=region[:32],
            metadata=metadata,
            joinable_after_start=False,
            join_code=new_join_code(),
        )
        try:
            with transaction.atomic():
                Membership.objects.bulk_create(
                    Membership(lobby=lobby, player_id=player_id, ip=ip, ready=True)
                    for player_id, ip in seats
                )
        except IntegrityError as exc:
            if violated_constraint(exc) != ONE_LOBBY_CONSTRAINT:
                raise
            raise Conflict("already_in_lobby", "A matched player is in another lobby.") from None
        _allocate(lobby, lobby_members(lobby))
        return lobby


def lobby_end(*, lobby_id, player: Player) -> None:
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        _require_host(lobby, player)
        _close(lobby, reason="ended")


def lobby_close(*, lobby_id, reason: str) -> bool:
    """Close a lobby whoever asks (an operator, abandonment). False if it was closed already."""
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        if lobby.state == State.CLOSED:
            return False
        _close(lobby, reason=reason)
        return True


def _close(lobby: Lobby, *, reason: str) -> None:
    """Close the lobby, end every membership, and delete its relay session (after commit)."""
    members = lobby_members(lobby)
    now = timezone.now()
    Membership.objects.filter(lobby=lobby, state=ACTIVE).update(
        state=Membership.State.LEFT, ended_at=now
    )
    lobby.state = State.CLOSED
    lobby.closed_reason = reason
    lobby.closed_at = now
    lobby.member_count = 0
    lobby.version += 1
    lobby.save(update_fields=["state", "closed_reason", "closed_at", "member_count", "version"])
    if lobby.relay_session_id:
        # After the lobby is saved closed: the relay announces the close at once, and its
        # receiver must see a closed lobby, not a running one whose relay went away.
        relays.relay_session_close(session=lobby.relay_session, reason=f"lobby {reason}")
    events_emit(
        player_ids=[m.player_id for m in members],
        type="lobby.closed",
        data={"lobby_id": str(lobby.pk), "reason": reason, "version": lobby.version},
    )


def lobby_retry_allocation(*, lobby_id) -> bool:
    """An operator's retry: a failed or stuck lobby gets a fresh relay session."""
    with transaction.atomic():
        lobby = _locked_lobby(lobby_id)
        if lobby.state not in (State.FAILED, State.ALLOCATING):
            return False
        if lobby.relay_session_id:
            relays.relay_session_close(session=lobby.relay_session, reason="retried by operator")
        _allocate(lobby, lobby_members(lobby))
        return True


def lobbies_close_abandoned() -> int:
    """Close live lobbies none of whose members has been seen for LOBBY_ABANDON_AFTER."""
    cutoff = timezone.now() - timedelta(seconds=settings.LOBBY_ABANDON_AFTER)
    stale = (
        Lobby.objects.filter(state__in=Lobby.LIVE, last_activity_at__lt=cutoff)
        .annotate(seen=Max("memberships__player__last_seen_at"))
        .values_list("pk", "seen")
    )
    closed = 0
    for lobby_id, seen in stale:
        if seen is None or seen < cutoff:
            closed += lobby_close(lobby_id=lobby_id, reason="abandoned")
    if closed:
        logger.info("closed %d abandoned lobbies", closed)
    return closed


def events_prune() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.EVENT_RETENTION)
    deleted, _ = PlayerEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- Following the relay (receivers of relays.signals, connected in LobbyConfig.ready) -------


def _lobby_of(session: RelaySession) -> Lobby | None:
    # The relays service holds the session row's lock already: lock order is kept.
    return Lobby.objects.select_for_update().filter(relay_session=session).first()


def on_relay_session_ready(sender, session, **kwargs) -> None:
    lobby = _lobby_of(session)
    if lobby is None or lobby.state != State.ALLOCATING:
        return
    lobby.relay_session = session
    lobby.state = State.READY
    members = lobby_members(lobby)
    _changed(lobby, "state", members=members, assignments=True)


def on_relay_session_failed(sender, session, reason, **kwargs) -> None:
    lobby = _lobby_of(session)
    if lobby is None or lobby.state not in Lobby.STARTED:
        return
    _fail(lobby, session, reason)


def on_relay_session_closed(sender, session, reason, **kwargs) -> None:
    lobby = _lobby_of(session)
    if lobby is None or lobby.state not in Lobby.STARTED:
        return  # closed because the lobby closed: nothing more to say
    # The relay went away under a running lobby (Edgegap lost it, an operator deleted it).
    _fail(lobby, session, f"the relay session ended: {reason}")


def _fail(lobby: Lobby, session: RelaySession, reason: str) -> None:
    lobby.relay_session = session
    lobby.state = State.FAILED
    lobby.failure_reason = reason[:300]
    _changed(lobby, "state", "failure_reason", assignments=True)


def _seat_member(seat: Seat) -> tuple[Lobby, int] | None:
    """The lobby and player of a seat, if it is a current member's (sessions of other apps'
    have other holders)."""
    player_id = holder_player_id(seat.holder)
    lobby = Lobby.objects.filter(relay_session_id=seat.session_id).first()
    if player_id is None or lobby is None:
        return None
    if not lobby.memberships.filter(player_id=player_id, state=ACTIVE).exists():
        return None
    return lobby, player_id


def on_relay_seat_authorized(sender, seat, **kwargs) -> None:
    found = _seat_member(seat)
    if found is not None:
        lobby, player_id = found
        _announce_assignments(lobby, [player_id])


def on_relay_seat_authorization_failed(sender, seat, reason, **kwargs) -> None:
    found = _seat_member(seat)
    if found is not None:
        lobby, player_id = found
        assignment = assignment_for(lobby=lobby, player_id=player_id)
        assignment.update(status="failed", error=f"the relay refused this player: {reason}")
        events_emit(player_ids=[player_id], type="relay.assignment", data=assignment)
