"""Reads: players, lobbies, assignments, events (design.md §4-5)."""

from django.db.models import Q, QuerySet

from lobby.errors import NotFound
from lobby.models import Lobby, Membership, Player, PlayerEvent, player_holder
from lobby.shapes import lobby_render
from relays.models import RelaySession, Seat

EVENTS_PAGE = 100


def lobby_list(*, mode: str = "", region: str = "", q: str = "") -> QuerySet[Lobby]:
    """Open public lobbies, newest first."""
    lobbies = Lobby.objects.filter(
        state=Lobby.State.OPEN, visibility=Lobby.Visibility.PUBLIC
    ).select_related("host")
    if mode:
        lobbies = lobbies.filter(mode=mode)
    if region:
        lobbies = lobbies.filter(region=region)
    if q:
        lobbies = lobbies.filter(Q(name__icontains=q) | Q(mode__icontains=q))
    return lobbies.order_by("-created_at", "pk")


def active_membership(player: Player) -> Membership | None:
    return (
        Membership.objects.filter(player=player, state=Membership.State.ACTIVE)
        .select_related("lobby__relay_session")
        .first()
    )


def lobby_get_visible(*, lobby_id, player: Player) -> Lobby:
    """A lobby the player may see: a public one, or one it belongs to. 404 otherwise."""
    lobby = Lobby.objects.filter(pk=lobby_id).select_related("host").first()
    if lobby is None:
        raise NotFound("lobby_not_found", "There is no such lobby.")
    if lobby.visibility == Lobby.Visibility.PRIVATE and not lobby_is_member(lobby, player):
        # A private lobby's existence is not revealed to outsiders.
        raise NotFound("lobby_not_found", "There is no such lobby.")
    return lobby


def lobby_is_member(lobby: Lobby, player: Player) -> bool:
    return lobby.memberships.filter(player=player, state=Membership.State.ACTIVE).exists()


def lobby_members(lobby: Lobby) -> list[Membership]:
    return list(lobby.memberships.filter(state=Membership.State.ACTIVE).select_related("player"))


def lobby_snapshot(lobby: Lobby, members: list[Membership] | None = None) -> dict:
    """What every member sees of the lobby (the `lobby.updated` payload and the detail), in the
    one shape `lobby.shapes.LobbyDetailOut` defines."""
    members = lobby_members(lobby) if members is None else members
    return lobby_render(lobby, members)


def assignment_for(*, lobby: Lobby, player_id: int, session: RelaySession | None = None) -> dict:
    """The player's relay assignment in this lobby (design.md §4): its own user token only."""
    return assignments_for(lobby=lobby, player_ids=[player_id], session=session)[player_id]


def assignments_for(
    *, lobby: Lobby, player_ids, session: RelaySession | None = None
) -> dict[int, dict]:
    """Each player's assignment in this lobby, with one query for all their seats."""
    session = session if session is not None else lobby.relay_session
    seats = {}
    if session is not None:
        holders = {player_holder(player_id): player_id for player_id in player_ids}
        for seat in Seat.objects.filter(session=session, holder__in=holders, revoked=False):
            seats[holders[seat.holder]] = seat
    return {
        player_id: _assignment(lobby, player_id, session, seats.get(player_id))
        for player_id in player_ids
    }


def _assignment(lobby: Lobby, player_id: int, session, seat) -> dict:
    ready = (
        lobby.state == Lobby.State.READY
        and session is not None
        and session.status == RelaySession.Status.READY
        and seat is not None
        and seat.user_token is not None
    )
    if lobby.state == Lobby.State.FAILED:
        status = "failed"
    elif ready:
        status = "ready"
    else:
        status = "pending"
    role = seat.role if seat else ("server" if lobby.host_id == player_id else "client")
    relay = None
    if ready:
        port = session.server_port if role == "server" else session.client_port
        relay = {
            "host": session.relay_host,
            "ip": session.relay_ip,
            "port": port,
            "protocol": "UDP",
        }
    return {
        "lobby_id": str(lobby.pk),
        "status": status,
        "role": role,
        "relay": relay,
        "session_authorization_token": session.session_token if ready else None,
        "user_authorization_token": seat.user_token if ready else None,
        "error": (lobby.failure_reason or None) if status == "failed" else None,
    }


def assignment_get(*, player: Player) -> dict:
    membership = active_membership(player)
    if membership is None or membership.lobby.state not in (
        Lobby.State.ALLOCATING,
        Lobby.State.READY,
        Lobby.State.FAILED,
    ):
        raise NotFound("no_assignment", "You have no relay assignment: no match has started.")
    # A hot path (game clients poll it): membership, lobby and relay session in one query.
    return assignment_for(lobby=membership.lobby, player_id=player.pk)


def events_after(*, player: Player, after: int, limit: int = EVENTS_PAGE) -> list[PlayerEvent]:
    return list(PlayerEvent.objects.filter(player=player, seq__gt=after).order_by("seq")[:limit])
