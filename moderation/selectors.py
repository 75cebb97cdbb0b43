"""Reads: a lobby's chat as one member sees it, mutes, and a player's moderation record."""

from django.db.models import QuerySet

from lobby.errors import Conflict, Forbidden, NotFound
from lobby.models import Lobby, Membership, Player
from moderation.models import Ban, ChatMessage, Mute, Report

# The last messages a page shows on load (and GET .../messages answers).
RECENT_MESSAGES = 50


def chat_membership(*, lobby_id, player: Player) -> Membership:
    """The player's membership of a live lobby, or the refusal a non-member gets."""
    lobby = Lobby.objects.filter(pk=lobby_id).only("pk", "state", "visibility").first()
    if lobby is None:
        raise NotFound("lobby_not_found", "There is no such lobby.")
    membership = (
        Membership.objects.filter(lobby=lobby, player=player, state=Membership.State.ACTIVE)
        .select_related("lobby")
        .first()
    )
    if membership is None:
        if lobby.visibility == Lobby.Visibility.PRIVATE:
            # Like the lobby detail: a private lobby's existence is not revealed to outsiders.
            raise NotFound("lobby_not_found", "There is no such lobby.")
        raise Forbidden("not_a_member", "Only the lobby's members can read and write its chat.")
    if membership.lobby.state == Lobby.State.CLOSED:  # pragma: no cover - closing ends them
        raise Conflict("lobby_closed", "This lobby has closed.")
    return membership


def chat_recent(*, lobby_id, player: Player, limit: int = RECENT_MESSAGES) -> list[ChatMessage]:
    """The lobby's last messages, oldest first, without those of players this one muted.
    Members only (the same answers as posting: 404 for a private lobby, 403 otherwise)."""
    membership = chat_membership(lobby_id=lobby_id, player=player)
    muted = Mute.objects.filter(muter=player).values("muted_id")
    rows = (
        ChatMessage.objects.filter(lobby_id=membership.lobby_id)
        .exclude(sender_id__in=muted)
        .order_by("-created_at", "-pk")[:limit]
    )
    return list(reversed(rows))


def mutes_of(*, player: Player) -> QuerySet[Mute]:
    return Mute.objects.filter(muter=player).select_related("muted").order_by("created_at", "pk")


def player_record(*, player: Player, messages: int = 100) -> dict:
    """What the admin's one page per player shows."""
    return {
        "reports_against": list(
            Report.objects.filter(reported=player).select_related("reporter", "lobby")[:100]
        ),
        "reports_made": list(
            Report.objects.filter(reporter=player).select_related("reported", "lobby")[:100]
        ),
        "bans": list(Ban.objects.filter(player=player).select_related("created_by", "lifted_by")),
        "messages": list(
            ChatMessage.objects.filter(sender=player)
            .select_related("lobby")
            .order_by("-created_at", "-pk")[:messages]
        ),
        "muted_by": Mute.objects.filter(muted=player).count(),
    }
