from statistics import median

from django.db.models import Count, Q
from django.utils import timezone

from lobby.errors import NotFound
from lobby.models import Player
from matchmaking.models import Party, Profile, Ticket
from matchmaking.rules import RulesError, parse_rules
from matchmaking.shapes import PartyOut, TicketOut


def profile_list():
    return Profile.objects.filter(enabled=True).order_by("name")


def rated_leaderboards() -> set[str]:
    """The leaderboards the open queues take a number from (docs/ratings.md, "Rated queues")."""
    boards = set()
    for profile in profile_list():
        try:
            boards.update(parse_rules(profile.rules).rated.values())
        except RulesError:
            continue  # the API refuses tickets for it too: it rates nobody
    return boards


def queue_stats() -> dict[int, dict]:
    """Per profile: searching tickets, and the median wait of those searching now (seconds)."""
    now = timezone.now()
    stats = {
        row["pk"]: {"searching": row["searching"], "median_wait": None}
        for row in Profile.objects.annotate(
            searching=Count("tickets", filter=Q(tickets__status=Ticket.Status.SEARCHING))
        ).values("pk", "searching")
    }
    waits: dict[int, list[float]] = {}
    for profile_id, created_at in Ticket.objects.filter(status=Ticket.Status.SEARCHING).values_list(
        "profile_id", "created_at"
    ):
        waits.setdefault(profile_id, []).append((now - created_at).total_seconds())
    for profile_id, values in waits.items():
        stats[profile_id]["median_wait"] = round(median(values), 1)
    return stats


def ticket_searching_for(player) -> Ticket | None:
    """The searching ticket that seats the player: its own, or its party's (led by another)."""
    seats_player = Q(player=player) | Q(party__members__player=player, party__members__active=True)
    return (
        Ticket.objects.filter(seats_player, status=Ticket.Status.SEARCHING)
        .select_related("profile")
        .order_by("-created_at")
        .first()
    )


def ticket_snapshot(ticket: Ticket) -> dict:
    """What a ticket's players see (GET ticket and the `ticket.updated` event)."""
    return dict(TicketOut(ticket).data)


def ticket_get(*, ticket_id, player: Player) -> Ticket:
    """A ticket that seats the player (404 otherwise)."""
    ticket = Ticket.objects.select_related("profile").filter(pk=ticket_id).first()
    if ticket is None or player.pk not in ticket.player_ids:
        raise NotFound("ticket_not_found", "There is no such ticket.")
    return ticket


def party_get(*, party_id, player: Player) -> Party:
    """A party the player is in (404 otherwise: a party's existence is its members' business)."""
    party = Party.objects.filter(pk=party_id, disbanded_at=None).first()
    if party is None or not party.members.filter(player=player, active=True).exists():
        raise NotFound("party_not_found", "There is no such party.")
    return party


def party_snapshot(party: Party) -> dict:
    """What a party's members see (create, join, GET party and the `party.updated` event)."""
    return dict(PartyOut(party).data)
