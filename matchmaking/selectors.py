from statistics import median

from django.db.models import Count, Q
from django.utils import timezone

from matchmaking.models import Profile, Ticket


def profile_list():
    return Profile.objects.filter(enabled=True).order_by("name")


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
